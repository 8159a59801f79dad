"""Following a task: its state now, then every change, until it ends."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from persistence import repository
from persistence.events import TaskEvent, TaskEventHub
from persistence.models import Task
from tasks.errors import TaskNotFoundError
from tasks.submission import parse_task_id


async def _load(sessionmaker: async_sessionmaker[AsyncSession], task_id: uuid.UUID) -> Task | None:
    # A short session per read: a subscription may last hours and must not hold a connection.
    async with sessionmaker() as session:
        return await repository.get_task(session, task_id)


def _next_states(task: Task, events: list[TaskEvent]) -> tuple[list[Task], bool]:
    """States that follow `task` from these events, and whether a re-read is needed.

    The states go on while each event is the very next `sequence`; a gap means a message
    was lost, and a terminal event needs the stored result: both are read back.
    """
    states: list[Task] = []
    for event in sorted(events, key=lambda event: event.sequence):
        if event.sequence <= task.sequence:
            continue
        if event.sequence != task.sequence + 1 or event.status.is_terminal:
            return states, True
        task = event.apply_to(task)
        states.append(task)
    return states, False


async def watch_task(
    sessionmaker: async_sessionmaker[AsyncSession],
    hub: TaskEventHub,
    task_id: str,
    *,
    after: int | None = None,
    resync_seconds: float,
) -> AsyncIterator[Task]:
    """Yield the task as it is, then each later state in order; stop after a terminal one.

    With `after`, states with `sequence <= after` are skipped. Raises TaskNotFoundError
    for an unknown id.
    """
    parsed = parse_task_id(task_id)
    if parsed is None:
        raise TaskNotFoundError(task_id)
    async with hub.listen(parsed) as listener:
        task = await _load(sessionmaker, parsed)
        if task is None:
            raise TaskNotFoundError(task_id)
        if after is None or task.sequence > after:
            yield task
        while not task.status.is_terminal:
            events = await listener.wait(resync_seconds)
            states, reread = _next_states(task, events or [])
            if events is None or reread:
                fresh = await _load(sessionmaker, parsed)
                if fresh is not None and fresh.sequence > (states[-1] if states else task).sequence:
                    states.append(fresh)
            for state in states:
                task = state
                if after is None or task.sequence > after:
                    yield task
