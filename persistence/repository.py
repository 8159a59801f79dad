"""Every query on `tasks` and `task_events`.

Each change is one conditional UPDATE that bumps `sequence`, so a message delivered twice
can neither move a task backwards nor finish it twice. The same statement appends the
change to `task_events`, so the log has every sequence exactly once, committed or not
at all together with the change.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    all_,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    true,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.models import (
    CANCELLED_STAGE,
    CANCELLING_STAGE,
    EVENT_STATE_COLUMNS,
    FAILED_STAGE,
    QUEUED_STAGE,
    FileRole,
    Task,
    TaskChange,
    TaskEvent,
    TaskFile,
    TaskPriority,
    TaskStatus,
    task_events,
    task_files,
)


@dataclass(frozen=True)
class PageKey:
    """Where a page of the newest-first listing starts after."""

    created_at: datetime
    task_id: uuid.UUID


@dataclass(frozen=True)
class NewTaskRow:
    owner: str
    kind: str
    prompt: str
    model: str
    priority: TaskPriority
    timeout_seconds: float
    delay_seconds: float | None = None
    idempotency_key: str | None = None
    # A delayed task whose message goes to the broker now, to run at its time.
    handed_over: bool = True
    params: dict[str, Any] = field(default_factory=dict)
    files: tuple[TaskFile, ...] = ()

    @functools.cached_property
    def inputs(self) -> list[dict[str, Any]]:
        """How the task describes its input files."""
        return [describe_input(file) for file in self.files]


def describe_input(file: TaskFile) -> dict[str, Any]:
    return {
        "name": file.name,
        "contentType": file.content_type,
        "size": file.size,
        "sha256": hashlib.sha256(file.data).hexdigest(),
    }


def describe_artifact(file: TaskFile) -> dict[str, Any]:
    return {"name": file.name, "contentType": file.content_type, "size": file.size}


async def _insert_files(
    session: AsyncSession, task_id: uuid.UUID, role: FileRole, files: Sequence[TaskFile]
) -> None:
    rows = [
        {
            "task_id": task_id,
            "role": role.value,
            "name": file.name,
            "content_type": file.content_type,
            "size": file.size,
            "data": file.data,
        }
        for file in files
    ]
    await session.execute(insert(task_files), rows)


async def get_files(session: AsyncSession, task_id: uuid.UUID, role: FileRole) -> list[TaskFile]:
    """A task's input files or artifacts, in name order."""
    query = (
        select(task_files.c.name, task_files.c.content_type, task_files.c.data)
        .where(task_files.c.task_id == task_id, task_files.c.role == role.value)
        .order_by(task_files.c.name)
    )
    return [TaskFile(*row) for row in (await session.execute(query)).all()]


async def get_artifact(
    session: AsyncSession, task_id: uuid.UUID, name: str, *, owner: str
) -> TaskFile | None:
    owned = select(Task.id).where(Task.id == task_id, Task.owner == owner)
    query = select(task_files.c.name, task_files.c.content_type, task_files.c.data).where(
        task_files.c.task_id.in_(owned),
        task_files.c.role == FileRole.ARTIFACT.value,
        task_files.c.name == name,
    )
    row = (await session.execute(query)).first()
    return TaskFile(*row) if row else None


async def get_task(session: AsyncSession, task_id: uuid.UUID, *, owner: str | None) -> Task | None:
    """The task, if `owner` owns it; `owner=None` is for the service's own work (workers,
    the sweeper), never for a caller."""
    task = await session.get(Task, task_id, populate_existing=True)
    if task is None or (owner is not None and task.owner != owner):
        return None
    return task


async def list_tasks(
    session: AsyncSession,
    *,
    owner: str,
    limit: int,
    after: PageKey | None,
    status: TaskStatus | None,
) -> list[Task]:
    """The owner's tasks, newest first, by (created_at, id), so pages never skip or repeat
    a task."""
    query = (
        select(Task)
        .where(Task.owner == owner)
        .order_by(Task.created_at.desc(), Task.id.desc())
        .limit(limit)
    )
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


def _due() -> Any:
    """No start time set, or it has come."""
    return or_(Task.scheduled_for.is_(None), Task.scheduled_for <= func.now())


def _with_error(message: str, *, transient: bool) -> Any:
    """The error history with this attempt's error added at its end."""
    entry = func.jsonb_build_object(
        "attempt", Task.attempts, "message", message, "at", func.now(), "transient", transient
    )
    return Task.errors.op("||", return_type=JSONB)(func.jsonb_build_array(entry))


def _abandoned() -> Any:
    """Running, but its worker stopped renewing the lease: the worker is gone."""
    return and_(Task.status == TaskStatus.PROCESSING, Task.lease_expires_at < func.now())


async def cancel_pending(session: AsyncSession, task_id: uuid.UUID) -> TaskChange | None:
    """Cancel a task no worker has started: it ends at once and will never run."""
    return await _transition(
        session,
        task_id,
        Task.status == TaskStatus.PENDING,
        status=TaskStatus.CANCELLED,
        stage=CANCELLED_STAGE,
        finished_at=func.now(),
        scheduled_for=None,
    )


async def request_cancel(session: AsyncSession, task_id: uuid.UUID) -> TaskChange | None:
    """Ask the worker running a task to stop it; the worker then ends it CANCELLED."""
    return await _transition(
        session,
        task_id,
        and_(Task.status == TaskStatus.PROCESSING, Task.cancel_requested_at.is_(None)),
        stage=CANCELLING_STAGE,
        cancel_requested_at=func.now(),
    )


# The lock every create or retry of one owner takes, held until its transaction ends,
# while it counts the owner's unfinished tasks and adds one: they go in turn, so none
# takes the owner past its cap (two owners sharing a 64-bit hash only wait for each
# other).
OWNER_LOCK_KEY = "hashtextextended('aitasks:unfinished:' || {owner}, 0)"
# Counting stops at `up_to`, so the check costs the same however many there are.
UNFINISHED_SQL = """
SELECT count(*) FROM (
    SELECT 1 FROM tasks
    WHERE owner = {owner} AND status IN ('PENDING', 'PROCESSING')
    LIMIT {up_to}
) AS unfinished
"""


async def count_unfinished_locked(session: AsyncSession, owner: str, *, up_to: int) -> int:
    """Take the owner's lock on its count of unfinished tasks (held until the session's
    transaction ends, as `creation.lock_owner` does for a create), then count them, no
    further than `up_to`."""
    lock = text(f"SELECT pg_advisory_xact_lock({OWNER_LOCK_KEY.format(owner=':owner')})")
    await session.execute(lock, {"owner": owner})
    statement = text(UNFINISHED_SQL.format(owner=":owner", up_to=":up_to"))
    count: int = (await session.execute(statement, {"owner": owner, "up_to": up_to})).scalar_one()
    return count


async def retry_task(session: AsyncSession, task_id: uuid.UUID) -> TaskChange | None:
    """Queue a FAILED or CANCELLED task again, keeping its error history."""
    return await _transition(
        session,
        task_id,
        Task.status.in_([TaskStatus.FAILED, TaskStatus.CANCELLED]),
        result_reset=True,
        status=TaskStatus.PENDING,
        stage=QUEUED_STAGE,
        progress=0.0,
        result=None,
        error=None,
        started_at=None,
        finished_at=None,
        scheduled_for=None,
        cancel_requested_at=None,
        enqueued_at=func.now(),
    )


async def take_due_tasks(session: AsyncSession, *, within_seconds: float, limit: int) -> list[Task]:
    """Delayed PENDING tasks that start within `within_seconds` and were not yet handed
    to the broker; marks them handed over for their start time."""
    due = (
        select(Task.id)
        .where(
            Task.status == TaskStatus.PENDING,
            Task.scheduled_for <= func.now() + timedelta(seconds=within_seconds),
            Task.enqueued_at < Task.scheduled_for,
        )
        .order_by(Task.scheduled_for)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    statement = (
        update(Task)
        .where(Task.id.in_(due.scalar_subquery()))
        .values(enqueued_at=Task.scheduled_for)
        .returning(Task)
    )
    return list((await session.execute(statement)).scalars().all())


def _stale(pending_for_seconds: float) -> Any:
    """A task whose message may be lost: PENDING and due, not sent for
    `pending_for_seconds`; or held by a dead worker, not sent since its lease ran out
    (nor for `pending_for_seconds`)."""
    waited_long = func.now() - timedelta(seconds=pending_for_seconds)
    return or_(
        and_(Task.status == TaskStatus.PENDING, Task.enqueued_at < waited_long, _due()),
        # A dead worker's task goes out at once when its lease runs out, then again
        # each interval, like a PENDING one, until a worker claims it.
        and_(_abandoned(), Task.enqueued_at < func.greatest(Task.lease_expires_at, waited_long)),
    )


async def kinds_with_stale_tasks(
    session: AsyncSession, kinds: Collection[str], *, pending_for_seconds: float
) -> set[str]:
    """Those of `kinds` that have a task `take_stale_tasks` would take: one EXISTS per
    kind, each stopping at its first such task."""
    names = list(kinds)
    found = select(
        *(exists().where(Task.kind == kind, _stale(pending_for_seconds)) for kind in names)
    )
    row = (await session.execute(found)).one()
    return {kind for kind, stale in zip(names, row, strict=True) if stale}


async def take_stale_tasks(
    session: AsyncSession,
    *,
    pending_for_seconds: float,
    limit: int,
    kinds: Collection[str] | None = None,
    excluding: Collection[uuid.UUID] = (),
) -> list[Task]:
    """Tasks whose message may be lost: PENDING too long, or held by a dead worker; only
    those of `kinds`, when given, and none of `excluding` (tasks whose message was seen
    waiting in the broker).

    Marks them enqueued now, so the next sweep leaves them alone for another interval, and
    skips rows another sweeper has locked, so two sweepers never send the same task twice.
    """
    stale = (
        select(Task.id)
        .where(
            Task.kind.in_(list(kinds)) if kinds is not None else true(),
            # One array parameter however many ids: `id != ALL(:ids)`.
            Task.id != all_(bindparam("excluding", list(excluding), type_=ARRAY(PG_UUID)))
            if excluding
            else true(),
            _stale(pending_for_seconds),
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


async def _end_abandoned(
    session: AsyncSession, condition: Any, limit: int, **values: Any
) -> list[TaskChange]:
    """End up to `limit` tasks of dead workers that match `condition`, logging each."""
    doomed = (
        select(Task.id)
        .where(_abandoned(), condition)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    statement = (
        update(Task)
        .where(Task.id.in_(doomed.scalar_subquery()))
        .values(_change(finished_at=func.now(), lease_expires_at=None, **values))
        .returning(Task)
    )
    tasks = list((await session.execute(statement)).scalars().all())
    changes = [TaskChange(task, TaskEvent.of(task)) for task in tasks]
    if changes:
        await session.execute(insert(task_events), [_event_row(change.event) for change in changes])
    return changes


async def fail_abandoned_tasks(
    session: AsyncSession, *, max_attempts: int, error: str, limit: int
) -> list[TaskChange]:
    """End tasks whose worker was lost on every one of `max_attempts` tries.

    Such a task most likely kills its worker (memory, a hard limit); trying again would
    only take down one worker after another.
    """
    return await _end_abandoned(
        session,
        and_(Task.attempts >= max_attempts, Task.cancel_requested_at.is_(None)),
        limit,
        status=TaskStatus.FAILED,
        stage=FAILED_STAGE,
        error=error,
        errors=_with_error(error, transient=False),
    )


async def cancel_abandoned_tasks(session: AsyncSession, *, limit: int) -> list[TaskChange]:
    """End CANCELLED the tasks a caller cancelled whose worker died before it could."""
    return await _end_abandoned(
        session,
        Task.cancel_requested_at.is_not(None),
        limit,
        status=TaskStatus.CANCELLED,
        stage=CANCELLED_STAGE,
    )


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


async def get_tasks(session: AsyncSession, task_ids: list[uuid.UUID], *, owner: str) -> list[Task]:
    if not task_ids:
        return []
    query = (
        select(Task)
        .where(Task.id.in_(task_ids), Task.owner == owner)
        .execution_options(populate_existing=True)
    )
    return list((await session.scalars(query)).all())


async def tasks_changed_since(
    session: AsyncSession, since: datetime, limit: int, *, owner: str
) -> list[Task]:
    """Up to `limit` of the owner's tasks changed at or after `since`, the most recently
    changed."""
    query = (
        select(Task)
        .where(Task.updated_at >= since, Task.owner == owner)
        .order_by(Task.updated_at.desc())
        .limit(limit)
        .execution_options(populate_existing=True)
    )
    return list((await session.scalars(query)).all())


async def schema_revision(session: AsyncSession) -> str | None:
    """The migration the database is at (Alembic's record), or None before any."""
    row = (await session.execute(text("SELECT version_num FROM alembic_version"))).first()
    return str(row[0]) if row else None


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
