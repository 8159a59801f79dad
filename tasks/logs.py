"""How every process logs (one JSON object per line in production, readable lines in
development), and the log line of a task's transition, the same from the API and the
workers.

Every line written while serving an HTTP request carries its request id, and lines about
a task carry its `task_id` (pass it as `extra={"task_id": ...}`).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

from persistence.models import Task
from tasks.request_info import CURRENT_REQUEST

# Attributes every LogRecord has; anything else on a record came in through `extra`.
# uvicorn adds `color_message`, the message with terminal colour codes: never wanted here.
STANDARD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "color_message",
}


class _WithRequestId(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        request = CURRENT_REQUEST.get()
        if request is not None and not hasattr(record, "request_id"):
            record.request_id = request.request_id
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key, value in vars(record).items() if key not in STANDARD_ATTRIBUTES}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_extras(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """The readable form: the message, then its extras as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = " ".join(f"{key}={value}" for key, value in _extras(record).items())
        return f"{line} [{extras}]" if extras else line


def configure(json_lines: bool, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_WithRequestId())
    if json_lines:
        handler.setFormatter(JsonFormatter())
        handler.formatter.converter = time.gmtime  # type: ignore[union-attr]
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # These narrate every step at INFO: pgserver's commands with their whole output,
    # alembic's plugin set-up, each health-check request; uvicorn's access log is
    # replaced by RequestLog's one line per request.
    # alembic's each migration step (the commands say "migrating" themselves).
    chatty_loggers = ("pgserver", "alembic.runtime", "httpx", "uvicorn.access")
    for chatty in chatty_loggers:
        logging.getLogger(chatty).setLevel(logging.WARNING)


transitions = logging.getLogger("aitasks.transitions")


def log_transition(task: Task) -> None:
    """One line per status a task enters, with its id: never its prompt or result."""
    transitions.info(
        "task %s %s",
        task.id,
        task.status.value,
        extra={
            "task_id": str(task.id),
            "kind": task.kind,
            "status": task.status.value,
            "attempt": task.attempts,
            "stage": task.stage,
        },
    )
