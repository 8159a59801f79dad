"""Following tasks: the state now, then every change exactly once and in order.

Changes arrive on the hub (Redis pub/sub, fast but at most once). A follower applies
them only in strict `sequence` order; on a gap, a reconnect or a full buffer it catches
up from the `task_events` log, which holds every change committed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from cachetools import FIFOCache
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from persistence import repository
from persistence.models import Task, TaskEvent, TaskStatus
from tasks.errors import TaskNotFoundError
from tasks.event_hub import TaskEventHub
from tasks.services.submission import parse_task_id

Sessionmaker = async_sessionmaker[AsyncSession]

# The feed re-reads tasks changed this long before its last check: `updated_at` is when
# a change's transaction began, a moment before it committed.
FEED_RESYNC_MARGIN = timedelta(seconds=5)
# The most tasks one feed re-sync reads back; the most recently changed win.
FEED_RESYNC_LIMIT = 1000
# Finished tasks a feed remembers, so a late copy of their last change is not sent twice.
FEED_FINISHED_MEMORY = 10_000
# Task states built from live events, kept for the other followers of the same task: all
# of them apply one event within milliseconds, so a few hundred cover every task
# changing at once (each holds a task's result so far, hence not more).
SHARED_STATES = 256


@dataclass(frozen=True)
class Update:
    """A task's state after a change, and the text that change added to its result
    (None for a state read as a whole, such as the first one a subscriber gets).
    `live` is False when the hub had lost Redis as it was read: changes then come from
    the log, up to the hub's poll interval late."""

    task: Task
    delta: str | None = None
    live: bool = True


def _marked(updates: Iterable[Update], live: bool) -> Iterable[Update]:
    return updates if live else (replace(update, live=False) for update in updates)


def _contiguous(events: list[TaskEvent], after: int, up_to: int) -> bool:
    return [event.sequence for event in events] == list(range(after + 1, up_to + 1))


def _applied(task: Task, events: Iterable[TaskEvent]) -> list[Update]:
    updates = []
    for event in events:
        task = event.apply_to(task)
        updates.append(Update(task, event.delta))
    return updates


async def _load(sessionmaker: Sessionmaker, task_id: uuid.UUID, owner: str) -> Task | None:
    # A short session per read: a subscription may last hours and must not hold a connection.
    async with sessionmaker() as session:
        return await repository.get_task(session, task_id, owner=owner)


async def _changes_since(sessionmaker: Sessionmaker, task: Task) -> list[Update]:
    """Every change of `task` after the state given, from the log."""
    async with sessionmaker() as session:
        # The row first: every change up to its sequence is then in the log.
        # A task already followed: its owner was checked when following began.
        current = await repository.get_task(session, task.id, owner=None)
        if current is None or current.sequence <= task.sequence:
            return []
        events = await repository.list_events(
            session, task.id, after=task.sequence, up_to=current.sequence
        )
    if not _contiguous(events, task.sequence, current.sequence):
        # The log of a task that ended long ago has been pruned: only its end is known.
        return [Update(current)]
    return _applied(task, events)


async def _replay(sessionmaker: Sessionmaker, current: Task, after: int) -> list[Update]:
    """The changes of `current`'s task with sequence > `after`, rebuilt from the log
    starting at its creation (sequence 1)."""
    async with sessionmaker() as session:
        events = await repository.list_events(session, current.id, after=0, up_to=current.sequence)
    if not _contiguous(events, 0, current.sequence):
        return [Update(current)]
    return [update for update in _applied(current, events) if update.task.sequence > after]


class _SharedStates:
    """The state a live event leaves a task in, built once for all its followers.

    A task's state after sequence n is the same whoever applies event n, so the 1,000
    followers of one task share one copy instead of building 1,000 (building them would
    be about a quarter of the API's CPU per update). The states are never changed, only
    replaced.
    """

    def __init__(self, size: int) -> None:
        # First in, first out: a state is asked for within milliseconds of being built,
        # so the oldest is the one no follower needs any more.
        self._states: FIFOCache[tuple[uuid.UUID, int], Task] = FIFOCache(maxsize=size)

    def apply(self, event: TaskEvent, task: Task) -> Task:
        key = (event.task_id, event.sequence)
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = event.apply_to(task)
        return state


_SHARED = _SharedStates(SHARED_STATES)


class Follower:
    """One task as one subscriber has seen it."""

    def __init__(self, task: Task) -> None:
        self.task = task

    def take(self, events: Iterable[TaskEvent]) -> tuple[list[Update], bool]:
        """Apply the events that come next in order; also say whether one was missed."""
        updates: list[Update] = []
        for event in sorted(events, key=lambda event: event.sequence):
            if event.sequence <= self.task.sequence:
                continue  # already seen, or part of the state read at the start
            if event.sequence != self.task.sequence + 1:
                return updates, True
            self.task = _SHARED.apply(event, self.task)
            updates.append(Update(self.task, event.delta))
        return updates, False

    async def catch_up(self, sessionmaker: Sessionmaker) -> list[Update]:
        updates = await _changes_since(sessionmaker, self.task)
        if updates:
            self.task = updates[-1].task
        return updates

    async def advance(
        self, sessionmaker: Sessionmaker, events: list[TaskEvent] | None
    ) -> list[Update]:
        """The updates these events make; from the log when any may have been missed."""
        updates, missed = self.take(events or [])
        if events is None or missed:
            updates += await self.catch_up(sessionmaker)
        return updates


async def watch_task(
    sessionmaker: Sessionmaker,
    hub: TaskEventHub,
    task_id: str,
    *,
    owner: str,
    after: int | None = None,
) -> AsyncIterator[Update]:
    """The owner's task as it is, then each change in order, ending after a terminal
    state.

    With `after`, exactly the changes with a greater sequence, then live ones. Raises
    TaskNotFoundError for an unknown id or another caller's task.
    """
    parsed = parse_task_id(task_id)
    if parsed is None:
        raise TaskNotFoundError(task_id)
    with hub.listen(parsed) as listener:
        current = await _load(sessionmaker, parsed, owner)
        if current is None:
            raise TaskNotFoundError(task_id)
        if after is None:
            first = [Update(current)]
        elif after < current.sequence:
            first = await _replay(sessionmaker, current, after)
        else:
            first = []
        follower = Follower(current)
        for update in _marked(first, hub.live):
            yield update
        while not follower.task.status.is_terminal:
            listener.sequence = follower.task.sequence
            events = await listener.wait()
            live = hub.live
            for update in _marked(await follower.advance(sessionmaker, events), live):
                if after is None or update.task.sequence > after:
                    yield update


class _Feed:
    """The changes of many tasks for one subscriber, each task in order."""

    def __init__(self, sessionmaker: Sessionmaker, owner: str) -> None:
        self._sessionmaker = sessionmaker
        self._owner = owner
        self._followers: dict[uuid.UUID, Follower] = {}
        self._finished: FIFOCache[uuid.UUID, int] = FIFOCache(maxsize=FEED_FINISHED_MEMORY)
        # Other callers' tasks whose events this feed has heard, so as not to look them
        # up again on each change.
        self._foreign: FIFOCache[uuid.UUID, None] = FIFOCache(maxsize=FEED_FINISHED_MEMORY)

    def _seen(self, task_id: uuid.UUID, sequence: int) -> bool:
        return task_id in self._foreign or self._finished.get(task_id, 0) >= sequence

    def _remember_foreign(self, task_ids: Iterable[uuid.UUID]) -> None:
        for task_id in task_ids:
            self._foreign[task_id] = None

    def _after(self, updates: list[Update]) -> list[Update]:
        """Forget tasks that ended, but remember their last sequence for a while."""
        for update in updates:
            task = update.task
            if task.status.is_terminal and task.id in self._followers:
                del self._followers[task.id]
                self._finished[task.id] = task.sequence
        return updates

    def _start_following(self, tasks: Iterable[Task]) -> list[Update]:
        updates = []
        for task in tasks:
            if task.id not in self._followers and not self._seen(task.id, task.sequence):
                self._followers[task.id] = Follower(task)
                updates.append(Update(task))
        return updates

    async def take(self, events: list[TaskEvent]) -> list[Update]:
        by_task: dict[uuid.UUID, list[TaskEvent]] = {}
        for event in events:
            if not self._seen(event.task_id, event.sequence):
                by_task.setdefault(event.task_id, []).append(event)
        updates: list[Update] = []
        new = [task_id for task_id in by_task if task_id not in self._followers]
        if new:
            async with self._sessionmaker() as session:
                owned = await repository.get_tasks(session, new, owner=self._owner)
            updates += self._start_following(owned)
            self._remember_foreign(set(new) - {task.id for task in owned})
        for task_id, task_events in by_task.items():
            if task_id not in new:
                updates += await self._followers[task_id].advance(self._sessionmaker, task_events)
        return self._after(updates)

    async def resync(self, since: datetime) -> list[Update]:
        """Everything changed since the last check, known tasks from the log."""
        async with self._sessionmaker() as session:
            changed = await repository.tasks_changed_since(
                session, since - FEED_RESYNC_MARGIN, FEED_RESYNC_LIMIT, owner=self._owner
            )
        updates = self._start_following(task for task in changed if task.id not in self._followers)
        for task in changed:
            follower = self._followers.get(task.id)
            if follower is not None and task.sequence > follower.task.sequence:
                updates += await follower.catch_up(self._sessionmaker)
        return self._after(updates)


async def watch_tasks(
    sessionmaker: Sessionmaker,
    hub: TaskEventHub,
    *,
    owner: str,
    statuses: frozenset[TaskStatus] | None,
    resync_seconds: float,
) -> AsyncIterator[Update]:
    """Changes of every task of `owner` from now on, each task's in order without gaps; a
    task's first update is its whole state. With `statuses`, only updates in one of them.

    Every `resync_seconds`, and whenever a message may have been missed, the feed also
    reads back the tasks changed since its last check: a change whose message never went
    out (its worker died right after the commit) still reaches the feed.
    """
    feed = _Feed(sessionmaker, owner)
    clock = asyncio.get_running_loop().time
    with hub.listen() as listener:
        since = await _database_now(sessionmaker)
        next_check = clock() + resync_seconds
        while True:
            events = await listener.wait(max(0.0, next_check - clock()))
            live = hub.live
            updates = await feed.take(events) if events else []
            if events is None or clock() >= next_check:
                checked = await _database_now(sessionmaker)
                updates += await feed.resync(since)
                since, next_check = checked, clock() + resync_seconds
            for update in _marked(updates, live):
                if statuses is None or update.task.status in statuses:
                    yield update


async def _database_now(sessionmaker: Sessionmaker) -> datetime:
    async with sessionmaker() as session:
        return await repository.database_now(session)
