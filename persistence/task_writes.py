"""The writes a worker makes to the task it holds, on a plain asyncpg connection.

Each is one conditional UPDATE that bumps `sequence` and appends its row to
`task_events` in the same statement, and each carries the claim's attempt number, so a
worker that lost its claim changes nothing. They skip the ORM: each statement is built
from the model and compiled once (`persistence.statements`), prepared once per
connection (asyncpg's statement cache), and sent as it stands. A lone statement commits
by itself, so a change is one round trip, where a session's is three (BEGIN, the
statement, COMMIT), and no statement is compiled or given a cache key per call, which
would be most of a worker's CPU per task.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg

from persistence import creation
from persistence.models import FileRole, Task, TaskChange, TaskEvent, TaskFile
from persistence.repository import describe_artifact
from persistence.statements import (
    CLAIM,
    COMPLETE,
    FAIL,
    FINISH_CANCELLED,
    RECORD_OUTPUT,
    RELEASE_LEASE,
    RENEW_LEASE,
    RETRY_LATER,
)


@dataclass(frozen=True)
class Lease:
    held: bool
    cancel_requested: bool = False


# A worker process runs one task at a time: its writes, and a lease renewal beside them.
POOL_SIZE = 2


def _json_or_null(value: object) -> str | None:
    # As text: the statements then run the same on any connection, whatever its codecs.
    return None if value is None else json.dumps(value)


def _seconds(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


def _change(
    task_id: uuid.UUID, row: asyncpg.Record | None, delta: str | None, result_reset: bool
) -> TaskChange | None:
    if row is None:
        return None
    task = Task.from_row({**row, "id": task_id})
    return TaskChange(task, TaskEvent.of(task, delta=delta, result_reset=result_reset))


async def claim_task(
    connection: asyncpg.Connection, task_id: uuid.UUID, lease_seconds: float, max_attempts: int
) -> TaskChange | None:
    """Take a PENDING task, or one whose worker died, for this worker.

    Returns None when the task is running elsewhere, finished, unknown, or has been
    started `max_attempts` times already. `attempts` numbers the claim; later writes
    carry it, so a worker that lost its claim writes nothing.
    """
    row = await connection.fetchrow(CLAIM, task_id, None, _seconds(lease_seconds), max_attempts)
    return _change(task_id, row, None, result_reset=True)


async def record_output(
    connection: asyncpg.Connection,
    task_id: uuid.UUID,
    attempt: int,
    *,
    delta: str | None,
    progress: float,
    stage: str | None,
    lease_seconds: float,
) -> TaskChange | None:
    """Append output to the result and note the progress, as the worker that holds the
    task (claim number `attempt`); the write also renews its lease."""
    row = await connection.fetchrow(
        RECORD_OUTPUT, task_id, delta, attempt, _seconds(lease_seconds), progress, stage
    )
    return _change(task_id, row, delta, result_reset=False)


async def renew_lease(
    connection: asyncpg.Connection, task_id: uuid.UUID, attempt: int, lease_seconds: float
) -> Lease:
    """Keep the claim alive, and say whether a caller asked to cancel the task. Not a
    change a client sees, so `sequence` stays."""
    row = await connection.fetchrow(RENEW_LEASE, task_id, attempt, _seconds(lease_seconds))
    if row is None:
        return Lease(held=False)
    return Lease(held=True, cancel_requested=row[0] is not None)


async def complete_task(
    connection: asyncpg.Connection,
    task_id: uuid.UUID,
    attempt: int,
    delta: str,
    *,
    output: dict[str, Any] | None = None,
    artifacts: Sequence[TaskFile] = (),
) -> TaskChange | None:
    """Finish the task; `delta` is the output not yet appended to the result. The
    artifacts are stored in the same transaction, and only by the worker holding it."""
    described = [describe_artifact(file) for file in artifacts] if artifacts else None
    parameters = (task_id, delta, attempt, _json_or_null(output), _json_or_null(described))
    if not artifacts:
        return _change(task_id, await connection.fetchrow(COMPLETE, *parameters), delta, False)
    async with connection.transaction():
        change = _change(task_id, await connection.fetchrow(COMPLETE, *parameters), delta, False)
        if change is not None:
            await creation.insert_files(connection, task_id, FileRole.ARTIFACT, artifacts)
    return change


async def fail_task(
    connection: asyncpg.Connection,
    task_id: uuid.UUID,
    attempt: int,
    error: str,
    delta: str | None = None,
) -> TaskChange | None:
    """End the task FAILED; the output so far (and `delta`) stays in its result."""
    row = await connection.fetchrow(FAIL, task_id, delta, attempt, error)
    return _change(task_id, row, delta, result_reset=False)


async def finish_cancelled(
    connection: asyncpg.Connection, task_id: uuid.UUID, attempt: int, delta: str | None = None
) -> TaskChange | None:
    """End a running task CANCELLED, as its worker; the output so far is kept."""
    row = await connection.fetchrow(FINISH_CANCELLED, task_id, delta, attempt)
    return _change(task_id, row, delta, result_reset=False)


async def retry_later(
    connection: asyncpg.Connection,
    task_id: uuid.UUID,
    attempt: int,
    *,
    error: str,
    delay_seconds: float,
    delta: str | None = None,
) -> TaskChange | None:
    """Put a task whose attempt failed for a passing reason back to PENDING, to start
    again in `delay_seconds`; the error goes into its history."""
    row = await connection.fetchrow(
        RETRY_LATER, task_id, delta, attempt, error, _seconds(delay_seconds)
    )
    return _change(task_id, row, delta, result_reset=False)


async def release_lease(
    connection: asyncpg.Connection, task_id: uuid.UUID, attempt: int | None = None
) -> bool:
    """End the lease of a running task whose worker gave it up or is known to be dead, so
    the task can be claimed again at once instead of when the lease would have run out.
    Returns whether a lease was ended.

    Without `attempt` (the worker's main process, which cannot tell which claim its dead
    pool process held): if that process had already lost the task to another worker,
    this makes the other worker's claim look lost too; the task restarts, but is still
    finished once.
    """
    return await connection.fetchval(RELEASE_LEASE, task_id, attempt) is not None
