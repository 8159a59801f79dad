"""Handing tasks to the broker.

The API does not use Celery's client to send a task. Celery's publish is synchronous (it
would need a thread per send) and costs more CPU than the rest of a create. Instead the
API writes the same message Celery would (its documented message protocol, version 2, as
kombu's Redis transport stores it) with an LPUSH on its asyncio Redis client, in the same
command as the creation event's PUBLISH (a script). Workers and the sweeper, which are
not on the request path, still send through Celery (`send_task`).
"""

from __future__ import annotations

import base64
import logging
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
from celery import Celery
from redis.asyncio import Redis
from redis.exceptions import RedisError

from persistence.grouping import Grouped
from persistence.models import Task, TaskEvent, TaskPriority
from tasks.cancel_signals import signal_cancel
from tasks.celery_app import BROKER_PRIORITIES
from tasks.events import channel_of, encode, publish
from tasks.kinds import KINDS

logger = logging.getLogger(__name__)

# kombu's Redis transport names a queue's list for priority n as "<queue>\x06\x16<n>"
# (the bare queue name for priority 0) and BRPOPs the lists in priority order.
PRIORITY_SEPARATOR = "\x06\x16"
# What a task message's body says beyond its arguments: no callbacks, chains or chords.
EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
ORIGIN = f"{os.getpid()}@{socket.gethostname()}"


def send_task(
    celery_app: Celery,
    task_id: str,
    kind: str,
    priority: TaskPriority = TaskPriority.NORMAL,
    countdown: float | None = None,
) -> None:
    """Publish the message that runs a task through Celery. Blocking: not for the API's
    event loop."""
    celery_app.send_task(
        KINDS[kind].task_name,
        args=[task_id],
        queue=KINDS[kind].queue,
        priority=BROKER_PRIORITIES[priority],
        countdown=countdown,
    )


@dataclass(frozen=True)
class BrokerMessage:
    """A task message ready to LPUSH: the list it goes on and its bytes."""

    key: str
    payload: str


def task_message(task: Task, countdown: float | None = None) -> BrokerMessage:
    """The message Celery's `send_task` would put on Redis to run `task`."""
    message_id = str(uuid.uuid4())
    args = [str(task.id)]
    body = orjson.dumps([args, {}, EMBED])
    eta = None
    if countdown:
        eta = (datetime.now(UTC) + timedelta(seconds=countdown)).isoformat()
    queue, priority = KINDS[task.kind].queue, BROKER_PRIORITIES[task.priority]
    message = {
        "body": base64.b64encode(body).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py",
            "task": KINDS[task.kind].task_name,
            "id": message_id,
            "shadow": None,
            "eta": eta,
            "expires": None,
            "group": None,
            "group_index": None,
            "retries": 0,
            "timelimit": [None, None],
            "root_id": message_id,
            "parent_id": None,
            "argsrepr": repr(args),
            "kwargsrepr": "{}",
            "origin": ORIGIN,
            "ignore_result": None,
            "replaced_task_nesting": 0,
            "stamped_headers": None,
            "stamps": {},
        },
        "properties": {
            "correlation_id": message_id,
            "reply_to": str(uuid.uuid4()),
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": priority,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    key = f"{queue}{PRIORITY_SEPARATOR}{priority}" if priority else queue
    # orjson: the stdlib's encoder took more of a create than the LPUSH it feeds.
    return BrokerMessage(key, orjson.dumps(message).decode())


# Queue tasks' messages and publish their creations as one command: in redis-py a script
# call costs less client CPU than a two-command pipeline, and Redis runs all or, if it
# fails, none. KEYS: each
# message's list; ARGV[1]: the channel, then each message and its event ('' for none).
ENQUEUE_SCRIPT = """
for i, key in ipairs(KEYS) do
    redis.call('LPUSH', key, ARGV[2 * i])
    if ARGV[2 * i + 1] ~= '' then
        redis.call('PUBLISH', ARGV[1], ARGV[2 * i + 1])
    end
end
return #KEYS
"""


@dataclass(frozen=True)
class Handover:
    """A task's message for the broker, and the event announcing it."""

    task_id: uuid.UUID
    message: BrokerMessage
    event: TaskEvent | None


class Dispatcher:
    """The API's way out to Redis: task messages, change events and cancel requests,
    sent once the change they follow is committed. The messages of concurrent creates go
    out together (see `persistence.grouping`), at most `max_messages` per command."""

    def __init__(self, redis: Redis, *, max_messages: int = 1, max_in_flight: int = 1) -> None:
        # A client whose commands time out on their own (socket_timeout): an asyncio
        # timeout would cancel a redis-py command mid-flight instead.
        self.redis = redis
        self._enqueue = redis.register_script(ENQUEUE_SCRIPT)
        self._channel = channel_of(redis)
        self._handovers: Grouped[Handover, None] = Grouped(
            "messages", self._hand_over, max_items=max_messages, max_in_flight=max_in_flight
        )

    async def ping(self) -> None:
        """Raise unless Redis answers (within the client's socket timeout)."""
        await self.redis.ping()

    async def enqueue(
        self, task: Task, *, countdown: float | None = None, event: TaskEvent | None = None
    ) -> None:
        """Queue the task's message (to run `countdown` seconds from now) and publish
        `event`, in one round trip shared with other creates. If Redis cannot take them
        now the task stays PENDING, and the sweeper sends it later."""
        await self._handovers.submit(Handover(task.id, task_message(task, countdown), event))

    async def _hand_over(self, handovers: list[Handover]) -> list[BaseException | None]:
        arguments = [self._channel]
        for handover in handovers:
            event = handover.event
            arguments += [handover.message.payload, "" if event is None else encode(event)]
        try:
            await self._enqueue(
                keys=[handover.message.key for handover in handovers], args=arguments
            )
        except (RedisError, OSError) as error:
            for handover in handovers:
                logger.warning(
                    "task %s not enqueued now (%s); the sweeper will send it",
                    handover.task_id,
                    error,
                )
        return [None] * len(handovers)

    async def publish(self, event: TaskEvent) -> None:
        try:
            await publish(self.redis, event)
        except (RedisError, OSError) as error:
            # Subscribers catch up from the change log; nothing is lost but latency.
            logger.warning(
                "task %s: change %d not published (%s)", event.task_id, event.sequence, error
            )

    async def request_cancel(self, task_id: uuid.UUID) -> None:
        try:
            await signal_cancel(self.redis, task_id)
        except (RedisError, OSError) as error:
            # The worker also sees the request in the row when it renews its lease.
            logger.warning("task %s: cancel not signalled now (%s)", task_id, error)
