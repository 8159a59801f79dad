"""The HTTP request being served, for its log line: set by the API's outermost layer and
filled in as the request goes (the GraphQL operation, the caller). Kept apart from the
schema so that logging can be set up without building it."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RequestInfo:
    """What the log line of one HTTP request says, filled in as the request is served."""

    request_id: str
    operation: str | None = None  # "mutation createTask", say
    caller: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


CURRENT_REQUEST: contextvars.ContextVar[RequestInfo | None] = contextvars.ContextVar(
    "aitasks_request", default=None
)
