"""The API writes task messages itself; they must be the messages Celery would send."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid

import redis
from redis.asyncio import Redis as AsyncRedis

from persistence.models import QUEUED_STAGE, Task, TaskPriority, TaskStatus
from persistence.settings import Settings
from tasks.celery_app import BROKER_PRIORITIES, create_celery_app
from tasks.events import channel_of, creation_event
from tasks.kinds import KINDS
from tasks.services.dispatch import PRIORITY_SEPARATOR, Dispatcher, task_message
from tests.fixtures.stack import Backing, Stack

# A queue no worker reads, so the message Celery sends stays there to be looked at.
PROBE_QUEUE = "aitasks-test-probe"


def celerys_message(stack: Stack, task: Task) -> dict[str, object]:
    app = create_celery_app(Settings(_env_file=None), stack.redis_url)  # type: ignore[call-arg]
    client = redis.Redis.from_url(stack.redis_url)
    priority = BROKER_PRIORITIES[task.priority]
    try:
        app.send_task(
            KINDS[task.kind].task_name, args=[str(task.id)], queue=PROBE_QUEUE, priority=priority
        )
        raw = client.lpop(f"{PROBE_QUEUE}{PRIORITY_SEPARATOR}{priority}")
    finally:
        client.close()
        app.close()
    assert isinstance(raw, bytes), "Celery's message did not arrive where expected"
    message: dict[str, object] = json.loads(raw)
    return message


def test_the_apis_task_message_has_celerys_shape(stack: Stack) -> None:
    task = Task(id=uuid.uuid4(), kind="TEXT_GENERATION", priority=TaskPriority.LOW)

    ours = task_message(task)
    theirs = celerys_message(stack, task)
    mine = json.loads(ours.payload)

    assert ours.key == f"text_generation{PRIORITY_SEPARATOR}6"
    assert set(mine) == set(theirs)
    assert set(mine["headers"]) == set(theirs["headers"])  # type: ignore[arg-type]
    assert set(mine["properties"]) == set(theirs["properties"])  # type: ignore[arg-type]
    for name in ("content-type", "content-encoding"):
        assert mine[name] == theirs[name]
    for name in ("task", "lang", "retries", "timelimit", "argsrepr", "kwargsrepr", "eta"):
        assert mine["headers"][name] == theirs["headers"][name], name  # type: ignore[index]
    for name in ("delivery_mode", "priority", "body_encoding"):
        assert mine["properties"][name] == theirs["properties"][name], name  # type: ignore[index]
    decoded = [
        json.loads(base64.b64decode(message["body"]))  # type: ignore[arg-type]
        for message in (mine, theirs)
    ]
    assert decoded[0] == decoded[1]


async def _hand_over_together(redis_url: str, tasks: list[Task]) -> tuple[int, list[str]]:
    """Enqueue the tasks at once through one Dispatcher; the Redis calls it took and the
    events heard on the channel."""
    commands = AsyncRedis.from_url(redis_url)
    listening = AsyncRedis.from_url(redis_url)
    dispatcher = Dispatcher(commands, max_messages=4, max_in_flight=1)
    pubsub = listening.pubsub()
    try:
        await pubsub.subscribe(channel_of(commands))
        await pubsub.get_message(timeout=5)
        before = await _script_calls(commands)
        await asyncio.gather(
            *(dispatcher.enqueue(task, event=creation_event(task)) for task in tasks)
        )
        calls = await _script_calls(commands) - before
        heard = []
        while len(heard) < len(tasks):
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
            assert message is not None, f"heard {len(heard)} of {len(tasks)} events"
            heard.append(message["data"].decode())
        return calls, heard
    finally:
        await pubsub.aclose()
        await listening.aclose()
        await commands.aclose()


async def _script_calls(client: AsyncRedis) -> int:
    stats = await client.info("commandstats")
    return sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("evalsha", "eval"))


def test_concurrent_hand_overs_share_calls_and_each_message_and_event_arrives(
    backing: Backing,
) -> None:
    # A Redis of its own: no worker takes the messages before they are looked at.
    redis_url = backing.new_redis()
    tasks = [
        Task(
            id=uuid.uuid4(),
            kind="TEXT_GENERATION",
            priority=TaskPriority.LOW,
            status=TaskStatus.PENDING,
            sequence=1,
            progress=0.0,
            stage=QUEUED_STAGE,
            errors=[],
            artifacts=[],
        )
        for _ in range(10)
    ]
    client = redis.Redis.from_url(redis_url)
    key = task_message(tasks[0]).key
    try:
        calls, heard = asyncio.run(_hand_over_together(redis_url, tasks))
        queued = [json.loads(raw) for raw in client.lrange(key, 0, -1)]
    finally:
        client.delete(key)
        client.close()

    # At most 4 per call, one call at a time: 3 calls at best, 10 if none ever waited.
    assert 3 <= calls < 10
    assert sorted(message["headers"]["argsrepr"] for message in queued) == sorted(
        repr([str(task.id)]) for task in tasks
    )
    assert sorted(event[:36] for event in heard) == sorted(str(task.id) for task in tasks)
