"""Errors on the GraphQL surface, mapped in one place.

Domain errors (`AitasksError`) reach the client with their message and a stable
`extensions.code`; GraphQL's own errors (syntax, validation) pass as they are; anything
else is masked, so no stack trace or internal detail ever reaches a client.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from graphql import GraphQLError
from strawberry.extensions import MaskErrors

from tasks.errors import AitasksError

logger = logging.getLogger(__name__)

UNEXPECTED_MESSAGE = "Unexpected error. It has been logged; please try again later."


def is_unexpected(error: GraphQLError) -> bool:
    original = error.original_error
    # graphql-core wraps a bad variable's own GraphQLError: that one is for the client.
    return original is not None and not isinstance(original, AitasksError | GraphQLError)


def log_unexpected(errors: list[GraphQLError]) -> None:
    """Log what will be masked, with its traceback; expected errors are the client's
    business, not the operator's."""
    for error in errors:
        if is_unexpected(error):
            logger.error("unexpected error at %s", error.path, exc_info=error.original_error)


# The `extensions.code` of a masked error, so clients can tell it from their own mistakes.
UNEXPECTED_CODE = "INTERNAL_SERVER_ERROR"


class MaskUnexpected(MaskErrors):
    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        masked = super().anonymise_error(error)
        masked.extensions = {"code": UNEXPECTED_CODE}
        return masked


def mask_errors() -> Callable[[], MaskErrors]:
    return lambda: MaskUnexpected(should_mask_error=is_unexpected, error_message=UNEXPECTED_MESSAGE)


_MASK = mask_errors()()


def for_client(errors: list[GraphQLError]) -> list[GraphQLError]:
    """For operations served outside Strawberry's extensions: log what is unexpected, and
    return the errors as a client may see them, unexpected ones masked as the extension
    masks them."""
    log_unexpected(errors)
    return [_MASK.anonymise_error(error) if is_unexpected(error) else error for error in errors]
