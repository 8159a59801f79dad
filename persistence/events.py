"""Task changes on Redis pub/sub: a channel per task, one subscriber connection per process.

Pub/sub delivers at most once. An event says only what changed; a subscriber that may have
missed one (a gap in `sequence`, a reconnect, a full buffer) reads the task back from
PostgreSQL instead of guessing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from persistence.models import Task, TaskStatus

logger = logging.getLogger(__name__)

CHANNEL_PREFIX = "aitasks:task:"
# The hub listens here from start-up, so its connection exists before any task channel.
HUB_CHANNEL = "aitasks:hub"
# How long one read from Redis waits before the hub checks whether it should stop.
READ_TIMEOUT_SECONDS = 1.0
# How long a new subscriber waits for Redis to confirm its channel before it relies on
# re-reading the task instead.
SUBSCRIBE_TIMEOUT_SECONDS = 5.0
# Back-off between attempts to reach a Redis that went away.
RECONNECT_DELAY_SECONDS = (0.1, 5.0)


def channel_for(task_id: uuid.UUID) -> str:
    return f"{CHANNEL_PREFIX}{task_id}"


def _timestamp(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True)
class TaskEvent:
    """One committed change of a task, as published."""

    task_id: uuid.UUID
    sequence: int
    status: TaskStatus
    progress: float
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def from_task(cls, task: Task) -> TaskEvent:
        return cls(
            task_id=task.id,
            sequence=task.sequence,
            status=task.status,
            progress=task.progress,
            updated_at=task.updated_at,
            started_at=task.started_at,
            finished_at=task.finished_at,
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "id": str(self.task_id),
                "sequence": self.sequence,
                "status": self.status.value,
                "progress": self.progress,
                "updated_at": _timestamp(self.updated_at),
                "started_at": _timestamp(self.started_at),
                "finished_at": _timestamp(self.finished_at),
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> TaskEvent:
        data = json.loads(raw)
        return cls(
            task_id=uuid.UUID(data["id"]),
            sequence=int(data["sequence"]),
            status=TaskStatus(data["status"]),
            progress=float(data["progress"]),
            updated_at=datetime.fromisoformat(data["updated_at"]),
            started_at=_parse_time(data["started_at"]),
            finished_at=_parse_time(data["finished_at"]),
        )

    def apply_to(self, task: Task) -> Task:
        return task.evolve(
            sequence=self.sequence,
            status=self.status,
            progress=self.progress,
            updated_at=self.updated_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
        )


async def publish(redis: Redis, task: Task) -> None:
    await redis.publish(channel_for(task.id), TaskEvent.from_task(task).to_json())


class TaskListener:
    """The events of one task for one subscriber, buffered up to a bound.

    When the buffer is full the events are dropped and the listener is marked out of sync:
    a slow subscriber then re-reads the task once instead of holding memory without limit.
    """

    def __init__(self, max_buffered: int) -> None:
        self._events: deque[TaskEvent] = deque()
        self._max_buffered = max_buffered
        self._wakeup = asyncio.Event()
        self.out_of_sync = False

    def push(self, event: TaskEvent) -> None:
        if len(self._events) >= self._max_buffered:
            self._events.clear()
            self.out_of_sync = True
        else:
            self._events.append(event)
        self._wakeup.set()

    def mark_out_of_sync(self) -> None:
        self.out_of_sync = True
        self._wakeup.set()

    async def wait(self, quiet_seconds: float) -> list[TaskEvent] | None:
        """Buffered events, or None when the caller must re-read the task.

        None also comes after `quiet_seconds` with nothing heard, since a lost message
        looks exactly like silence.
        """
        if not self._events and not self.out_of_sync:
            try:
                await asyncio.wait_for(self._wakeup.wait(), quiet_seconds)
            except TimeoutError:
                return None
        self._wakeup.clear()
        if self.out_of_sync:
            self.out_of_sync = False
            self._events.clear()
            return None
        events = list(self._events)
        self._events.clear()
        return events


class TaskEventHub:
    """One Redis pub/sub connection for the whole process, fanned out to listeners."""

    def __init__(self, redis: Redis, max_buffered: int) -> None:
        self._redis = redis
        self._max_buffered = max_buffered
        self._listeners: dict[str, set[TaskListener]] = {}
        self._pubsub = redis.pubsub()
        self._reader: asyncio.Task[None] | None = None
        # Channels whose SUBSCRIBE Redis has confirmed: from then on no message is missed.
        self._confirmed: dict[str, asyncio.Event] = {}

    async def start(self) -> None:
        self._reader = asyncio.create_task(self._read_forever(), name="task-event-hub")

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await self._pubsub.aclose()

    @asynccontextmanager
    async def listen(self, task_id: uuid.UUID) -> AsyncIterator[TaskListener]:
        """Listen to a task's channel; on entry Redis has confirmed the subscription.

        Read the task's state only after entering: every change committed after that read
        then reaches the listener.
        """
        channel = channel_for(task_id)
        listener = TaskListener(self._max_buffered)
        listeners = self._listeners.setdefault(channel, set())
        listeners.add(listener)
        try:
            if len(listeners) == 1:
                self._confirmed[channel] = asyncio.Event()
                await self._subscribe(channel)
            await self._await_confirmation(channel, listener)
            yield listener
        finally:
            listeners.discard(listener)
            if not listeners and self._listeners.get(channel) is listeners:
                del self._listeners[channel]
                self._confirmed.pop(channel, None)
                await self._unsubscribe(channel)

    async def _subscribe(self, channel: str) -> None:
        try:
            await self._pubsub.subscribe(channel)
        except (RedisConnectionError, RedisTimeoutError):
            # The reader re-subscribes every channel when Redis is back, and the
            # subscriber re-reads its task meanwhile; nothing is lost but latency.
            logger.warning("could not subscribe to %s now; will on reconnect", channel)

    async def _await_confirmation(self, channel: str, listener: TaskListener) -> None:
        confirmed = self._confirmed.get(channel)
        if confirmed is None:
            return
        try:
            await asyncio.wait_for(confirmed.wait(), SUBSCRIBE_TIMEOUT_SECONDS)
        except TimeoutError:
            listener.mark_out_of_sync()

    async def _unsubscribe(self, channel: str) -> None:
        try:
            await self._pubsub.unsubscribe(channel)
        except (RedisConnectionError, RedisTimeoutError):
            logger.debug("could not unsubscribe from %s: Redis is away", channel)

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
            self._everyone_out_of_sync()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_DELAY_SECONDS[1])

    async def _connect(self) -> None:
        await self._pubsub.subscribe(HUB_CHANNEL, *self._listeners)
        connection: Any = self._pubsub.connection
        # redis-py reconnects and re-subscribes on its own inside a read; whatever was
        # published meanwhile is gone, so every listener must re-read its task.
        connection.register_connect_callback(self._on_reconnect)
        self._everyone_out_of_sync()

    async def _on_reconnect(self, connection: Any) -> None:
        self._everyone_out_of_sync()

    def _everyone_out_of_sync(self) -> None:
        for listeners in self._listeners.values():
            for listener in listeners:
                listener.mark_out_of_sync()

    def _dispatch(self, message: dict[str, Any]) -> None:
        channel = message["channel"]
        channel = channel.decode() if isinstance(channel, bytes) else channel
        if message.get("type") == "subscribe":
            if (confirmed := self._confirmed.get(channel)) is not None:
                confirmed.set()
            return
        listeners = self._listeners.get(channel)
        if not listeners or message.get("type") != "message":
            return
        try:
            event = TaskEvent.from_json(message["data"])
        except (ValueError, KeyError, TypeError):
            logger.warning("ignoring a malformed event on %s", channel)
            return
        for listener in listeners:
            listener.push(event)
