"""Opaque cursors for the newest-first task listing."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import UTC, datetime

from persistence.models import Task
from persistence.repository import PageKey
from tasks.errors import InvalidInputError

PREFIX = "task:"
# Years a cursor may name: PostgreSQL and Python both handle these without overflow.
EARLIEST, LATEST = 2000, 9000


def encode_cursor(task: Task) -> str:
    raw = f"{PREFIX}{task.created_at.isoformat()}|{task.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_cursor(cursor: str) -> PageKey:
    try:
        raw = base64.urlsafe_b64decode(cursor.encode()).decode()
        if not raw.startswith(PREFIX):
            raise ValueError(raw)
        created_at, task_id = raw.removeprefix(PREFIX).split("|", 1)
        key = PageKey(datetime.fromisoformat(created_at).astimezone(UTC), uuid.UUID(task_id))
        if not EARLIEST <= key.created_at.year <= LATEST:
            raise ValueError(created_at)
        return key
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise InvalidInputError(
            "after", "`after` is not a cursor from this API; pass an `endCursor` you received."
        ) from None
