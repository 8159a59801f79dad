"""Every query on `tasks` and `task_events`.

Each change is one conditional UPDATE that bumps `sequence`, so a message delivered twice
can neither move a task backwards nor finish it twice. The same statement appends the
change to `task_events`, so the log has every sequence exactly once, committed or not
at all together with the change.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, insert, literal, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.models import (
    DONE_STAGE,
    EVENT_STATE_COLUMNS,
    FAILED_STAGE,
    QUEUED_STAGE,
    STARTING_STAGE,
    Task,
    TaskChange,
    TaskEvent,
    TaskKind,
    TaskStatus,
    task_events,
)


@dataclass(frozen=True)
class PageKey:
    """Where a page of the newest-first listing starts after."""

    created_at: datetime
    task_id: uuid.UUID


async def insert_task(session: AsyncSession, *, kind: TaskKind, prompt: str, model: str) -> Task:
    task = Task(
        kind=kind, prompt=prompt, model=model, status=TaskStatus.PENDING, stage=QUEUED_STAGE
    )
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


def _logged(changed: Any, delta: str | None, result_reset: bool) -> Any:
    """An INSERT into the log of the change that `changed` (an UPDATE's RETURNING) made."""
    columns = ["task_id", "sequence", *EVENT_STATE_COLUMNS, "delta", "result_reset"]
    values = select(
        changed.c.id,
        changed.c.sequence,
        *(changed.c[name] for name in EVENT_STATE_COLUMNS),
        literal(delta, task_events.c.delta.type),
        literal(result_reset),
    )
    return insert(task_events).from_select(columns, values)


async def _transition(
    session: AsyncSession,
    task_id: uuid.UUID,
    condition: Any,
    *,
    delta: str | None = None,
    result_reset: bool = False,
    **values: Any,
) -> TaskChange | None:
    """Make one change and log it, in a single statement (one round trip)."""
    changed = (
        update(Task)
        .where(Task.id == task_id, condition)
        .values(_change(**values))
        .returning(*Task.__table__.c)
        .cte("changed")
    )
    statement = (
        select(Task)
        .from_statement(
            select(changed).add_cte(_logged(changed, delta, result_reset).cte("logged"))
        )
        .execution_options(populate_existing=True)
    )
    task = (await session.execute(statement)).scalar_one_or_none()
    if task is None:
        return None
    return TaskChange(task, TaskEvent.of(task, delta=delta, result_reset=result_reset))


def _appended(delta: str | None) -> Any:
    """The result with `delta` added to its end."""
    if delta is None:
        return Task.result
    return func.coalesce(Task.result, "").concat(delta)


def _lease(seconds: float) -> Any:
    return func.now() + timedelta(seconds=seconds)


def _abandoned() -> Any:
    """Running, but its worker stopped renewing the lease: the worker is gone."""
    return and_(Task.status == TaskStatus.PROCESSING, Task.lease_expires_at < func.now())


async def claim_task(
    session: AsyncSession, task_id: uuid.UUID, lease_seconds: float, max_attempts: int
) -> TaskChange | None:
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
        result_reset=True,
        status=TaskStatus.PROCESSING,
        stage=STARTING_STAGE,
        attempts=Task.attempts + 1,
        progress=0.0,
        result=None,
        started_at=func.coalesce(Task.started_at, func.now()),
        lease_expires_at=_lease(lease_seconds),
    )


def _held(attempt: int) -> Any:
    return and_(Task.status == TaskStatus.PROCESSING, Task.attempts == attempt)


async def record_output(
    session: AsyncSession,
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
    return await _transition(
        session,
        task_id,
        _held(attempt),
        delta=delta,
        progress=progress,
        stage=stage,
        result=_appended(delta),
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
    session: AsyncSession, task_id: uuid.UUID, attempt: int, delta: str
) -> TaskChange | None:
    """Finish the task; `delta` is the output not yet appended to the result."""
    return await _transition(
        session,
        task_id,
        _held(attempt),
        delta=delta,
        status=TaskStatus.COMPLETED,
        stage=DONE_STAGE,
        progress=1.0,
        result=_appended(delta),
        finished_at=func.now(),
        lease_expires_at=None,
    )


async def fail_task(
    session: AsyncSession, task_id: uuid.UUID, attempt: int, error: str, delta: str | None = None
) -> TaskChange | None:
    """End the task FAILED; the output so far (and `delta`) stays in its result."""
    return await _transition(
        session,
        task_id,
        _held(attempt),
        delta=delta,
        result=_appended(delta),
        status=TaskStatus.FAILED,
        stage=FAILED_STAGE,
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
) -> list[TaskChange]:
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
                stage=FAILED_STAGE,
                error=error,
                finished_at=func.now(),
                lease_expires_at=None,
            )
        )
        .returning(Task)
    )
    tasks = list((await session.execute(statement)).scalars().all())
    changes = [TaskChange(task, TaskEvent.of(task)) for task in tasks]
    if changes:
        await session.execute(insert(task_events), [_event_row(change.event) for change in changes])
    return changes


async def mark_not_enqueued(session: AsyncSession, task_ids: list[uuid.UUID]) -> None:
    """Undo `take_stale_tasks` for tasks whose message could not be sent after all, so the
    next sweep tries them again instead of waiting a whole interval."""
    if task_ids:
        await session.execute(
            update(Task).where(Task.id.in_(task_ids)).values(enqueued_at=Task.created_at)
        )


def _event_row(event: TaskEvent) -> dict[str, Any]:
    return {name: getattr(event, name) for name in task_events.c.keys()}  # noqa: SIM118


async def list_events(
    session: AsyncSession, task_id: uuid.UUID, *, after: int, up_to: int | None = None
) -> list[TaskEvent]:
    """The logged changes of a task with `after < sequence <= up_to`, in order."""
    query = (
        select(task_events)
        .where(task_events.c.task_id == task_id, task_events.c.sequence > after)
        .order_by(task_events.c.sequence)
    )
    if up_to is not None:
        query = query.where(task_events.c.sequence <= up_to)
    rows = (await session.execute(query)).mappings()
    return [TaskEvent(**row) for row in rows]


async def get_tasks(session: AsyncSession, task_ids: list[uuid.UUID]) -> list[Task]:
    if not task_ids:
        return []
    query = select(Task).where(Task.id.in_(task_ids)).execution_options(populate_existing=True)
    return list((await session.scalars(query)).all())


async def tasks_changed_since(session: AsyncSession, since: datetime, limit: int) -> list[Task]:
    """Up to `limit` tasks changed at or after `since`, the most recently changed."""
    query = (
        select(Task)
        .where(Task.updated_at >= since)
        .order_by(Task.updated_at.desc())
        .limit(limit)
        .execution_options(populate_existing=True)
    )
    return list((await session.scalars(query)).all())


async def database_now(session: AsyncSession) -> datetime:
    now: datetime = (await session.execute(select(func.now()))).scalar_one()
    return now


async def prune_events(session: AsyncSession, *, finished_before: datetime, limit: int) -> int:
    """Drop the logged changes of tasks that ended before `finished_before`, up to `limit`
    rows; return how many went. The tasks keep their final state."""
    old = (
        select(task_events.c.task_id, task_events.c.sequence)
        .join(Task, Task.id == task_events.c.task_id)
        .where(Task.finished_at < finished_before)
        .limit(limit)
    )
    statement = delete(task_events).where(
        tuple_(task_events.c.task_id, task_events.c.sequence).in_(old)
    )
    result: Any = await session.execute(statement)
    return int(result.rowcount)


async def current_sequences(
    session: AsyncSession, task_ids: list[uuid.UUID]
) -> dict[uuid.UUID, int]:
    rows = await session.execute(select(Task.id, Task.sequence).where(Task.id.in_(task_ids)))
    return {task_id: sequence for task_id, sequence in rows}
