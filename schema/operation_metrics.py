"""Prometheus metrics of the GraphQL surface: operations by root field, their latency,
open subscriptions and tasks created. Labels come from a closed set: the schema's root
field names (a document whose root field is none of them counts as "unknown", valid or
not), never from what a client writes, so their number stays bounded."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import strawberry
from graphql import FieldNode, OperationDefinitionNode
from prometheus_client import Counter, Gauge, Histogram
from strawberry.extensions import SchemaExtension

from tasks.request_info import CURRENT_REQUEST

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

ROOT_TYPES = ("Query", "Mutation", "Subscription")
# Root fields every schema answers, besides its own.
INTROSPECTION_FIELDS = frozenset({"__typename", "__schema", "__type"})
# The label of a document whose root field is not in the schema.
UNKNOWN_FIELD = "unknown"


def root_fields(schema: strawberry.Schema) -> frozenset[str]:
    """Every name a root field may have in `schema`: the only field labels there are."""
    names = set(INTROSPECTION_FIELDS)
    for type_name in ROOT_TYPES:
        definition = schema.get_type_by_name(type_name)
        for field in getattr(definition, "fields", ()):
            names.add(schema.config.name_converter.get_graphql_name(field))
    return frozenset(names)


def _root_field(operation: OperationDefinitionNode, known: frozenset[str]) -> str:
    fields = [
        selection.name.value
        for selection in operation.selection_set.selections
        if isinstance(selection, FieldNode)
    ]
    if len(fields) != 1:
        return "multiple" if fields else "none"
    return fields[0] if fields[0] in known else UNKNOWN_FIELD


def _operation_of(document: object) -> OperationDefinitionNode | None:
    definitions = getattr(document, "definitions", None) or ()
    for definition in definitions:
        if isinstance(definition, OperationDefinitionNode):
            return definition
    return None


@dataclass(frozen=True)
class OperationCounter:
    """The metrics of one kind of operation (its type and root field), with the label
    lookups done once."""

    name: str
    ok: Any
    error: Any
    seconds: Any

    @classmethod
    def of(
        cls, operation: OperationDefinitionNode | None, known: frozenset[str]
    ) -> OperationCounter:
        """The counter of an operation whose root fields may be among `known`; "invalid"
        when the document never parsed."""
        if operation is None:
            return _counter("invalid", "invalid")
        return _counter(operation.operation.value, _root_field(operation, known))

    def count(self, *, failed: bool, seconds: float) -> None:
        (self.error if failed else self.ok).inc()
        if (request := CURRENT_REQUEST.get()) is not None:
            request.operation = self.name
        self.seconds.observe(seconds)


@functools.cache
def _counter(kind: str, field: str) -> OperationCounter:
    # Bounded: three operation types and the schema's few root fields.
    return OperationCounter(
        name=f"{kind} {field}",
        ok=OPERATIONS.labels(kind, field, "ok"),
        error=OPERATIONS.labels(kind, field, "error"),
        seconds=OPERATION_SECONDS.labels(kind, field),
    )


class OperationMetrics(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        context = self.execution_context
        result = context.result
        failed = result is None or bool(getattr(result, "errors", None))
        known = getattr(context.schema, "root_fields", INTROSPECTION_FIELDS)
        counter = OperationCounter.of(_operation_of(context.graphql_document), known)
        counter.count(failed=failed, seconds=time.perf_counter() - started)
