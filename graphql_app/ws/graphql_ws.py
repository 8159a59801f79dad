"""graphql-transport-ws with a shared path for `taskStatus`.

Strawberry runs each subscription through its whole pipeline: extensions, an execution
context, graphql-core's response stream, and an execution of the selection for every
update of every subscriber. With a thousand subscribers of one task, that execution is
half of the API's CPU per change, and the pipeline is most of the ~340 objects a
subscription keeps for the garbage collector to walk.

Here a `taskStatus` subscription whose document is valid takes a shorter path: the
document is parsed and validated once (cached), the task is followed by the same
service function the resolver calls, and each update is executed once per (document,
variables, base URL, task, sequence, delta, live) and the same JSON is sent to every subscriber
with that key. The base URL is in the key because artifact URLs are built on the
request's. Anything else (queries and mutations over the socket, `taskUpdates`, a
document with errors, a subscription that fails before its first update) goes through
Strawberry unchanged, so every protocol behaviour and error stays Strawberry's.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from json import JSONDecodeError
from typing import Any, cast

import orjson
from cachetools import LRUCache
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLField,
    Node,
    OperationDefinitionNode,
    OperationType,
    Visitor,
    visit,
)
from graphql.execution import Executor
from graphql.execution.values import get_argument_values, get_variable_values
from prometheus_client import Counter
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    Message,
    SubscribeMessage,
)

from graphql_app.ws.messages import (
    FORBIDDEN,
    INTERNAL_ERROR,
    INTERNAL_ERROR_REASON,
    KEY_REVOKED_REASON,
    NESTED_TOO_DEEP,
    TRY_AGAIN_LATER,
    key_still_valid,
    message_problem,
    unavailable_reason,
)
from graphql_app.ws.sharing import SharedValues
from persistence.outages import unavailable_dependency
from schema import QueryLimits, Schema
from schema.context import Context, Services
from schema.error_mapping import for_client
from schema.internals import (
    TransportWSHandler,
    forget_subfields,
    graphql_schema,
    starlette_socket,
)
from schema.internals import TransportWSOperation as Operation
from schema.operation_metrics import OPERATION_SECONDS, OPERATIONS
from schema.prepared import DocumentChecks
from schema.subscriptions import follow_task
from schema.types import TaskUpdate
from tasks.services.watching import Update

logger = logging.getLogger(__name__)

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
# Executors kept, one per (document, base URL), or per (document, variables, base URL)
# for a document whose variables reach below the root field: few either way.
EXECUTORS_CACHED = 1024
# Executed updates kept for subscribers that ask for the same one a moment later: a
# change reaches all subscribers of its task within milliseconds, so a few per task
# being followed suffice; each entry is one update's JSON.
RESULTS_CACHED = 1024
# Texts an open subscription keeps that its client chose (its document, its variables,
# the base URL its host header makes): one copy each for every subscription that sent
# the same, for at most this many texts of at most this many characters.
SHARED_TEXTS = 1024
SHARED_TEXT_MAX_CHARS = 16 * 1024
_shared_texts: SharedValues[str] = SharedValues(SHARED_TEXTS, SHARED_TEXT_MAX_CHARS)


def _share(text: str) -> str:
    return _shared_texts.share(text, len(text))


@dataclass(frozen=True, eq=False)
class Prepared:
    """A valid document whose operation is a `taskStatus` subscription and nothing else.
    Compared by identity: one object per cached document."""

    document: DocumentNode
    operation: OperationDefinitionNode
    field_node: FieldNode
    field: GraphQLField
    # Whether a variable is used below the root field (or in a fragment, a directive):
    # when not, the variables only pick the task, and subscribers of one task share
    # results whatever else they pass.
    variables_shape_result: bool

    @property
    def operation_name(self) -> str | None:
        return self.operation.name.value if self.operation.name else None


class SharedSubscriptions:
    """Documents checked once, and updates executed once, for every socket of a process."""

    def __init__(self, schema: Schema, limits: QueryLimits) -> None:
        self._schema = graphql_schema(schema)
        self._checks = DocumentChecks(schema, limits)
        self._documents: LRUCache[tuple[str, str | None], Prepared | None] = LRUCache(
            DOCUMENTS_CACHED
        )
        self._results: LRUCache[tuple[Any, ...], str] = LRUCache(RESULTS_CACHED)
        self._executors: LRUCache[tuple[Prepared, str, str], Executor] = LRUCache(EXECUTORS_CACHED)

    def prepare(self, query: str, operation_name: str | None) -> Prepared | None:
        """The checked document, or None when Strawberry must serve it."""
        key = (query, operation_name)
        try:
            return self._documents[key]
        except KeyError:
            prepared = self._documents[key] = self._check(query, operation_name)
            return prepared

    def _check(self, query: str, operation_name: str | None) -> Prepared | None:
        checked = self._checks.check(query, operation_name)
        if checked is None:
            return None
        document, operation = checked
        if not _only_task_status(operation):
            return None
        assert self._schema.subscription_type is not None
        field_node = operation.selection_set.selections[0]
        assert isinstance(field_node, FieldNode)
        field = self._schema.subscription_type.fields[TASK_STATUS_FIELD]
        shaped = _variable_uses(document) > _variable_uses(*(field_node.arguments or ()))
        return Prepared(document, operation, field_node, field, shaped)

    def arguments(
        self, prepared: Prepared, variables: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """The field's arguments with the variables coerced; None if they are wrong."""
        if variables is not None and not isinstance(variables, dict):
            return None
        coerced = get_variable_values(
            self._schema, prepared.operation.variable_definitions or (), variables or {}
        )
        if isinstance(coerced, list):
            return None
        try:
            return get_argument_values(prepared.field, prepared.field_node, coerced)
        except GraphQLError:
            return None

    def _executor(
        self, prepared: Prepared, variables: dict[str, Any] | None, context: Context
    ) -> Executor | None:
        executor = Executor.build(
            self._schema,
            prepared.document,
            context_value=context,
            raw_variable_values=variables,
            operation_name=prepared.operation_name,
        )
        return None if isinstance(executor, list) else executor

    async def payload(self, subscriber: Subscriber, update: Update) -> str:
        """The `next` message's payload for this update, as JSON: executed once per key."""
        task = update.task
        # A null and an empty delta read the same to a client.
        key = (subscriber.shares, task.id, task.sequence, update.delta or None, update.live)
        cached = self._results.get(key)
        if cached is not None:
            SHARED.inc()
            return cached
        EXECUTED.inc()
        executor = self._shared_executor(subscriber)
        event = executor.build_per_event_executor(TaskUpdate.from_update(update))
        # Its memo of subfields is the long-lived executor's: see `forget_subfields`.
        forget_subfields(event)
        outcome: Any = event.execute_operation(False)
        if executor.is_awaitable(outcome):
            outcome = await outcome
        body: dict[str, Any] = {"data": outcome.data}
        if outcome.errors:
            # Not shared: a field that fails may fail differently for the next one.
            body["errors"] = [error.formatted for error in for_client(outcome.errors)]
            return orjson.dumps(body).decode()
        encoded = orjson.dumps(body).decode()
        self._results[key] = encoded
        return encoded

    def _shared_executor(self, subscriber: Subscriber) -> Executor:
        """One executor per key, reused for every update: graphql-core's executor is a
        cycle of some fifty objects, and one per update was all the cyclic garbage the
        API made under load (found with gc.DEBUG_SAVEALL), which set off full GC passes.
        Its context holds only what the key holds: the services and the base URL, no
        caller, so a result cannot depend on anything the key leaves out."""
        executor = self._executors.get(subscriber.shares)
        if executor is not None:
            return executor
        context = Context(
            services=subscriber.services, request=_BaseURL(subscriber.base_url), response=None
        )
        prepared = subscriber.prepared
        executor = self._executor(prepared, subscriber.raw_variables, context)
        if executor is None:  # the variables were coerced once already; cannot happen
            raise RuntimeError("the subscription's variables no longer coerce")
        self._executors[subscriber.shares] = executor
        return executor


@dataclass(frozen=True)
class _BaseURL:
    """What a shared execution knows of the request: the URL artifact links start with."""

    base_url: str


@dataclass(frozen=True, slots=True)
class Subscriber:
    """One shared-path subscription: what its updates depend on, and how to send them."""

    prepared: Prepared
    raw_variables: dict[str, Any] | None
    base_url: str
    services: Services
    # What subscribers that share results have in common.
    shares: tuple[Prepared, str, str]

    @classmethod
    def of(
        cls, prepared: Prepared, variables: dict[str, Any] | None, context: Context
    ) -> Subscriber:
        # Shared: the same few for every subscriber, who keeps them while it is open.
        base_url = _share(context.settings.public_url or str(context.request.base_url))
        shaping = variables if prepared.variables_shape_result else None
        canonical = _share(json.dumps(shaping, sort_keys=True, default=str))
        return cls(prepared, variables, base_url, context.services, (prepared, canonical, base_url))


class _VariableUses(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def enter_variable_definition(self, *_: Any) -> Any:
        return self.SKIP  # a declaration, not a use

    def enter_variable(self, *_: Any) -> None:
        self.count += 1


def _variable_uses(*nodes: Node) -> int:
    uses = _VariableUses()
    for node in nodes:
        visit(node, uses)
    return uses.count


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


class TransportHandler(TransportWSHandler[Context, None]):
    """Strawberry's graphql-transport-ws handler, with `taskStatus` on the shared path."""

    async def handle(self) -> None:
        """Strawberry's loop, reading each message straight off the socket: no async
        generator per socket (Strawberry's `iter_json`, which asyncio also tracks), and
        no message kept while the next is awaited (the subscribe message's text and
        dict, for as long as the socket is idle)."""
        self.on_request_accepted()
        socket: WebSocket = starlette_socket(self)
        try:
            while socket.application_state != WebSocketState.DISCONNECTED:
                try:
                    message = self.view.decode_json(await socket.receive_text())
                except KeyError:  # a binary message has no text
                    await self.handle_invalid_message("WebSocket message type must be text")
                    return
                except JSONDecodeError:
                    await self.handle_invalid_message("WebSocket message must be valid JSON")
                    return
                except RecursionError:
                    await self.handle_invalid_message(NESTED_TOO_DEEP)
                    return
                problem = message_problem(message)
                if problem is not None:
                    await self.handle_invalid_message(problem)
                    return
                await self._handle_safely(cast("Message", message))
                del message
        except (WebSocketDisconnect, WebSocketDisconnected):
            pass
        finally:
            await self.shutdown()

    async def _handle_safely(self, message: Message) -> None:
        """Strawberry's dispatch; a failure it does not expect is logged with its
        traceback and closes the socket with 4500, never with the traceback's text. An
        outage (the key cannot be checked while PostgreSQL is down) closes it with 1013
        and a reason that names the server, so the client tries again later."""
        try:
            await self.handle_message(message)
        except (WebSocketDisconnect, WebSocketDisconnected):
            raise
        except Exception as error:
            dependency = unavailable_dependency(error)
            if dependency is not None:
                logger.warning("closed a WebSocket with 1013: %s is unreachable", dependency)
                code, reason = TRY_AGAIN_LATER, unavailable_reason(dependency)
            else:
                logger.exception("a WebSocket message failed: closing the socket")
                code, reason = INTERNAL_ERROR, INTERNAL_ERROR_REASON
            with contextlib.suppress(Exception):
                await self.websocket.close(code=code, reason=reason)

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        # The key is checked again on every operation: a revoked key stops here, within
        # AITASKS_AUTH_CACHE_SECONDS of its revocation, whatever the socket did before.
        if self.connection_acknowledged and not await key_still_valid(self.context):
            await self.websocket.close(code=FORBIDDEN, reason=KEY_REVOKED_REASON)
            return
        payload: Any = message.get("payload")
        if isinstance(payload, dict) and isinstance(payload.get("query"), str):
            # Clients send the same few documents: every operation then holds one copy.
            payload["query"] = _share(payload["query"])
        await super().handle_subscribe(message)

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        await super().handle_connection_init(message)
        # The timer is cancelled by now (or it has closed the socket). Left on the
        # handler, its task and coroutine would stay as long as the socket.
        self.connection_init_timeout_task = None

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        shared: SharedSubscriptions = self.view.shared_subscriptions  # type: ignore[attr-defined]
        prepared = shared.prepare(operation.query, operation.operation_name)
        arguments = None
        if prepared is not None:
            arguments = shared.arguments(prepared, operation.variables)
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
        subscriber = Subscriber.of(prepared, operation.variables, self.context)
        prefix = '{"id":' + orjson.dumps(operation.id).decode() + ',"type":"next","payload":'
        try:
            if first is not None:
                await self._send_text(
                    operation, prefix + await shared.payload(subscriber, first) + "}"
                )
                async for update in updates:
                    payload = await shared.payload(subscriber, update)
                    await self._send_text(operation, prefix + payload + "}")
        except (WebSocketDisconnected, WebSocketDisconnect):
            return
        except Exception as error:
            # As Strawberry does when a subscription's source fails after it started.
            failed = {"data": None, "errors": [e.formatted for e in for_client([_coerced(error)])]}
            with contextlib.suppress(WebSocketDisconnected):
                await self._send_text(operation, prefix + orjson.dumps(failed).decode() + "}")
        finally:
            await updates.aclose()
        await operation.send_operation_message({"id": operation.id, "type": "complete"})

    async def _send_text(self, operation: Operation[Context, None], text: str) -> None:
        if operation.completed:
            return
        try:
            await starlette_socket(self).send_text(text)
        except WebSocketDisconnect as error:
            raise WebSocketDisconnected from error


def _coerced(error: Exception) -> GraphQLError:
    return (
        error if isinstance(error, GraphQLError) else GraphQLError(str(error), original_error=error)
    )
