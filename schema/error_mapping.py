"""Errors on the GraphQL surface, mapped in one place.

Domain errors (`AitasksError`) reach the client with their message and a stable
`extensions.code`; GraphQL's own errors (syntax, validation) pass as they are; anything
else is masked, so no stack trace or internal detail ever reaches a client.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import MaskErrors

from persistence.outages import unavailable_dependency
from tasks.errors import AitasksError

logger = logging.getLogger(__name__)

UNEXPECTED_MESSAGE = "Unexpected error. It has been logged; please try again later."


def is_unexpected(error: GraphQLError) -> bool:
    original = error.original_error
    # graphql-core wraps a bad variable's own GraphQLError: that one is for the client.
    return original is not None and not isinstance(original, AitasksError | GraphQLError)


def log_unexpected(errors: list[GraphQLError]) -> None:
    """Log what will be masked, with its traceback; expected errors are the client's
    business, not the operator's. An outage of PostgreSQL or Redis is one line per
    request, without a traceback: it is no bug, and while it lasts every request meets
    it."""
    for error in errors:
        if not is_unexpected(error):
            continue
        original = error.original_error
        dependency = unavailable_dependency(original) if original is not None else None
        if dependency:
            logger.warning("answered unavailable: %s is unreachable (%r)", dependency, original)
        else:
            logger.error("unexpected error at %s", error.path, exc_info=original)


# The `extensions.code` of a masked error, so clients can tell it from their own mistakes.
UNEXPECTED_CODE = "INTERNAL_SERVER_ERROR"


# The `extensions.code` of an error caused by PostgreSQL or Redis being unreachable: the
# request may succeed if tried again (the HTTP answer is 503 with Retry-After).
UNAVAILABLE_CODE = "SERVICE_UNAVAILABLE"


def unavailable_error(error: GraphQLError, dependency: str) -> GraphQLError:
    return GraphQLError(
        message=(
            f"The service is unavailable: {dependency} cannot be reached right now. "
            "Please try again shortly."
        ),
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions={"code": UNAVAILABLE_CODE, "dependency": dependency},
    )


def mark_unavailable(context: Any, dependency: str) -> None:
    """Answer the request 503 with Retry-After (an HTTP request's; a WebSocket has no
    status to set)."""
    response = getattr(context, "response", None)
    if response is None or not hasattr(response, "status_code"):
        return
    response.status_code = 503
    retry_after = context.services.settings.outage_retry_after_seconds
    response.headers["Retry-After"] = str(retry_after)


class MaskUnexpected(MaskErrors):
    _unavailable: str | None = None

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        dependency = unavailable_dependency(error.original_error) if error.original_error else None
        if dependency:
            self._unavailable = dependency
            return unavailable_error(error, dependency)
        masked = super().anonymise_error(error)
        masked.extensions = {"code": UNEXPECTED_CODE}
        return masked

    def on_operation(self) -> Iterator[None]:
        self._unavailable = None
        yield from super().on_operation()
        if self._unavailable:
            mark_unavailable(self.execution_context.context, self._unavailable)


def mask_errors() -> Callable[[], MaskErrors]:
    return lambda: MaskUnexpected(should_mask_error=is_unexpected, error_message=UNEXPECTED_MESSAGE)


_MASK = mask_errors()()


def for_client(errors: list[GraphQLError], context: Any = None) -> list[GraphQLError]:
    """For operations served outside Strawberry's extensions: log what is unexpected, and
    return the errors as a client may see them, unexpected ones masked as the extension
    masks them (and, for an outage, the request's answer made a 503)."""
    log_unexpected(errors)
    shown = []
    for error in errors:
        if not is_unexpected(error):
            shown.append(error)
            continue
        assert error.original_error is not None
        dependency = unavailable_dependency(error.original_error)
        if dependency:
            mark_unavailable(context, dependency)
            shown.append(unavailable_error(error, dependency))
        else:
            shown.append(_MASK.anonymise_error(error))
    return shown
