"""Prepared operations: a document parsed and validated once, then executed straight on
graphql-core for every request that sends it again.

Clients send the same few documents over and over (Apollo's `CREATE_TASK`, a poller's
`task(id)` query). Strawberry runs its whole extension pipeline for each one (per-request
extension objects, parse and validation caches looked up by hashing the text, the error
mask, metrics), which on createTask costs more than the INSERT it serves. Here a
document is parsed and validated once, under the same rules and limits, and later
requests only execute it, masking and counting the same way.

Only what is plainly a single query or mutation is prepared. Anything else (an invalid
document, a subscription, several operations without a name) goes on to Strawberry,
which gives its usual answer. The same goes for every document when the schema has an
extension this path does not do the work of (`MIRRORED_EXTENSIONS`): an extension
added to the schema then runs on every operation, only slower, never skipped.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from inspect import isawaitable
from typing import Any

from cachetools import LRUCache
from graphql import (
    DocumentNode,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    execute,
    get_operation_ast,
    parse,
    specified_rules,
    validate,
)
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.execution import optimized_is_awaitable
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaxTokensLimiter,
    ParserCache,
    ValidationCache,
)
from strawberry.http import GraphQLHTTPResponse

from schema.document_limits import (
    HideSuggestions,
    QueryLimits,
    document_size_rule,
    hide_suggestions,
)
from schema.error_mapping import MaskUnexpected, for_client
from schema.internals import STRAWBERRY_VALIDATION_RULES, graphql_schema
from schema.operation_metrics import OperationCounter, OperationMetrics

logger = logging.getLogger(__name__)

# Distinct documents kept prepared. Clients send a handful each; the bound keeps a client
# that sends a new document every time from growing the process.
PREPARED_MAX_DOCUMENTS = 500
# A document longer than this is not worth keeping: nobody sends it twice.
PREPARED_MAX_QUERY_CHARS = 20_000

# The schema extensions whose work this path (and the WebSocket's shared path, which
# checks documents here) does itself: the limits, by the same rules; the caches, by
# keeping documents; the error mask, by `for_client`; the metrics, by `OperationCounter`.
MIRRORED_EXTENSIONS = (
    MaxTokensLimiter,
    AddValidationRules,
    DisableIntrospection,
    HideSuggestions,
    ParserCache,
    ValidationCache,
    MaskUnexpected,
    OperationMetrics,
)


def mirrors_extensions(schema: Any) -> bool:
    """Whether every extension of `schema` is one this path does the work of."""
    unknown = [
        extension
        for extension in schema.extensions
        # An entry is a class or a factory; Strawberry makes one per operation too.
        # Exactly these classes: a subclass may do more than the path mirrors.
        if type(extension() if callable(extension) else extension) not in MIRRORED_EXTENSIONS
    ]
    if unknown:
        logger.warning(
            "the schema has extensions the prepared paths do not mirror (%s): every "
            "operation goes through Strawberry",
            ", ".join(repr(extension) for extension in unknown),
        )
    return not unknown


def _acyclic(executor_class: Any) -> Any:
    """The schema's executor class, letting go of its helpers once an operation is done.

    graphql-core's executor keeps bound methods of itself (`async_helpers`): a reference
    cycle, so each operation's executor, context and request waited for the garbage
    collector, and under load most of them outlive the young generations and pile up
    until a full pass. Without the cycle they go as soon as the response is built.
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
        self._schema = graphql_schema(schema)
        self._enabled = mirrors_extensions(schema)
        self._max_tokens = limits.max_tokens
        rules = [*specified_rules, document_size_rule(limits), *STRAWBERRY_VALIDATION_RULES]
        if not limits.introspection:
            rules.append(NoSchemaIntrospectionCustomRule)
        self._rules = tuple(rules)

    def check(
        self, query: str, operation_name: str | None
    ) -> tuple[DocumentNode, OperationDefinitionNode] | None:
        """The document and its operation, or None if it is not valid, names no
        single operation, or the schema has extensions this path would skip."""
        if not self._enabled:
            return None
        try:
            document = parse(query, max_tokens=self._max_tokens)
        except GraphQLError:
            return None
        operation = get_operation_ast(document, operation_name)
        if operation is None or validate(self._schema, document, self._rules):
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
        self._graphql_schema = graphql_schema(schema)
        self._checks = DocumentChecks(schema, limits)
        self._prepared: LRUCache[tuple[str, str | None], PreparedOperation | None] = LRUCache(
            PREPARED_MAX_DOCUMENTS
        )

    def get(self, query: str, operation_name: str | None) -> PreparedOperation | None:
        """The prepared operation, or None when this document is for Strawberry."""
        key = (query, operation_name)
        try:
            prepared = self._prepared[key]
        except KeyError:
            if len(query) > PREPARED_MAX_QUERY_CHARS:
                return None
            prepared = self._prepared[key] = self._prepare(query, operation_name)
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
            self._graphql_schema,
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
