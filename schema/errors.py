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


def should_mask(error: GraphQLError) -> bool:
    original = error.original_error
    if original is None or isinstance(original, AitasksError):
        return False
    logger.error("unexpected error in %s", error.path, exc_info=original)
    return True


def mask_errors() -> Callable[[], MaskErrors]:
    return lambda: MaskErrors(should_mask_error=should_mask, error_message=UNEXPECTED_MESSAGE)
