"""The API writes task messages itself; they must be the messages Celery would send."""

from __future__ import annotations

import base64
import json
import uuid

import redis

from graphql_app.settings import Settings
from persistence.models import Task, TaskKind, TaskPriority
from tasks.celery_app import BROKER_PRIORITIES, TASK_NAMES, create_celery_app
from tasks.dispatch import PRIORITY_SEPARATOR, task_message
from tests.fixtures.stack import Stack

# A queue no worker reads, so the message Celery sends stays there to be looked at.
PROBE_QUEUE = "aitasks-test-probe"


def celerys_message(stack: Stack, task: Task) -> dict[str, object]:
    app = create_celery_app(Settings(_env_file=None), stack.redis_url)  # type: ignore[call-arg]
    client = redis.Redis.from_url(stack.redis_url)
    priority = BROKER_PRIORITIES[task.priority]
    try:
        app.send_task(
            TASK_NAMES[task.kind], args=[str(task.id)], queue=PROBE_QUEUE, priority=priority
        )
        raw = client.lpop(f"{PROBE_QUEUE}{PRIORITY_SEPARATOR}{priority}")
    finally:
        client.close()
        app.close()
    assert isinstance(raw, bytes), "Celery's message did not arrive where expected"
    message: dict[str, object] = json.loads(raw)
    return message


def test_the_apis_task_message_has_celerys_shape(stack: Stack) -> None:
    task = Task(id=uuid.uuid4(), kind=TaskKind.TEXT_GENERATION, priority=TaskPriority.LOW)

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
