"""The statements of `createTask`, run on the driver's own connection.

Creating a task is the API's hot path: measured per create, the ORM session (its
unit-of-work machinery, statement compilation lookups, loading the returned row into an
identity map) cost more CPU than the round trip to PostgreSQL. These statements are
written out once as SQL, prepared by asyncpg on each connection, and the returned row is
turned into a `Task` directly. A worker's writes are done the same way
(`persistence.task_writes`); the rest goes through the ORM in `repository`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

import orjson
from asyncpg import Connection

from persistence.models import (
    EVENT_STATE_COLUMNS,
    QUEUED_STAGE,
    FileRole,
    Task,
    TaskFile,
    TaskStatus,
)
from persistence.repository import NewTaskRow

_TASK_COLUMNS = ", ".join(column.name for column in Task.__table__.columns)
_EVENT_COLUMNS = ", ".join(("task_id", "sequence", *EVENT_STATE_COLUMNS, "delta", "result_reset"))

# The task and its creation's log entry (sequence 1), in one statement. `params` and
# `inputs` go as JSON text, whatever JSON codec the connection has. `$13` is the
# delay: NULL when there is none (now() + NULL is NULL); `$14` is how far ahead the
# message was handed to the broker, for a delayed task sent now.
_INSERT_TASK = f"""
WITH created AS (
    INSERT INTO tasks (id, owner, kind, prompt, model, status, stage, priority,
                       timeout_seconds, idempotency_key, params, inputs,
                       scheduled_for, enqueued_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::text::json, $12::text::jsonb,
            now() + $13::interval, now() + $14::interval)
    {{conflict}}
    RETURNING {_TASK_COLUMNS}
), logged AS (
    INSERT INTO task_events ({_EVENT_COLUMNS})
    SELECT id, sequence, {", ".join(EVENT_STATE_COLUMNS)}, NULL, true FROM created
)
SELECT * FROM created
"""
INSERT_TASK = _INSERT_TASK.format(conflict="")
# With an idempotency key, a second create with the same key stores nothing.
INSERT_KEYED_TASK = _INSERT_TASK.format(
    conflict="ON CONFLICT (owner, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
)
INSERT_FILE = """
INSERT INTO task_files (task_id, role, name, content_type, size, data)
VALUES ($1, $2, $3, $4, $5, $6)
"""
# Counting stops at `up_to`, so the check costs the same however many there are.
COUNT_UNFINISHED = """
SELECT count(*) FROM (
    SELECT 1 FROM tasks
    WHERE owner = $1 AND status IN ('PENDING', 'PROCESSING')
    LIMIT $2
) AS unfinished
"""
FIND_BY_IDEMPOTENCY_KEY = f"""
SELECT {_TASK_COLUMNS} FROM tasks WHERE owner = $1 AND idempotency_key = $2
"""
RELEASE_IDEMPOTENCY_KEY = """
UPDATE tasks SET idempotency_key = NULL
WHERE owner = $1 AND idempotency_key = $2 AND created_at < $3
"""


def _json(value: object) -> str:
    return orjson.dumps(value).decode()


async def insert_task(connection: Connection, new: NewTaskRow) -> Task | None:
    """Store a PENDING task and log its creation (sequence 1), in one statement, and its
    input files after it.

    Returns None, storing nothing, when a task with the same idempotency key exists.
    """
    delay = timedelta(seconds=new.delay_seconds) if new.delay_seconds else None
    # A delayed task handed to the broker now counts as sent for its start time.
    enqueue_delay = delay if delay and new.handed_over else timedelta(0)
    statement = INSERT_TASK if new.idempotency_key is None else INSERT_KEYED_TASK
    record = await connection.fetchrow(
        statement,
        uuid.uuid4(),
        new.owner,
        new.kind.value,
        new.prompt,
        new.model,
        TaskStatus.PENDING.value,
        QUEUED_STAGE,
        new.priority.value,
        new.timeout_seconds,
        new.idempotency_key,
        _json(new.params),
        _json(new.inputs),
        delay,
        enqueue_delay,
    )
    if record is None:
        return None
    task = Task.from_row(record)
    if new.files:
        await insert_files(connection, task.id, FileRole.INPUT, new.files)
    return task


async def insert_files(
    connection: Connection, task_id: uuid.UUID, role: FileRole, files: Sequence[TaskFile]
) -> None:
    """Store a task's input files or artifacts."""
    rows = [
        (task_id, role.value, file.name, file.content_type, file.size, file.data) for file in files
    ]
    await connection.executemany(INSERT_FILE, rows)


async def count_unfinished(connection: Connection, owner: str, *, up_to: int) -> int:
    """How many of the owner's tasks are PENDING or PROCESSING, counting no further than
    `up_to`."""
    count: int = await connection.fetchval(COUNT_UNFINISHED, owner, up_to)
    return count


async def find_by_idempotency_key(connection: Connection, owner: str, key: str) -> Task | None:
    record = await connection.fetchrow(FIND_BY_IDEMPOTENCY_KEY, owner, key)
    return None if record is None else Task.from_row(record)


async def release_idempotency_key(
    connection: Connection, owner: str, key: str, older_than: datetime
) -> bool:
    """Free a key whose task was created before `older_than`, for a new task to take."""
    status: str = await connection.execute(RELEASE_IDEMPOTENCY_KEY, owner, key, older_than)
    return status != "UPDATE 0"


async def database_now(connection: Connection) -> datetime:
    now: datetime = await connection.fetchval("SELECT now()")
    return now
