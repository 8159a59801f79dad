"""Every query on `tasks`. Each transition is one conditional UPDATE that bumps `sequence`,
so a message delivered twice can neither move a task backwards nor finish it twice."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.models import Task, TaskKind, TaskStatus


@dataclass(frozen=True)
class PageKey:
    """Where a page of the newest-first listing starts after."""

    created_at: datetime
    task_id: uuid.UUID


async def insert_task(session: AsyncSession, *, kind: TaskKind, prompt: str, model: str) -> Task:
    task = Task(kind=kind, prompt=prompt, model=model, status=TaskStatus.PENDING)
    session.add(task)
    await session.flush()  # the mapper's eager defaults come back with the INSERT
    return task


async def get_task(session: AsyncSession, task_id: uuid.UUID) -> Task | None:
    return await session.get(Task, task_id, populate_existing=True)


async def list_tasks(
    session: AsyncSession, *, limit: int, after: PageKey | None, status: TaskStatus | None
) -> list[Task]:
    """Newest first, by (created_at, id), so pages never skip or repeat a task."""
    query = select(Task).order_by(Task.created_at.desc(), Task.id.desc()).limit(limit)
    if status is not None:
        query = query.where(Task.status == status)
    if after is not None:
        query = query.where(tuple_(Task.created_at, Task.id) < (after.created_at, after.task_id))
    return list((await session.scalars(query)).all())


def _change(**values: Any) -> dict[str, Any]:
    """The values of a visible change: every one bumps `sequence` and `updated_at`."""
    return {"sequence": Task.sequence + 1, "updated_at": func.now(), **values}


async def _transition(
    session: AsyncSession, task_id: uuid.UUID, condition: Any, **values: Any
) -> Task | None:
    statement = (
        update(Task)
        .where(Task.id == task_id, condition)
        .values(_change(**values))
        .returning(Task)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(statement)).scalar_one_or_none()


def _lease(seconds: float) -> Any:
    return func.now() + timedelta(seconds=seconds)


def _abandoned() -> Any:
    """Running, but its worker stopped renewing the lease: the worker is gone."""
    return and_(Task.status == TaskStatus.PROCESSING, Task.lease_expires_at < func.now())


async def claim_task(
    session: AsyncSession, task_id: uuid.UUID, lease_seconds: float, max_attempts: int
) -> Task | None:
    """Take a PENDING task, or one whose worker died, for this worker.

    Returns None when the task is running elsewhere, finished, unknown, or has been
    started `max_attempts` times already. `attempts` numbers the claim; later writes
    carry it, so a worker that lost its claim writes nothing.
    """
    claimable = or_(
        Task.status == TaskStatus.PENDING,
        and_(_abandoned(), Task.attempts < max_attempts),
    )
    return await _transition(
        session,
        task_id,
        claimable,
        status=TaskStatus.PROCESSING,
        attempts=Task.attempts + 1,
        progress=0.0,
        result=None,
        started_at=func.coalesce(Task.started_at, func.now()),
        lease_expires_at=_lease(lease_seconds),
    )


def _held(attempt: int) -> Any:
    return and_(Task.status == TaskStatus.PROCESSING, Task.attempts == attempt)


async def record_progress(
    session: AsyncSession, task_id: uuid.UUID, attempt: int, progress: float, lease_seconds: float
) -> Task | None:
    return await _transition(
        session,
        task_id,
        _held(attempt),
        progress=progress,
        lease_expires_at=_lease(lease_seconds),
    )


async def renew_lease(
    session: AsyncSession, task_id: uuid.UUID, attempt: int, lease_seconds: float
) -> bool:
    """Keep the claim alive; not a change a client sees, so `sequence` stays."""
    statement = (
        update(Task)
        .where(Task.id == task_id, _held(attempt))
        .values(lease_expires_at=_lease(lease_seconds))
    )
    result: Any = await session.execute(statement)
    return bool(result.rowcount)


async def complete_task(
    session: AsyncSession, task_id: uuid.UUID, attempt: int, result: str
) -> Task | None:
    return await _transition(
        session,
        task_id,
        _held(attempt),
        status=TaskStatus.COMPLETED,
        progress=1.0,
        result=result,
        finished_at=func.now(),
        lease_expires_at=None,
    )


async def fail_task(
    session: AsyncSession, task_id: uuid.UUID, attempt: int, error: str
) -> Task | None:
    return await _transition(
        session,
        task_id,
        _held(attempt),
        status=TaskStatus.FAILED,
        error=error,
        finished_at=func.now(),
        lease_expires_at=None,
    )


async def take_stale_tasks(
    session: AsyncSession, *, pending_for_seconds: float, limit: int
) -> list[Task]:
    """Tasks whose message may be lost: PENDING too long, or held by a dead worker.

    Marks them enqueued now, so the next sweep leaves them alone for another interval, and
    skips rows another sweeper has locked, so two sweepers never send the same task twice.
    """
    waited_long = func.now() - timedelta(seconds=pending_for_seconds)
    stale = (
        select(Task.id)
        .where(
            or_(
                and_(Task.status == TaskStatus.PENDING, Task.enqueued_at < waited_long),
                # A dead worker's task goes out at once when its lease runs out, then again
                # each interval, like a PENDING one, until a worker claims it.
                and_(
                    _abandoned(),
                    Task.enqueued_at < func.greatest(Task.lease_expires_at, waited_long),
                ),
            )
        )
        .order_by(Task.enqueued_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    statement = (
        update(Task)
        .where(Task.id.in_(stale.scalar_subquery()))
        .values(enqueued_at=func.now())
        .returning(Task)
    )
    return list((await session.execute(statement)).scalars().all())


async def fail_abandoned_tasks(
    session: AsyncSession, *, max_attempts: int, error: str, limit: int
) -> list[Task]:
    """End tasks whose worker was lost on every one of `max_attempts` tries.

    Such a task most likely kills its worker (memory, a hard limit); trying again would
    only take down one worker after another.
    """
    doomed = (
        select(Task.id)
        .where(_abandoned(), Task.attempts >= max_attempts)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    statement = (
        update(Task)
        .where(Task.id.in_(doomed.scalar_subquery()))
        .values(
            _change(
                status=TaskStatus.FAILED,
                error=error,
                finished_at=func.now(),
                lease_expires_at=None,
            )
        )
        .returning(Task)
    )
    return list((await session.execute(statement)).scalars().all())


async def mark_not_enqueued(session: AsyncSession, task_ids: list[uuid.UUID]) -> None:
    """Undo `take_stale_tasks` for tasks whose message could not be sent after all, so the
    next sweep tries them again instead of waiting a whole interval."""
    if task_ids:
        await session.execute(
            update(Task).where(Task.id.in_(task_ids)).values(enqueued_at=Task.created_at)
        )
