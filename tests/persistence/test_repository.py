"""Transitions are conditional: a duplicate or stale write changes nothing.

Each test runs in a transaction that is rolled back, so nothing it writes is seen by the
worker or any other test.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from persistence import repository, task_writes
from persistence.database import create_engine
from persistence.models import (
    FileRole,
    Task,
    TaskChange,
    TaskFile,
    TaskPriority,
    TaskStatus,
)
from tests.fixtures.stack import Stack
from tests.fixtures.tasks import driver, insert_in_session

pytestmark = pytest.mark.anyio
LEASE = 30.0
MAX_ATTEMPTS = 3
# Inside one transaction now() stands still, so the past is made explicit.
AN_HOUR = timedelta(hours=1)


@pytest.fixture
async def session(stack: Stack) -> AsyncIterator[AsyncSession]:
    engine = create_engine(stack.database_url, "aitasks-tests")
    async with engine.connect() as connection:
        transaction = await connection.begin()
        yield AsyncSession(bind=connection, expire_on_commit=False)
        await transaction.rollback()
    await engine.dispose()


async def new_task(session: AsyncSession, prompt: str = "p", **options: Any) -> Task:
    options.setdefault("kind", "TEXT_GENERATION")
    row = repository.NewTaskRow(
        owner="tests",
        prompt=prompt,
        model="demo",
        priority=TaskPriority.NORMAL,
        timeout_seconds=60,
        **options,
    )
    return await insert_in_session(session, row)


async def output(
    session: AsyncSession, task_id: uuid.UUID, attempt: int, delta: str | None, progress: float
) -> TaskChange | None:
    return await task_writes.record_output(
        await driver(session),
        task_id,
        attempt,
        delta=delta,
        progress=progress,
        stage="generating",
        lease_seconds=LEASE,
    )


async def test_a_new_task_is_pending_with_sequence_one(session: AsyncSession) -> None:
    task = await new_task(session)

    assert (task.status, task.sequence, task.attempts, task.progress) == (
        TaskStatus.PENDING,
        1,
        0,
        0.0,
    )


async def test_the_kind_column_takes_a_new_kinds_name_without_a_migration(
    session: AsyncSession,
) -> None:
    task = await new_task(session, kind="ECHO_2")

    assert (await session.get(Task, task.id)) is not None
    assert task.kind == "ECHO_2"


@pytest.mark.parametrize("name", ["echo", "ECHO-2", "2ECHO", "ECHO ", "ECHO\n"])
async def test_the_kind_column_refuses_a_name_no_kind_could_have(
    session: AsyncSession, name: str
) -> None:
    with pytest.raises(asyncpg.CheckViolationError, match="task_kind_name"):
        await new_task(session, kind=name)


async def test_a_task_is_claimed_once_and_each_change_bumps_the_sequence(
    session: AsyncSession,
) -> None:
    task = await new_task(session)

    claim = await task_writes.claim_task(await driver(session), task.id, LEASE, MAX_ATTEMPTS)
    again = await task_writes.claim_task(await driver(session), task.id, LEASE, MAX_ATTEMPTS)

    assert claim is not None and again is None
    claimed = claim.task
    assert (claimed.status, claimed.sequence, claimed.attempts) == (TaskStatus.PROCESSING, 2, 1)
    progressed = await output(session, task.id, 1, "partial ", 0.5)
    assert progressed is not None and progressed.task.sequence == 3
    assert progressed.task.result == "partial "
    completion = await task_writes.complete_task(await driver(session), task.id, 1, "answer")
    assert completion is not None
    completed = completion.task
    assert (completed.status, completed.sequence, completed.progress, completed.result) == (
        TaskStatus.COMPLETED,
        4,
        1.0,
        "partial answer",
    )
    assert completed.finished_at is not None and completed.started_at is not None


async def test_every_change_is_logged_once_and_replaying_the_log_gives_the_task(
    session: AsyncSession,
) -> None:
    task = await new_task(session)
    await task_writes.claim_task(await driver(session), task.id, LEASE, MAX_ATTEMPTS)
    await output(session, task.id, 1, "Hel", 0.2)
    await output(session, task.id, 1, None, 0.4)
    await output(session, task.id, 1, "lo", 0.6)
    await task_writes.complete_task(await driver(session), task.id, 1, ", world")

    events = await repository.list_events(session, task.id, after=0)
    stored = await repository.get_task(session, task.id, owner=None)

    assert stored is not None
    assert [event.sequence for event in events] == [1, 2, 3, 4, 5, 6]
    assert [event.delta for event in events] == [None, None, "Hel", None, "lo", ", world"]
    replayed = stored.evolve(result="anything: the creation starts it afresh")
    for event in events:
        replayed = event.apply_to(replayed)
    columns = [column.key for column in Task.__mapper__.column_attrs]
    assert {key: getattr(replayed, key) for key in columns} == {
        key: getattr(stored, key) for key in columns
    }
    assert replayed.result == "Hello, world"
    assert await repository.list_events(session, task.id, after=3, up_to=5) == events[3:5]


async def test_a_new_attempt_starts_the_result_afresh(session: AsyncSession) -> None:
    task = await new_task(session)
    await task_writes.claim_task(await driver(session), task.id, LEASE, MAX_ATTEMPTS)
    await output(session, task.id, 1, "from the first worker", 0.5)
    await expire_lease(session, task)

    retaken = await task_writes.claim_task(await driver(session), task.id, LEASE, MAX_ATTEMPTS)

    assert retaken is not None and retaken.task.result is None
    assert retaken.event.result_reset and retaken.event.delta is None


async def test_the_log_of_a_long_finished_task_is_pruned_and_others_kept(
    session: AsyncSession,
) -> None:
    old, running = await new_task(session, prompt="old"), await new_task(session, prompt="new")
    for task in (old, running):
        await task_writes.claim_task(await driver(session), task.id, LEASE, MAX_ATTEMPTS)
    await task_writes.complete_task(await driver(session), old.id, 1, "done")
    await session.execute(
        update(Task).where(Task.id == old.id).values(finished_at=Task.created_at - AN_HOUR)
    )

    # Half an hour ago: the old task ended before, the other tests' tasks after.
    cutoff = await repository.database_now(session) - AN_HOUR / 2
    pruned = await repository.prune_events(session, finished_before=cutoff, limit=1000)

    assert pruned == 3
    assert await repository.list_events(session, old.id, after=0) == []
    assert len(await repository.list_events(session, running.id, after=0)) == 2
    assert (await repository.get_task(session, old.id, owner=None)).result == "done"  # type: ignore[union-attr]


async def test_a_finished_task_cannot_change_again(session: AsyncSession) -> None:
    task = await new_task(session)
    await task_writes.claim_task(await driver(session), task.id, LEASE, MAX_ATTEMPTS)
    await task_writes.complete_task(await driver(session), task.id, 1, "first")

    assert await task_writes.complete_task(await driver(session), task.id, 1, "second") is None
    assert await task_writes.fail_task(await driver(session), task.id, 1, "late failure") is None
    assert await output(session, task.id, 1, "late", 0.1) is None
    assert await task_writes.claim_task(await driver(session), task.id, LEASE, MAX_ATTEMPTS) is None
    stored = await repository.get_task(session, task.id, owner=None)
    assert stored is not None
    assert (stored.status, stored.result, stored.sequence) == (TaskStatus.COMPLETED, "first", 3)


async def test_a_worker_that_lost_its_claim_writes_nothing(session: AsyncSession) -> None:
    task = await new_task(session)
    await task_writes.claim_task(await driver(session), task.id, LEASE, MAX_ATTEMPTS)
    # The first worker stalls past its lease; a second one takes the task over.
    await session.execute(
        update(Task).where(Task.id == task.id).values(lease_expires_at=Task.created_at - AN_HOUR)
    )
    taken_over = await task_writes.claim_task(await driver(session), task.id, LEASE, MAX_ATTEMPTS)
    assert taken_over is not None and taken_over.task.attempts == 2

    assert await task_writes.complete_task(await driver(session), task.id, 1, "stale") is None
    assert (await task_writes.renew_lease(await driver(session), task.id, 1, LEASE)).held is False
    finished = await task_writes.complete_task(await driver(session), task.id, 2, "fresh")
    assert finished is not None and finished.task.result == "fresh"


async def test_a_running_task_with_a_live_lease_is_not_taken(session: AsyncSession) -> None:
    task = await new_task(session)
    await task_writes.claim_task(await driver(session), task.id, LEASE, MAX_ATTEMPTS)

    assert await task_writes.claim_task(await driver(session), task.id, LEASE, MAX_ATTEMPTS) is None
    assert (await task_writes.renew_lease(await driver(session), task.id, 1, LEASE)).held is True


async def test_stale_tasks_are_taken_once_per_interval(session: AsyncSession) -> None:
    task = await new_task(session, prompt="stale")
    await session.execute(
        update(Task).where(Task.id == task.id).values(enqueued_at=Task.created_at - AN_HOUR)
    )

    first = await repository.take_stale_tasks(session, pending_for_seconds=60, limit=1000)
    second = await repository.take_stale_tasks(session, pending_for_seconds=60, limit=1000)

    assert task.id in {stale.id for stale in first}
    assert task.id not in {stale.id for stale in second}


async def test_a_dead_workers_task_is_sent_again_as_soon_as_its_lease_runs_out(
    session: AsyncSession,
) -> None:
    task = await new_task(session, prompt="orphaned by a crash")
    await task_writes.claim_task(await driver(session), task.id, LEASE, MAX_ATTEMPTS)
    await session.execute(
        update(Task)
        .where(Task.id == task.id)
        .values(
            enqueued_at=Task.created_at - AN_HOUR, lease_expires_at=Task.created_at - AN_HOUR / 2
        )
    )

    # Sent once right away, even with a long interval for PENDING tasks...
    first = await repository.take_stale_tasks(session, pending_for_seconds=3600 * 24, limit=1000)
    # ...and not again until that interval has passed.
    second = await repository.take_stale_tasks(session, pending_for_seconds=3600 * 24, limit=1000)

    assert task.id in {stale.id for stale in first}
    assert task.id not in {stale.id for stale in second}


async def expire_lease(session: AsyncSession, task: Task) -> None:
    await session.execute(
        update(Task).where(Task.id == task.id).values(lease_expires_at=Task.created_at - AN_HOUR)
    )


async def test_a_task_that_lost_its_worker_too_often_is_failed_not_retried(
    session: AsyncSession,
) -> None:
    task = await new_task(session, prompt="kills its worker")
    for _ in range(MAX_ATTEMPTS):
        assert (
            await task_writes.claim_task(await driver(session), task.id, LEASE, MAX_ATTEMPTS)
            is not None
        )
        await expire_lease(session, task)

    assert await task_writes.claim_task(await driver(session), task.id, LEASE, MAX_ATTEMPTS) is None
    failed = await repository.fail_abandoned_tasks(
        session, max_attempts=MAX_ATTEMPTS, error="gave up", limit=1000
    )

    mine = [change.task for change in failed if change.task.id == task.id]
    assert len(mine) == 1
    assert (mine[0].status, mine[0].error, mine[0].sequence) == (TaskStatus.FAILED, "gave up", 5)
    logged = await repository.list_events(session, task.id, after=4)
    assert [(event.sequence, event.status) for event in logged] == [(5, TaskStatus.FAILED)]
    stale = await repository.take_stale_tasks(session, pending_for_seconds=0, limit=1000)
    assert task.id not in {stale_task.id for stale_task in stale}


async def test_input_files_and_artifacts_are_stored_with_the_task(session: AsyncSession) -> None:
    source = TaskFile("photo.png", "image/png", b"\x89PNG input")
    task = await new_task(session, files=(source,))
    await task_writes.claim_task(await driver(session), task.id, LEASE, MAX_ATTEMPTS)
    artifact = TaskFile("photo-processed.png", "image/png", b"\x89PNG result")

    finished = await task_writes.complete_task(
        await driver(session), task.id, 1, "", output={"width": 1}, artifacts=[artifact]
    )

    assert finished is not None
    assert finished.task.inputs[0]["size"] == source.size
    assert finished.task.output == {"width": 1}
    assert finished.task.artifacts == [
        {"name": artifact.name, "contentType": "image/png", "size": artifact.size}
    ]
    assert finished.event.artifacts == finished.task.artifacts
    assert await repository.get_files(session, task.id, FileRole.INPUT) == [source]
    assert await repository.get_artifact(session, task.id, artifact.name, owner="tests") == artifact
    assert await repository.get_artifact(session, task.id, source.name, owner="tests") is None


async def test_a_worker_that_lost_its_claim_stores_no_artifact(session: AsyncSession) -> None:
    task = await new_task(session)
    await task_writes.claim_task(await driver(session), task.id, LEASE, MAX_ATTEMPTS)
    artifact = TaskFile("late.png", "image/png", b"late")

    assert (
        await task_writes.complete_task(await driver(session), task.id, 2, "", artifacts=[artifact])
        is None
    )
    assert await repository.get_files(session, task.id, FileRole.ARTIFACT) == []
