"""The submission service: what GraphQL resolvers (and later MCP tools) call."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from persistence import creation, repository
from persistence.models import (
    IDEMPOTENCY_KEY_MAX_CHARS,
    MODEL_NAME_MAX_CHARS,
    Task,
    TaskChange,
    TaskFile,
    TaskPriority,
    TaskStatus,
)
from persistence.repository import NewTaskRow, PageKey
from persistence.settings import Settings
from persistence.unit_of_work import ConnectionUnit, UnitOfWork
from tasks.errors import InvalidInputError, TaskLimitError, TaskNotFoundError, TaskStateError
from tasks.events import creation_event
from tasks.kinds import KINDS
from tasks.logs import log_transition
from tasks.services.dispatch import Dispatcher
from tasks.services.files import NewFile, check_files
from tasks.services.params import check_params
from tasks.services.rate_limits import RateLimiter
from tasks.services.text import check_text

# A cancel or retry re-reads the task and tries again this often when a worker changed it
# in the meantime, before it gives up with the status it found.
CONTROL_RACE_TRIES = 3


@dataclass(frozen=True)
class NewTask:
    # The caller creating it, who will own it.
    owner: str
    prompt: str
    model: str | None
    kind: str
    # JSON as sent: checked against the kind's params model.
    params: Any = None
    files: tuple[NewFile, ...] = ()
    priority: TaskPriority = TaskPriority.NORMAL
    run_at: datetime | None = None
    delay_seconds: float | None = None
    idempotency_key: str | None = None
    timeout_seconds: float | None = None


def _check_prompt(prompt: str, kind: str, settings: Settings) -> None:
    """A kind may need a prompt (text generation); for the others it is an optional
    request (a caption's focus, what a narrative of the figures should say)."""
    check_text("prompt", prompt)
    if KINDS[kind].needs_prompt and not prompt.strip():
        raise InvalidInputError("prompt", "The prompt is empty; write what the task should do.")
    if len(prompt) > settings.prompt_max_chars:
        raise InvalidInputError(
            "prompt",
            f"The prompt is {len(prompt):,} characters long; the limit is "
            f"{settings.prompt_max_chars:,} (AITASKS_PROMPT_MAX_CHARS).",
        )


def _check_model(model: str, settings: Settings) -> None:
    check_text("model", model)
    if len(model) > MODEL_NAME_MAX_CHARS or not model.strip():
        raise InvalidInputError("model", "The model name is empty or too long.")
    if model not in settings.allowed_models and not settings.any_model_allowed:
        available = ", ".join(sorted(settings.allowed_models))
        raise InvalidInputError("model", f"Unknown model {model!r}. Available models: {available}.")


def _delay(new_task: NewTask, settings: Settings) -> float | None:
    """Seconds from now until the task may start, or None to start at once."""
    if new_task.run_at is not None and new_task.delay_seconds is not None:
        raise InvalidInputError("runAt", "Give either runAt or delaySeconds, not both.")
    if new_task.run_at is not None:
        if new_task.run_at.tzinfo is None:
            raise InvalidInputError("runAt", "runAt needs a time zone, e.g. 2026-12-01T09:00:00Z.")
        delay = (new_task.run_at - datetime.now(UTC)).total_seconds()
        field = "runAt"
    elif new_task.delay_seconds is not None:
        if not new_task.delay_seconds >= 0:
            raise InvalidInputError("delaySeconds", "delaySeconds must be 0 or more.")
        delay, field = new_task.delay_seconds, "delaySeconds"
    else:
        return None
    if delay > timedelta(days=settings.schedule_max_days).total_seconds():
        raise InvalidInputError(
            field,
            f"A task can be scheduled at most {settings.schedule_max_days:g} days ahead "
            "(AITASKS_SCHEDULE_MAX_DAYS).",
        )
    return max(delay, 0.0) or None


def _timeout(new_task: NewTask, settings: Settings) -> float:
    if new_task.timeout_seconds is None:
        return settings.task_timeout_default_seconds
    limit = settings.task_time_limit_seconds
    if not 0 < new_task.timeout_seconds <= limit:
        raise InvalidInputError(
            "timeoutSeconds",
            f"timeoutSeconds must be more than 0 and at most {limit:g} "
            "(AITASKS_TASK_TIME_LIMIT_SECONDS).",
        )
    return new_task.timeout_seconds


def _check_idempotency_key(key: str | None) -> None:
    if key is None:
        return
    check_text("idempotencyKey", key)
    if not key.strip() or len(key) > IDEMPOTENCY_KEY_MAX_CHARS:
        raise InvalidInputError(
            "idempotencyKey",
            f"An idempotency key has 1 to {IDEMPOTENCY_KEY_MAX_CHARS} characters.",
        )


def validate(new_task: NewTask, settings: Settings) -> NewTaskRow:
    """Check a submission; return the row to store."""
    _check_prompt(new_task.prompt, new_task.kind, settings)
    model = new_task.model if new_task.model is not None else settings.effective_default_model
    _check_model(model, settings)
    _check_idempotency_key(new_task.idempotency_key)
    delay = _delay(new_task, settings)
    files = check_files(new_task.files, settings)
    params = check_params(new_task.kind, new_task.params, files, settings)
    return NewTaskRow(
        owner=new_task.owner,
        kind=new_task.kind,
        prompt=new_task.prompt,
        model=model,
        priority=new_task.priority,
        timeout_seconds=_timeout(new_task, settings),
        delay_seconds=delay,
        idempotency_key=new_task.idempotency_key,
        handed_over=delay is None or delay <= settings.handoff_window_seconds,
        params=params,
        files=files,
    )


def _same_input(task: Task, row: NewTaskRow) -> bool:
    stored = (task.kind, task.prompt, task.model, task.priority, task.timeout_seconds)
    given = (row.kind, row.prompt, row.model, row.priority, row.timeout_seconds)
    return stored == given and (task.params, task.inputs) == (row.params, row.inputs)


async def _task_for_key(unit: ConnectionUnit, row: NewTaskRow, settings: Settings) -> Task | None:
    """The task an idempotency key already created, or None once the key is free again."""
    assert row.idempotency_key is not None
    connection = await unit.connection()
    existing = await creation.find_by_idempotency_key(connection, row.owner, row.idempotency_key)
    if existing is None:
        return None
    window = timedelta(hours=settings.idempotency_window_hours)
    oldest = await creation.database_now(connection) - window
    if existing.created_at < oldest:
        await creation.release_idempotency_key(connection, row.owner, row.idempotency_key, oldest)
        return None
    if not _same_input(existing, row):
        raise InvalidInputError(
            "idempotencyKey",
            "This idempotency key was used for a task with different input; use a new key "
            "for new work.",
        )
    return existing


async def _check_limits(
    unit: ConnectionUnit, owner: str, limiter: RateLimiter, settings: Settings
) -> None:
    wait = await limiter.retry_after(owner, "creates", settings.creates_per_minute)
    if wait is not None:
        seconds = max(1, math.ceil(wait))
        raise TaskLimitError(
            f"Too many tasks created with this API key this minute "
            f"(AITASKS_CREATES_PER_MINUTE is {settings.creates_per_minute}); try again in "
            f"{seconds} s.",
            seconds,
        )
    cap = settings.unfinished_tasks_max
    if not cap:
        return
    if not unit.in_transaction:
        # The lock is held until the transaction ends: without one, the count and the
        # insert are two steps that concurrent creates pass between.
        raise RuntimeError("a create under the unfinished-task cap needs a transaction")
    connection = await unit.connection()
    await creation.lock_owner(connection, owner)
    if await creation.count_unfinished(connection, owner, up_to=cap) >= cap:
        raise _over_cap(cap, "create more")


def _over_cap(cap: int, what: str) -> TaskLimitError:
    return TaskLimitError(
        f"This API key has {cap} tasks PENDING or PROCESSING, the most it may have "
        f"(AITASKS_UNFINISHED_TASKS_MAX); {what} once some have finished.",
        None,
    )


def needs_transaction(new_task: NewTask, settings: Settings) -> bool:
    """Whether a create must run in one transaction: its files are rows of their own,
    and under the cap of unfinished tasks the count and the insert are one step."""
    return bool(new_task.files) or settings.unfinished_tasks_max > 0


async def _insert_alone(
    unit: ConnectionUnit, row: NewTaskRow, settings: Settings
) -> tuple[Task, bool]:
    """Store the task on the unit's connection, and True; with an idempotency key used
    within the window, the task the key created, and False."""
    for _ in range(CONTROL_RACE_TRIES):
        task = await creation.insert_task(await unit.connection(), row)
        if task is not None:
            return task, True
        existing = await _task_for_key(unit, row, settings)
        if existing is not None:
            return existing, False
    raise InvalidInputError("idempotencyKey", "This idempotency key is busy; try again.")


async def create_task(
    unit: ConnectionUnit,
    new_task: NewTask,
    dispatcher: Dispatcher,
    settings: Settings,
    limiter: RateLimiter,
    inserts: creation.TaskInserts | None = None,
) -> Task:
    """Store a PENDING task and, once that is committed, hand it to the workers and
    announce it to live feeds. A task delayed beyond the hand-over window waits in
    PostgreSQL until a sweep finds its time near. Outside a transaction, a plain create
    goes out with those of other requests through `inserts`.

    With an idempotency key used within the window, returns the task the key created
    and stores and sends nothing. Raises InvalidInputError, storing nothing, when the
    input cannot be run, and TaskLimitError when the caller is over a limit.
    """
    row = validate(new_task, settings)
    await _check_limits(unit, row.owner, limiter, settings)
    if inserts is not None and not unit.in_transaction and inserts.takes(row):
        task = await inserts.insert(row)
    else:
        task, created = await _insert_alone(unit, row, settings)
        if not created:
            return task
    log_transition(task)
    event = creation_event(task)
    if row.handed_over:
        countdown = row.delay_seconds
        unit.after_commit(partial(dispatcher.enqueue, task, countdown=countdown, event=event))
    else:
        unit.after_commit(partial(dispatcher.publish, event))
    return task


async def _load(uow: UnitOfWork, task_id: str, owner: str) -> Task:
    task = await find_task(uow.session, task_id, owner)
    if task is None:
        raise TaskNotFoundError(task_id)
    return task


def _announce(uow: UnitOfWork, dispatcher: Dispatcher, change: TaskChange) -> Task:
    log_transition(change.task)
    uow.after_commit(partial(dispatcher.publish, change.event))
    return change.task


async def cancel_task(uow: UnitOfWork, task_id: str, dispatcher: Dispatcher, *, owner: str) -> Task:
    """Cancel a task: a PENDING one ends CANCELLED at once and never runs; a running one
    is stopped by its worker within a second and ends CANCELLED with its output so far.
    Cancelling a cancelled task changes nothing. Raises TaskNotFoundError, or
    TaskStateError for a task that already ended otherwise."""
    for _ in range(CONTROL_RACE_TRIES):
        task = await _load(uow, task_id, owner)
        if task.status == TaskStatus.CANCELLED or task.cancel_requested_at is not None:
            return task
        if task.status.is_terminal:
            raise TaskStateError(
                task.status, f"The task is already {task.status.value}; it cannot be cancelled."
            )
        if task.status == TaskStatus.PENDING:
            change = await repository.cancel_pending(uow.session, task.id)
        else:
            change = await repository.request_cancel(uow.session, task.id)
            if change is not None:
                uow.after_commit(partial(dispatcher.request_cancel, task.id))
        if change is not None:
            return _announce(uow, dispatcher, change)
    return await _load(uow, task_id, owner)


async def retry_task(
    uow: UnitOfWork,
    task_id: str,
    dispatcher: Dispatcher,
    *,
    owner: str,
    unfinished_max: int = 0,
) -> Task:
    """Queue a FAILED or CANCELLED task again; its error history stays. Raises
    TaskNotFoundError, TaskStateError for a task in any other status, or TaskLimitError
    when the caller has `unfinished_max` unfinished tasks already (0: no cap)."""
    task = await _load(uow, task_id, owner)
    if unfinished_max and task.status in (TaskStatus.FAILED, TaskStatus.CANCELLED):
        unfinished = await repository.count_unfinished_locked(
            uow.session, owner, up_to=unfinished_max
        )
        if unfinished >= unfinished_max:
            raise _over_cap(unfinished_max, "retry")
    change = await repository.retry_task(uow.session, task.id)
    if change is None:
        raise TaskStateError(
            task.status,
            f"Only a FAILED or CANCELLED task can be retried; this one is {task.status.value}.",
        )
    uow.after_commit(partial(dispatcher.enqueue, change.task, event=change.event))
    return change.task


def parse_task_id(task_id: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(task_id)
    except ValueError:
        return None


async def find_task(session: AsyncSession, task_id: str, owner: str) -> Task | None:
    """The owner's task with this id, or None for an id that is unknown, another caller's,
    or not a task id at all: the three look the same to a caller."""
    parsed = parse_task_id(task_id)
    return await repository.get_task(session, parsed, owner=owner) if parsed else None


async def find_artifact(
    session: AsyncSession, task_id: str, name: str, owner: str
) -> TaskFile | None:
    """An artifact of the owner's task, or None for an unknown (or another caller's) task
    id or artifact name."""
    parsed = parse_task_id(task_id)
    return await repository.get_artifact(session, parsed, name, owner=owner) if parsed else None


async def list_tasks(
    session: AsyncSession,
    *,
    owner: str,
    first: int,
    after: PageKey | None,
    status: TaskStatus | None,
    settings: Settings,
) -> tuple[list[Task], bool]:
    """A page of tasks, newest first, and whether more follow."""
    if not 1 <= first <= settings.page_size_max:
        raise InvalidInputError(
            "first", f"`first` must be between 1 and {settings.page_size_max}, not {first}."
        )
    tasks = await repository.list_tasks(
        session, owner=owner, limit=first + 1, after=after, status=status
    )
    return tasks[:first], len(tasks) > first
