"""The GraphQL surface. `schema` is what the API serves and `make schema` exports."""

import strawberry
from strawberry.extensions import ParserCache, ValidationCache

from schema.errors import mask_errors
from schema.mutations import Mutation
from schema.queries import Query
from schema.subscriptions import Subscription

schema = strawberry.Schema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    # Parsing and validating a document cost more than running a small operation;
    # clients send the same few documents again and again.
    extensions=[ParserCache, ValidationCache, mask_errors()],
)

__all__ = ["schema"]
