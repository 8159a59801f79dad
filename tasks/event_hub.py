"""The process's one Redis subscription to task changes, fanned out in the process to any
number of listeners (tasks/events.py encodes and publishes the changes).

Pub/sub delivers at most once. It is only the fast path: the durable record of every
change is the `task_events` log in PostgreSQL, and a listener that may have missed a
message (a gap in `sequence`, a reconnect, a full buffer) is told so and catches up from
the log. While Redis cannot be reached the hub is not `live`: it then reads the log for
its listeners every `poll_seconds`, so they keep moving, later than live but in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from persistence import repository
from persistence.models import TaskEvent
from tasks.events import TASK_ID_CHARS, channel_of, decode

logger = logging.getLogger(__name__)

# How long one read from Redis waits before the hub checks whether it should stop.
READ_TIMEOUT_SECONDS = 1.0
# Back-off between attempts to reach a Redis that went away.
RECONNECT_DELAY_SECONDS = (0.1, 5.0)
# Task ids per query when the hub checks its listeners against the database.
AUDIT_BATCH = 1000


class Listener:
    """Events for one subscriber, buffered up to a bound.

    When the buffer is full the events are dropped and the listener is marked out of sync:
    a slow subscriber then catches up from the log once, instead of holding memory
    without limit or slowing the others down.

    A list and one future rather than a deque and an asyncio.Event: an idle subscription
    holds an empty buffer and a waiter for as long as it is open, and a deque (with its
    first block) and an Event (with a deque of waiters) cost several times as much.
    """

    __slots__ = ("_events", "_max_buffered", "_waiter", "out_of_sync", "sequence")

    def __init__(self, max_buffered: int) -> None:
        self._events: list[TaskEvent] = []
        self._max_buffered = max_buffered
        self._waiter: asyncio.Future[None] | None = None
        self.out_of_sync = False
        # The last sequence the subscriber has applied (for the hub's audit).
        self.sequence = 0

    def push(self, event: TaskEvent) -> None:
        if len(self._events) >= self._max_buffered:
            self._events.clear()
            self.out_of_sync = True
        else:
            self._events.append(event)
        self._wake()

    def mark_out_of_sync(self) -> None:
        self.out_of_sync = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def wait(self, quiet_seconds: float | None = None) -> list[TaskEvent] | None:
        """Buffered events, or None when the caller must catch up from the log.

        None also comes after `quiet_seconds` with nothing heard, if given: a lost
        message looks exactly like silence.
        """
        if not self._events and not self.out_of_sync:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                if quiet_seconds is None:
                    # Not through wait_for, whose coroutine an idle subscription would
                    # keep for as long as it waits.
                    await self._waiter
                else:
                    await asyncio.wait_for(self._waiter, quiet_seconds)
            except TimeoutError:
                return None
            finally:
                self._waiter = None
        if self.out_of_sync:
            self.out_of_sync = False
            self._events.clear()
            return None
        events, self._events = self._events, []
        return events


class TaskEventHub:
    """The process's one Redis subscription, fanned out to listeners of one task or of
    all tasks.

    Every `audit_seconds` it also compares what each one-task listener has applied with
    the database, in one query per batch of tasks, and wakes those that fell behind: a
    worker that committed a change and died before publishing it leaves no message at all.
    While the subscription is lost it does so every `poll_seconds` instead, and wakes
    every all-tasks listener too: the log is then the only way changes arrive. One query
    per batch of followed tasks, not one per subscriber, however many are waiting.
    """

    def __init__(
        self,
        redis: Redis,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        max_buffered: int,
        audit_seconds: float,
        poll_seconds: float,
    ) -> None:
        self._redis = redis
        self._sessionmaker = sessionmaker
        self._max_buffered = max_buffered
        self._audit_seconds = audit_seconds
        self._poll_seconds = poll_seconds
        self._by_task: dict[str, set[Listener]] = {}
        self._everything: set[Listener] = set()
        self._pubsub = redis.pubsub()
        self._workers: list[asyncio.Task[None]] = []
        self._subscribed = asyncio.Event()
        # Set while `_subscribed` is not: the audit waits on it to start polling at once.
        self._down = asyncio.Event()
        self._down.set()

    async def start(self) -> None:
        self._workers = [
            asyncio.create_task(self._read_forever(), name="task-event-hub"),
            asyncio.create_task(self._audit_forever(), name="task-event-audit"),
        ]

    async def close(self) -> None:
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        await self._pubsub.aclose()

    @property
    def live(self) -> bool:
        """Whether changes arrive as they happen: Redis has confirmed the subscription.
        When not, listeners hear of changes only from the log, every `poll_seconds`."""
        return self._subscribed.is_set()

    async def wait_subscribed(self) -> None:
        """Until Redis has confirmed the subscription (wrap in a timeout)."""
        await self._subscribed.wait()

    @contextmanager
    def listen(self, task_id: uuid.UUID | None = None) -> Iterator[Listener]:
        """Listen to one task's changes, or to every task's when `task_id` is None.

        Read the state to start from only after entering: every change committed after
        that read then reaches the listener, or the listener is marked out of sync.
        """
        listener = Listener(self._max_buffered)
        if not self._subscribed.is_set():
            # Redis is away (or not yet confirmed): whatever happens meanwhile is missed.
            listener.mark_out_of_sync()
        if task_id is None:
            self._everything.add(listener)
        else:
            self._by_task.setdefault(str(task_id), set()).add(listener)
        try:
            yield listener
        finally:
            if task_id is None:
                self._everything.discard(listener)
            else:
                key = str(task_id)
                listeners = self._by_task.get(key)
                if listeners is not None:
                    listeners.discard(listener)
                    if not listeners:
                        del self._by_task[key]

    async def _audit_forever(self) -> None:
        while True:
            if self.live:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._down.wait(), self._audit_seconds)
                if not self.live:
                    continue  # just lost: every listener was woken to catch up already
            else:
                await asyncio.sleep(self._poll_seconds)
            try:
                await self.audit()
            except Exception as error:
                logger.warning("task events: could not check listeners (%s)", error)

    async def audit(self) -> int:
        """Wake every listener that is behind the database; return how many. While the
        hub is not live, that is every all-tasks listener, whose feed re-reads what
        changed."""
        behind = await self._audit_tasks()
        if not self.live:
            for listener in self._everything:
                listener.mark_out_of_sync()
                behind += 1
        return behind

    async def _audit_tasks(self) -> int:
        task_ids = list(self._by_task)
        behind = 0
        for start in range(0, len(task_ids), AUDIT_BATCH):
            batch = [uuid.UUID(task_id) for task_id in task_ids[start : start + AUDIT_BATCH]]
            async with self._sessionmaker() as session:
                sequences = await repository.current_sequences(session, batch)
            for task_id, sequence in sequences.items():
                for listener in self._by_task.get(str(task_id), ()):
                    if listener.sequence < sequence:
                        listener.mark_out_of_sync()
                        behind += 1
        return behind

    async def _read_forever(self) -> None:
        delay = RECONNECT_DELAY_SECONDS[0]
        while True:
            try:
                await self._connect()
                delay = RECONNECT_DELAY_SECONDS[0]
                while True:
                    message = await self._pubsub.get_message(timeout=READ_TIMEOUT_SECONDS)
                    if message is not None:
                        self._dispatch(message)
            except (RedisConnectionError, RedisTimeoutError, OSError) as error:
                logger.warning("task events: Redis connection lost (%s); reconnecting", error)
            except Exception:
                # Whatever it was, subscribers must keep getting events: start over.
                logger.exception("task events: the reader failed; restarting it")
            self._lost()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_DELAY_SECONDS[1])

    async def _connect(self) -> None:
        await self._pubsub.subscribe(channel_of(self._redis))
        connection: Any = self._pubsub.connection
        # redis-py reconnects and re-subscribes on its own inside a read; whatever was
        # published meanwhile is gone, so every listener must catch up.
        connection.register_connect_callback(self._on_reconnect)

    async def _on_reconnect(self, connection: Any) -> None:
        self._lost()

    def _lost(self) -> None:
        if not self.live:
            return  # told already; meanwhile the audit polls the log for every listener
        self._subscribed.clear()
        self._down.set()
        for listener in self._all_listeners():
            listener.mark_out_of_sync()

    def _all_listeners(self) -> Iterator[Listener]:
        yield from self._everything
        for listeners in self._by_task.values():
            yield from listeners

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "subscribe":
            # From here on nothing published is missed; anything before may have been.
            self._subscribed.set()
            self._down.clear()
            for listener in self._all_listeners():
                listener.mark_out_of_sync()
            return
        if kind != "message":
            return
        data = message["data"]
        data = data.decode() if isinstance(data, bytes) else data
        listeners = self._by_task.get(data[:TASK_ID_CHARS])
        if not listeners and not self._everything:
            return
        try:
            event = decode(data)
        except (ValueError, KeyError, TypeError):
            logger.warning("ignoring a malformed task event: %.80r", data)
            return
        for listener in listeners or ():
            listener.push(event)
        for listener in self._everything:
            listener.push(event)
