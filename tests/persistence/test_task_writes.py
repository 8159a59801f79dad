"""The worker's writes on plain asyncpg keep the repository's rules: each change is
conditional, bumps the sequence and is logged once; a stale or duplicate write changes
nothing.

Each test runs in a transaction that is rolled back.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from persistence import task_writes
from persistence.database import create_engine, create_pool
from persistence.models import TaskEvent, TaskFile, TaskStatus
from tests.fixtures.stack import Stack

pytestmark = pytest.mark.anyio
LEASE = 30.0
MAX_ATTEMPTS = 3
AN_HOUR = timedelta(hours=1)
NEW_TASK = """
    INSERT INTO tasks (id, owner, kind, prompt, model, status, stage, priority, timeout_seconds)
    VALUES ($1, 'tests', 'TEXT_GENERATION', 'p', 'demo', 'PENDING', 'queued', 'NORMAL', 60)"""
EXPIRE_LEASE = "UPDATE tasks SET lease_expires_at = created_at - $2::interval WHERE id = $1"
EVENTS = "SELECT * FROM task_events WHERE task_id = $1 ORDER BY sequence"
FILES = "SELECT name, content_type, data FROM task_files WHERE task_id = $1 AND role = $2"


@pytest.fixture
async def connection(stack: Stack) -> AsyncIterator[asyncpg.Connection]:
    engine = create_engine(stack.database_url, "aitasks-tests")
    pool = await create_pool(engine, "aitasks-tests", task_writes.POOL_SIZE)
    try:
        async with pool.acquire() as connection:
            transaction = connection.transaction()
            await transaction.start()
            yield connection
            await transaction.rollback()
    finally:
        await pool.close()
        await engine.dispose()


async def new_task(connection: asyncpg.Connection) -> uuid.UUID:
    task_id = uuid.uuid4()
    await connection.execute(NEW_TASK, task_id)
    return task_id


async def output(
    connection: asyncpg.Connection, task_id: uuid.UUID, attempt: int, delta: str | None
) -> Any:
    return await task_writes.record_output(
        connection,
        task_id,
        attempt,
        delta=delta,
        progress=0.5,
        stage="generating",
        lease_seconds=LEASE,
    )


async def logged(connection: asyncpg.Connection, task_id: uuid.UUID) -> list[TaskEvent]:
    rows = await connection.fetch(EVENTS, task_id)
    return [TaskEvent(**{**row, "status": TaskStatus(row["status"])}) for row in rows]


async def test_each_change_bumps_the_sequence_and_is_logged_as_published(
    connection: asyncpg.Connection,
) -> None:
    task_id = await new_task(connection)

    claim = await task_writes.claim_task(connection, task_id, LEASE, MAX_ATTEMPTS)
    again = await task_writes.claim_task(connection, task_id, LEASE, MAX_ATTEMPTS)
    progressed = await output(connection, task_id, 1, "Hel")
    quiet = await output(connection, task_id, 1, None)
    completion = await task_writes.complete_task(connection, task_id, 1, "lo")

    assert claim is not None and again is None
    assert progressed is not None and quiet is not None and completion is not None
    assert (claim.task.status, claim.task.sequence, claim.task.attempts) == (
        TaskStatus.PROCESSING,
        2,
        1,
    )
    completed = completion.task
    assert (completed.status, completed.sequence, completed.progress, completed.result) == (
        TaskStatus.COMPLETED,
        5,
        1.0,
        "Hello",
    )
    assert completed.finished_at is not None and completed.lease_expires_at is None
    changes = [claim, progressed, quiet, completion]
    assert await logged(connection, task_id) == [change.event for change in changes]
    assert [change.event.delta for change in changes] == [None, "Hel", None, "lo"]
    assert claim.event.result_reset


async def test_a_finished_task_cannot_change_again(connection: asyncpg.Connection) -> None:
    task_id = await new_task(connection)
    await task_writes.claim_task(connection, task_id, LEASE, MAX_ATTEMPTS)
    await task_writes.complete_task(connection, task_id, 1, "first")

    assert await task_writes.complete_task(connection, task_id, 1, "second") is None
    assert await task_writes.fail_task(connection, task_id, 1, "late failure") is None
    assert await task_writes.finish_cancelled(connection, task_id, 1) is None
    assert await output(connection, task_id, 1, "late") is None
    assert await task_writes.claim_task(connection, task_id, LEASE, MAX_ATTEMPTS) is None
    assert len(await logged(connection, task_id)) == 2


async def test_a_worker_that_lost_its_claim_writes_nothing(connection: asyncpg.Connection) -> None:
    task_id = await new_task(connection)
    await task_writes.claim_task(connection, task_id, LEASE, MAX_ATTEMPTS)
    assert (await task_writes.renew_lease(connection, task_id, 1, LEASE)).held
    await connection.execute(EXPIRE_LEASE, task_id, AN_HOUR)
    taken_over = await task_writes.claim_task(connection, task_id, LEASE, MAX_ATTEMPTS)
    assert taken_over is not None and taken_over.task.attempts == 2
    assert taken_over.task.result is None

    artifact = TaskFile("late.png", "image/png", b"late")
    stale = await task_writes.complete_task(connection, task_id, 1, "stale", artifacts=[artifact])
    assert stale is None
    assert not (await task_writes.renew_lease(connection, task_id, 1, LEASE)).held
    assert await connection.fetch(FILES, task_id, "artifact") == []
    finished = await task_writes.complete_task(connection, task_id, 2, "fresh")
    assert finished is not None and finished.task.result == "fresh"


async def test_a_failure_and_a_retry_keep_the_error_history(
    connection: asyncpg.Connection,
) -> None:
    task_id = await new_task(connection)
    await task_writes.claim_task(connection, task_id, LEASE, MAX_ATTEMPTS)

    retry = await task_writes.retry_later(
        connection, task_id, 1, error="rate limited", delay_seconds=0
    )
    await task_writes.claim_task(connection, task_id, LEASE, MAX_ATTEMPTS)
    failure = await task_writes.fail_task(connection, task_id, 2, "bad request", delta="partial")

    assert retry is not None and retry.task.status == TaskStatus.PENDING
    assert retry.task.scheduled_for is not None and retry.task.lease_expires_at is None
    assert failure is not None
    assert (failure.task.status, failure.task.error, failure.task.result) == (
        TaskStatus.FAILED,
        "bad request",
        "partial",
    )
    history = [
        (entry["attempt"], entry["message"], entry["transient"]) for entry in failure.task.errors
    ]
    assert history == [(1, "rate limited", True), (2, "bad request", False)]


async def test_output_and_artifacts_are_stored_with_the_completion(
    connection: asyncpg.Connection,
) -> None:
    task_id = await new_task(connection)
    await task_writes.claim_task(connection, task_id, LEASE, MAX_ATTEMPTS)
    artifact = TaskFile("photo-processed.png", "image/png", b"\x89PNG result")

    finished = await task_writes.complete_task(
        connection, task_id, 1, "", output={"width": 1, "height": 2}, artifacts=[artifact]
    )

    assert finished is not None
    assert finished.task.output == {"width": 1, "height": 2}
    assert finished.task.artifacts == [
        {"name": artifact.name, "contentType": "image/png", "size": artifact.size}
    ]
    assert finished.event.artifacts == finished.task.artifacts
    stored = await connection.fetch(FILES, task_id, "artifact")
    assert [TaskFile(*row) for row in stored] == [artifact]


async def test_a_released_lease_lets_the_task_be_claimed_again_at_once(
    connection: asyncpg.Connection,
) -> None:
    task_id = await new_task(connection)
    await task_writes.claim_task(connection, task_id, LEASE, MAX_ATTEMPTS)
    assert await task_writes.claim_task(connection, task_id, LEASE, MAX_ATTEMPTS) is None

    assert not await task_writes.release_lease(connection, task_id, attempt=2)
    assert await task_writes.release_lease(connection, task_id, attempt=1)
    taken_over = await task_writes.claim_task(connection, task_id, LEASE, MAX_ATTEMPTS)

    assert taken_over is not None and taken_over.task.attempts == 2
    # Whoever holds it now: its lease is ended too, but nothing else changes.
    assert await task_writes.release_lease(connection, task_id)
    assert not await task_writes.release_lease(connection, task_id)
    assert len(await logged(connection, task_id)) == 2
