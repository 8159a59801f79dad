"""Task changes as messages on Redis pub/sub: how a change is encoded, on which channel
it goes out, and publishing it. The process's one subscriber, which fans the channel out
to listeners, is tasks/event_hub.py.

Pub/sub delivers at most once. It is only the fast path: the durable record of every
change is the `task_events` log in PostgreSQL, and a listener that may have missed a
message catches up from the log.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import orjson
from redis.asyncio import Redis

from persistence.models import Task, TaskEvent, TaskStatus

# Every change of every task goes out on one channel, so each API process needs exactly
# one subscription however many tasks its clients follow. Pub/sub ignores database
# numbers, so the channel names the number: deployments sharing a server stay apart.
CHANNEL_PREFIX = "aitasks:task-events:"
# A message is "<task id> <event JSON>": a listener-less process skips it unparsed.
TASK_ID_CHARS = 36


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def encode(event: TaskEvent) -> str:
    # orjson writes datetimes as `isoformat()` does in a fraction of the stdlib json's
    # time, and one event is encoded per change.
    # The values are as read back from PostgreSQL, so orjson can always encode them.
    body = orjson.dumps(
        {
            "sequence": event.sequence,
            "status": event.status.value,
            "progress": event.progress,
            "stage": event.stage,
            "delta": event.delta,
            "result_reset": event.result_reset,
            "error": event.error,
            "attempts": event.attempts,
            "updated_at": event.updated_at,
            "started_at": event.started_at,
            "finished_at": event.finished_at,
            "scheduled_for": event.scheduled_for,
            "cancel_requested_at": event.cancel_requested_at,
            "errors": event.errors,
            "output": event.output,
            "artifacts": event.artifacts,
        }
    )
    return f"{event.task_id} {body.decode()}"


def decode(message: str) -> TaskEvent:
    # Read with orjson too: every API process decodes every change it hears.
    data = orjson.loads(message[TASK_ID_CHARS + 1 :])
    return TaskEvent(
        task_id=uuid.UUID(message[:TASK_ID_CHARS]),
        sequence=int(data["sequence"]),
        status=TaskStatus(data["status"]),
        progress=float(data["progress"]),
        stage=data["stage"],
        delta=data["delta"],
        result_reset=bool(data["result_reset"]),
        error=data["error"],
        attempts=int(data["attempts"]),
        updated_at=datetime.fromisoformat(data["updated_at"]),
        started_at=_parse_time(data["started_at"]),
        finished_at=_parse_time(data["finished_at"]),
        scheduled_for=_parse_time(data["scheduled_for"]),
        cancel_requested_at=_parse_time(data["cancel_requested_at"]),
        errors=list(data["errors"]),
        output=data.get("output"),
        artifacts=list(data.get("artifacts") or []),
    )


def channel_of(redis: Redis) -> str:
    return f"{CHANNEL_PREFIX}{redis.connection_pool.connection_kwargs.get('db', 0)}"


async def publish(redis: Redis, event: TaskEvent) -> None:
    await redis.publish(channel_of(redis), encode(event))


def creation_event(task: Task) -> TaskEvent:
    """The event of a task's creation (sequence 1)."""
    return TaskEvent.of(task, result_reset=True)
