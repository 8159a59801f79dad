"""Prepared operations: a document parsed and validated once, then executed straight on
graphql-core for every request that sends it again.

Clients send the same few documents over and over (Apollo's `CREATE_TASK`, a poller's
`task(id)` query). Strawberry runs its whole extension pipeline for each one (per-request
extension objects, parse and validation caches looked up by hashing the text, the error
mask, metrics); measured on createTask that cost more than the INSERT it serves. Here a
document is parsed and validated once, under the same rules and limits, and later
requests only execute it, masking and counting the same way.

Only what is plainly a single query or mutation is prepared. Anything else (an invalid
document, a subscription, several operations without a name) goes on to Strawberry,
which gives its usual answer.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from inspect import isawaitable
from typing import Any

from graphql import (
    DocumentNode,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    execute,
    get_operation_ast,
    parse,
    specified_rules,
)
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.execution import optimized_is_awaitable
from strawberry.http import GraphQLHTTPResponse
from strawberry.schema.schema import validate_document

from schema.errors import for_client
from schema.limits import QueryLimits, document_size_rule, hide_suggestions
from schema.metrics import OperationCounter

# Distinct documents kept prepared. Clients send a handful each; the bound keeps a client
# that sends a new document every time from growing the process.
PREPARED_MAX_DOCUMENTS = 500
# A document longer than this is not worth keeping: nobody sends it twice.
PREPARED_MAX_QUERY_CHARS = 20_000


def _acyclic(executor_class: Any) -> Any:
    """The schema's executor class, letting go of its helpers once an operation is done.

    graphql-core's executor keeps bound methods of itself (`async_helpers`): a reference
    cycle, so each operation's executor, context and request waited for the garbage
    collector, and under load most of them outlived the young generations (measured:
    ~58 cyclic objects per create; the API grew 18 MiB before a full pass freed them).
    Without the cycle they go as soon as the response is built.
    """

    class AcyclicExecutor(executor_class):  # type: ignore[misc, valid-type]
        def execute_operation(self, serially: bool | None = None) -> Any:
            outcome = super().execute_operation(serially)
            if not self.is_awaitable(outcome):
                self.async_helpers = None
                return outcome

            async def finished() -> Any:
                try:
                    return await outcome
                finally:
                    self.async_helpers = None

            return finished()

    return AcyclicExecutor


class DocumentChecks:
    """A document checked as Strawberry checks it before anything runs: parsed within the
    token limit, then validated by graphql-core's rules, Strawberry's own and ours (depth
    and aliases; no introspection where it is off)."""

    def __init__(self, schema: Any, limits: QueryLimits) -> None:
        self._schema = schema
        self._max_tokens = limits.max_tokens
        rules = [*specified_rules, document_size_rule(limits)]
        if not limits.introspection:
            rules.append(NoSchemaIntrospectionCustomRule)
        self._rules = tuple(rules)

    def check(
        self, query: str, operation_name: str | None
    ) -> tuple[DocumentNode, OperationDefinitionNode] | None:
        """The document and its operation, or None if it is not valid or names no
        single operation."""
        try:
            document = parse(query, max_tokens=self._max_tokens)
        except GraphQLError:
            return None
        operation = get_operation_ast(document, operation_name)
        if operation is None or validate_document(self._schema._schema, document, self._rules):
            return None
        return document, operation


@dataclass(frozen=True)
class PreparedOperation:
    document: DocumentNode
    operation_name: str | None
    counter: OperationCounter


class PreparedOperations:
    """Valid single queries and mutations, by their text and operation name."""

    def __init__(self, schema: Any, limits: QueryLimits) -> None:
        self._schema = schema
        self._limits = limits
        self._executor_class = _acyclic(schema.execution_context_class)
        self._checks = DocumentChecks(schema, limits)
        self._prepared: OrderedDict[tuple[str, str | None], PreparedOperation | None] = (
            OrderedDict()
        )

    def get(self, query: str, operation_name: str | None) -> PreparedOperation | None:
        """The prepared operation, or None when this document is for Strawberry."""
        key = (query, operation_name)
        try:
            prepared = self._prepared[key]
        except KeyError:
            if len(query) > PREPARED_MAX_QUERY_CHARS:
                return None
            prepared = self._prepare(query, operation_name)
            self._prepared[key] = prepared
            if len(self._prepared) > PREPARED_MAX_DOCUMENTS:
                self._prepared.popitem(last=False)
        return prepared

    def _prepare(self, query: str, operation_name: str | None) -> PreparedOperation | None:
        checked = self._checks.check(query, operation_name)
        if checked is None:
            return None
        document, operation = checked
        if operation.operation == OperationType.SUBSCRIPTION:
            return None
        return PreparedOperation(
            document, operation_name, OperationCounter.of(operation, self._schema.root_fields)
        )

    async def execute(
        self, prepared: PreparedOperation, variables: dict[str, Any] | None, context: Any
    ) -> GraphQLHTTPResponse:
        """Run the operation; the response body, errors masked as Strawberry masks them."""
        started = time.perf_counter()
        result = execute(
            self._schema._schema,
            prepared.document,
            variable_values=variables,
            operation_name=prepared.operation_name,
            context_value=context,
            is_awaitable=optimized_is_awaitable,  # type: ignore[arg-type]
            executor_class=self._executor_class,
            operation_extensions=None,
        )
        if isawaitable(result):
            result = await result
        response: GraphQLHTTPResponse = {"data": result.data}
        if result.errors:
            if not self._limits.introspection:
                hide_suggestions(result.errors)
            response["errors"] = [error.formatted for error in for_client(result.errors, context)]
        prepared.counter.count(failed=bool(result.errors), seconds=time.perf_counter() - started)
        return response
