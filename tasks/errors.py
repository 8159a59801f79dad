"""Domain errors. Each has a stable `code`; the GraphQL layer maps them in one place."""

from __future__ import annotations

from typing import Any

from persistence.models import TaskStatus


class AitasksError(Exception):
    """An expected failure whose message is safe and useful to show the caller."""

    code = "AITASKS_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def extensions(self) -> dict[str, Any]:
        # graphql-core copies this onto the GraphQL error.
        return {"code": self.code}


class Unauthenticated(AitasksError):
    code = "UNAUTHENTICATED"

    def __init__(self) -> None:
        super().__init__("An API key is needed for this operation.")


class TaskLimitError(AitasksError):
    """A caller's limit is reached; `retry_after_seconds` says when to try again, where a
    time can tell (a per-minute rate), and is None where it cannot (unfinished tasks)."""

    code = "RATE_LIMITED"

    def __init__(self, message: str, retry_after_seconds: float | None) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class TaskNotFoundError(AitasksError):
    code = "NOT_FOUND"

    def __init__(self, task_id: object) -> None:
        super().__init__(f"No task with id {str(task_id)!r} exists.")


class InvalidInputError(AitasksError):
    """Input that cannot be accepted; `field` names the offending input field."""

    code = "BAD_USER_INPUT"

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field


class TaskStateError(AitasksError):
    """The task is in a status where the operation does not apply."""

    code = "INVALID_STATE"

    def __init__(self, status: TaskStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
