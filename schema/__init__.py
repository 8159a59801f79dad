"""The GraphQL surface. `schema` is what the API serves and `make schema` exports."""

from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.schema.config import BatchingConfig, StrawberryConfig

from schema.document_limits import QueryLimits, limit_extensions
from schema.error_mapping import log_unexpected, mask_errors
from schema.mutations import Mutation
from schema.operation_metrics import OperationMetrics, root_fields
from schema.queries import Query
from schema.subscriptions import Subscription


class Schema(strawberry.Schema):
    # The names its root fields may have: the metrics' closed set of labels.
    root_fields: frozenset[str] = frozenset()

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        log_unexpected(errors)


def build_schema(limits: QueryLimits) -> Schema:
    """The schema, holding every document to `limits`."""
    batching = BatchingConfig(max_operations=limits.max_batch) if limits.max_batch > 1 else None
    built = Schema(
        config=StrawberryConfig(batching_config=batching),
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        # The limits come first: a document over them is refused before it costs more.
        # Parsing and validating a document cost more than running a small operation;
        # clients send the same few documents again and again, hence the caches.
        extensions=[
            *limit_extensions(limits),
            ParserCache,
            ValidationCache,
            mask_errors(),
            OperationMetrics,
        ],
    )
    built.root_fields = root_fields(built)
    return built


# With the default limits: what `make schema` exports (the limits change no type).
schema = build_schema(QueryLimits())

__all__ = ["QueryLimits", "build_schema", "schema"]
