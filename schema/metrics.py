"""Prometheus metrics of the GraphQL surface: operations by root field, their latency,
open subscriptions and tasks created. Labels come from the schema (root field names),
never from what a client names its operation, so their number stays bounded."""

from __future__ import annotations

import time
from collections.abc import Iterator

from graphql import FieldNode, OperationDefinitionNode
from prometheus_client import Counter, Gauge, Histogram
from strawberry.extensions import SchemaExtension

from tasks.context import CURRENT_REQUEST

OPERATIONS = Counter(
    "aitasks_graphql_operations_total",
    "GraphQL operations served, by type and root field, and whether they had errors.",
    ["type", "field", "outcome"],
)
OPERATION_SECONDS = Histogram(
    "aitasks_graphql_operation_seconds",
    "Time to serve a GraphQL query or mutation (a subscription: to set it up).",
    ["type", "field"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
SUBSCRIPTIONS = Gauge("aitasks_subscriptions_active", "Subscriptions being served now.")
TASKS_CREATED = Counter("aitasks_tasks_created_total", "Tasks created, by kind.", ["kind"])


def _root(document: object) -> tuple[str, str]:
    """The operation's type and root field ("invalid" when it never parsed)."""
    definitions = getattr(document, "definitions", None) or ()
    for definition in definitions:
        if isinstance(definition, OperationDefinitionNode):
            fields = [
                selection.name.value
                for selection in definition.selection_set.selections
                if isinstance(selection, FieldNode)
            ]
            field = fields[0] if len(fields) == 1 else ("multiple" if fields else "none")
            return definition.operation.value, field
    return "invalid", "invalid"


class OperationMetrics(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        context = self.execution_context
        kind, field = _root(context.graphql_document)
        result = context.result
        failed = result is None or bool(getattr(result, "errors", None))
        OPERATIONS.labels(kind, field, "error" if failed else "ok").inc()
        if (request := CURRENT_REQUEST.get()) is not None:
            request.operation = f"{kind} {field}"
        OPERATION_SECONDS.labels(kind, field).observe(time.perf_counter() - started)
