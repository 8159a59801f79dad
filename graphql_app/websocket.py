"""graphql-transport-ws with a shared path for `taskStatus`.

Strawberry runs each subscription through its whole pipeline: extensions, an execution
context, graphql-core's response stream, and an execution of the selection for every
update of every subscriber. With a thousand subscribers of one task, that execution is
half of the API's CPU per change, and the pipeline is most of the ~340 objects a
subscription keeps for the garbage collector to walk.

Here a `taskStatus` subscription whose document is valid takes a shorter path: the
document is parsed and validated once (cached), the task is followed by the same
service function the resolver calls, and each update is executed once per (document,
variables, base URL, task, sequence, delta) and the same JSON is sent to every subscriber
with that key. The base URL is in the key because artifact URLs are built on the
request's. Anything else (queries and mutations over the socket, `taskUpdates`, a
document with errors, a subscription that fails before its first update) goes through
Strawberry unchanged, so every protocol behaviour and error stays Strawberry's.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLField,
    NoSchemaIntrospectionCustomRule,
    OperationDefinitionNode,
    OperationType,
    get_operation_ast,
    parse,
    specified_rules,
    validate,
)
from graphql.execution import Executor
from graphql.execution.values import get_argument_values
from prometheus_client import Counter
from starlette.websockets import WebSocketDisconnect
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)

from schema import QueryLimits, Schema
from schema.context import Context
from schema.errors import UNEXPECTED_CODE, UNEXPECTED_MESSAGE, is_unexpected, log_unexpected
from schema.limits import document_size_rule
from schema.metrics import OPERATION_SECONDS, OPERATIONS
from schema.subscriptions import follow_task
from schema.types import TaskUpdate
from tasks.watching import Update

UPDATES_SENT = Counter(
    "aitasks_subscription_updates_total",
    "taskStatus updates sent on the shared path: executed for the subscriber, or shared "
    "with another that was sent the same update.",
    ["source"],
)
EXECUTED = UPDATES_SENT.labels("executed")
SHARED = UPDATES_SENT.labels("shared")

# The root field the shared path serves, as a document names it.
TASK_STATUS_FIELD = "taskStatus"
# Documents (with operation name) whose checks are remembered. Clients send the same few.
DOCUMENTS_CACHED = 256
# Executed updates kept for subscribers that ask for the same one a moment later: a
# change reaches all subscribers of its task within milliseconds, so a few per task
# being followed suffice; each entry is one update's JSON.
RESULTS_CACHED = 1024


@dataclass(frozen=True, eq=False)
class Prepared:
    """A valid document whose operation is a `taskStatus` subscription and nothing else.
    Compared by identity: one object per cached document."""

    document: DocumentNode
    operation_name: str | None
    field_node: FieldNode
    field: GraphQLField


class SharedSubscriptions:
    """Documents checked once, and updates executed once, for every socket of a process."""

    def __init__(self, schema: Schema, limits: QueryLimits) -> None:
        self._schema = schema
        rules = [*specified_rules, document_size_rule(limits)]
        if not limits.introspection:
            rules.append(NoSchemaIntrospectionCustomRule)
        self._rules = rules
        self._max_tokens = limits.max_tokens
        self._documents: OrderedDict[tuple[str, str | None], Prepared | None] = OrderedDict()
        self._results: OrderedDict[tuple[Any, ...], str] = OrderedDict()

    def prepare(self, query: str, operation_name: str | None) -> Prepared | None:
        """The checked document, or None when Strawberry must serve it."""
        key = (query, operation_name)
        if key in self._documents:
            self._documents.move_to_end(key)
            return self._documents[key]
        prepared = self._check(query, operation_name)
        self._documents[key] = prepared
        if len(self._documents) > DOCUMENTS_CACHED:
            self._documents.popitem(last=False)
        return prepared

    def _check(self, query: str, operation_name: str | None) -> Prepared | None:
        graphql_schema = self._schema._schema
        try:
            document = parse(query, max_tokens=self._max_tokens)
        except GraphQLError:
            return None
        if validate(graphql_schema, document, self._rules):
            return None
        operation = get_operation_ast(document, operation_name)
        if not _only_task_status(operation):
            return None
        assert operation is not None and graphql_schema.subscription_type is not None
        field_node = operation.selection_set.selections[0]
        assert isinstance(field_node, FieldNode)
        field = graphql_schema.subscription_type.fields[TASK_STATUS_FIELD]
        return Prepared(document, operation_name, field_node, field)

    def arguments(
        self, prepared: Prepared, variables: dict[str, Any] | None, context: Context
    ) -> dict[str, Any] | None:
        """The field's arguments with the variables coerced; None if they are wrong."""
        executor = self._executor(prepared, variables, context)
        if executor is None:
            return None
        try:
            return get_argument_values(
                prepared.field, prepared.field_node, executor.variable_values
            )
        except GraphQLError:
            return None

    def _executor(
        self, prepared: Prepared, variables: dict[str, Any] | None, context: Context
    ) -> Executor | None:
        executor = Executor.build(
            self._schema._schema,
            prepared.document,
            context_value=context,
            raw_variable_values=variables,
            operation_name=prepared.operation_name,
        )
        return None if isinstance(executor, list) else executor

    async def payload(
        self, key: tuple[Any, ...], update: Update, variables: Any, context: Context
    ) -> str:
        """The `next` message's payload for this update, as JSON: executed once per key."""
        cached = self._results.get(key)
        if cached is not None:
            SHARED.inc()
            return cached
        EXECUTED.inc()
        prepared = key[0]
        executor = self._executor(prepared, variables, context)
        if executor is None:  # the variables were coerced once already; cannot happen
            raise RuntimeError("the subscription's variables no longer coerce")
        result = executor.build_per_event_executor(TaskUpdate.from_update(update))
        outcome: Any = result.execute_operation(False)
        if executor.is_awaitable(outcome):
            outcome = await outcome
        body: dict[str, Any] = {"data": outcome.data}
        if outcome.errors:
            # Errors may depend on the subscriber (and are rare): not shared.
            body["errors"] = [error.formatted for error in _masked(outcome.errors)]
            return orjson.dumps(body).decode()
        encoded = orjson.dumps(body).decode()
        self._results[key] = encoded
        if len(self._results) > RESULTS_CACHED:
            self._results.popitem(last=False)
        return encoded


def _only_task_status(operation: OperationDefinitionNode | None) -> bool:
    if operation is None or operation.operation is not OperationType.SUBSCRIPTION:
        return False
    selections = operation.selection_set.selections
    return (
        len(selections) == 1
        and isinstance(selections[0], FieldNode)
        and selections[0].name.value == TASK_STATUS_FIELD
        and not selections[0].directives
    )


def _masked(errors: list[GraphQLError]) -> list[GraphQLError]:
    """As schema.errors' masking does on Strawberry's path."""
    log_unexpected(errors)
    masked = []
    for error in errors:
        if is_unexpected(error):
            error = GraphQLError(UNEXPECTED_MESSAGE, nodes=error.nodes, path=error.path)
            error.extensions = {"code": UNEXPECTED_CODE}
        masked.append(error)
    return masked


class TransportHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """Strawberry's graphql-transport-ws handler, with `taskStatus` on the shared path."""

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        shared: SharedSubscriptions = self.view.shared_subscriptions  # type: ignore[attr-defined]
        prepared = shared.prepare(operation.query, operation.operation_name)
        arguments = None
        if prepared is not None:
            arguments = shared.arguments(prepared, operation.variables, self.context)
        if prepared is None or arguments is None:
            await super().run_operation(operation)
            return
        started = time.perf_counter()
        updates = follow_task(self.context, str(arguments["id"]), arguments.get("after"))
        try:
            first = await anext(updates)
        except StopAsyncIteration:
            first = None
        except Exception:
            # Not found, or anything else before the first update: Strawberry reports it
            # exactly as it always has (the task is read again, which is cheap and rare).
            await updates.aclose()
            await super().run_operation(operation)
            return
        OPERATIONS.labels("subscription", TASK_STATUS_FIELD, "ok").inc()
        OPERATION_SECONDS.labels("subscription", TASK_STATUS_FIELD).observe(
            time.perf_counter() - started
        )
        await self._follow(shared, operation, prepared, first, updates)

    async def _follow(
        self,
        shared: SharedSubscriptions,
        operation: Operation[Context, None],
        prepared: Prepared,
        first: Update | None,
        updates: AsyncGenerator[Update, None],
    ) -> None:
        settings = self.context.settings
        base_url = settings.public_url or str(self.context.request.base_url)
        variables = json.dumps(operation.variables, sort_keys=True, default=str)
        prefix = '{"id":' + orjson.dumps(operation.id).decode() + ',"type":"next","payload":'
        try:
            if first is not None:
                await self._send_update(
                    shared, operation, prepared, first, base_url, variables, prefix
                )
                async for update in updates:
                    await self._send_update(
                        shared, operation, prepared, update, base_url, variables, prefix
                    )
        except (WebSocketDisconnected, WebSocketDisconnect):
            return
        except Exception as error:
            # As Strawberry does when a subscription's source fails after it started.
            payload = {"data": None, "errors": [e.formatted for e in _masked([_coerced(error)])]}
            await self._send_text(operation, prefix + orjson.dumps(payload).decode() + "}")
        finally:
            await updates.aclose()
        await operation.send_operation_message({"id": operation.id, "type": "complete"})

    async def _send_update(
        self,
        shared: SharedSubscriptions,
        operation: Operation[Context, None],
        prepared: Prepared,
        update: Update,
        base_url: str,
        variables: str,
        prefix: str,
    ) -> None:
        task = update.task
        # A null and an empty delta read the same to a client.
        key = (prepared, variables, base_url, task.id, task.sequence, update.delta or None)
        payload = await shared.payload(key, update, operation.variables, self.context)
        await self._send_text(operation, prefix + payload + "}")

    async def _send_text(self, operation: Operation[Context, None], text: str) -> None:
        if operation.completed:
            return
        try:
            await self.websocket.ws.send_text(text)  # type: ignore[attr-defined]
        except WebSocketDisconnect as error:
            raise WebSocketDisconnected from error


def _coerced(error: Exception) -> GraphQLError:
    return (
        error if isinstance(error, GraphQLError) else GraphQLError(str(error), original_error=error)
    )
