"""The GraphQL surface. `schema` is what the API serves and `make schema` exports."""

from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import ParserCache, ValidationCache

from schema.errors import log_unexpected, mask_errors
from schema.mutations import Mutation
from schema.queries import Query
from schema.subscriptions import Subscription


class Schema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        log_unexpected(errors)


schema = Schema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    # Parsing and validating a document cost more than running a small operation;
    # clients send the same few documents again and again.
    extensions=[ParserCache, ValidationCache, mask_errors()],
)

__all__ = ["schema"]
