"""A dead pool process, or a create whose message never left, does not strand a task.

These stacks keep the default lease (60 s) and requeue delay (300 s): the tasks must end
well before either could have helped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

import asyncpg
import httpx
import psutil
import pytest
from redis.asyncio import Redis

from persistence.models import Task, TaskPriority
from persistence.settings import Settings
from tasks.celery_app import create_celery_app
from tasks.kinds import KINDS
from tasks.services.dispatch import task_message
from tasks.worker.reconciler import (
    UNACKED_INDEX_KEY,
    UNACKED_KEY,
    Waiting,
    log_failed_check,
    queue_keys,
    waiting_task_ids,
)
from tests.fixtures.graphql import create_task, get_task
from tests.fixtures.stack import Backing, Process, Stack, free_port, wait_until
from tests.fixtures.tasks import insert_pending_task, logged_events, read_task

# Seconds the demo model takes per task here: long enough to kill it at several points.
DEMO_SECONDS = 4.0
# The bound the issue sets for a task to end after its worker died, plus the task itself.
RECOVERY_SECONDS = 30.0 + DEMO_SECONDS
# Seconds per task in the busy-queue test: 6 tasks on 2 pool processes keep the queue
# busy for two rounds of them, far longer than the reconciler needs to notice a lost message.
BUSY_DEMO_SECONDS = 8.0
BUSY_TASKS = 6


def pool_pids(stack: Stack) -> list[int]:
    """The pids of the worker's pool processes, as Celery reports them (the text
    worker's threads pool has none)."""
    app = create_celery_app(Settings(_env_file=None), stack.redis_url)  # type: ignore[call-arg]
    try:
        stats = app.control.inspect(timeout=2).stats() or {}
    finally:
        app.close()
    return [pid for worker in stats.values() for pid in worker["pool"].get("processes", [])]


def kill_children(worker: Process) -> None:
    """SIGKILL every child of the worker's main process, as a kill aimed at its pool
    processes (or the OOM killer picking each in turn) would."""
    for child in psutil.Process(worker.popen.pid).children():
        os.kill(child.pid, signal.SIGKILL)


def completions(stack: Stack, task_id: str) -> int:
    events = logged_events(stack.database_url, task_id)
    return [event.status.value for event in events].count("COMPLETED")


def started(stack: Stack, task_id: str, progress: float) -> bool:
    task = get_task(stack, task_id) or {}
    return task.get("status") == "PROCESSING" and task.get("progress", 0) >= progress


# The moments of the kill: just claimed, a third of the way, most of the way.
@pytest.mark.parametrize("progress", [0.0, 0.3, 0.7])
def test_a_task_whose_pool_processes_were_killed_ends_once_soon_after(
    make_stack: Callable[..., Stack], progress: float
) -> None:
    stack = make_stack(AITASKS_DEMO_DURATION_SECONDS=str(DEMO_SECONDS))
    worker = stack.start_worker()
    stack.start_api()
    task = create_task(stack, prompt="Kill my process", model="demo")
    wait_until(lambda: started(stack, task["id"], progress), 30, f"progress {progress}")

    kill_children(worker)
    killed_at = time.monotonic()
    wait_until(
        lambda: (get_task(stack, task["id"]) or {}).get("status") == "COMPLETED",
        RECOVERY_SECONDS,
        "the task to complete on a new pool process",
    )

    assert time.monotonic() - killed_at < RECOVERY_SECONDS
    assert read_task(stack.database_url, task["id"]).attempts == 2
    assert completions(stack, task["id"]) == 1
    assert "its worker process died; it is sent to another" in worker.log()


def test_sweeps_go_on_after_every_child_of_the_worker_was_killed(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    worker = stack.start_worker()
    stack.start_api()
    kill_children(worker)
    wait_until(lambda: len(pool_pids(stack)) == 2, 30, "the pool to be replaced")

    # A PENDING task with no message, as a lost message or a crashed API leaves it.
    orphan = insert_pending_task(stack.database_url, "Send me again")
    wait_until(
        lambda: read_task(stack.database_url, str(orphan.id)).status.value == "COMPLETED",
        30,
        "the orphan to be sent again and completed",
    )
    assert completions(stack, str(orphan.id)) == 1


def test_a_task_committed_by_an_api_killed_before_its_send_starts_within_seconds(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    stack.start_worker()
    port = free_port()
    env = {**stack.env, "AITASKS_PORT": str(port)}
    log_path = stack.log_dir / f"crashing-api-{port}.log"
    with log_path.open("wb") as log:
        api = subprocess.Popen(
            [sys.executable, "-m", "tests.fixtures.crashing_api", "api"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    stack.api_url = f"http://127.0.0.1:{port}"
    wait_until(lambda: api_answers(stack.api_url), 60, "the API to answer /healthz")

    with pytest.raises(httpx.HTTPError):
        create_task(stack, prompt="Committed, never sent")
    assert api.wait(10) == -signal.SIGKILL
    crashed_at = time.monotonic()

    task_id = wait_until(lambda: only_task_id(stack), 10, "the committed task")
    wait_until(
        lambda: read_task(stack.database_url, task_id).status.value == "COMPLETED",
        30,
        "the task the API never sent to complete",
    )
    assert time.monotonic() - crashed_at < 30
    assert completions(stack, task_id) == 1


def test_a_task_without_a_message_is_sent_again_while_its_queue_is_busy(
    make_stack: Callable[..., Stack],
) -> None:
    # Two text tasks at a time, so that the others wait in the queue.
    stack = make_stack(
        AITASKS_DEMO_DURATION_SECONDS=str(BUSY_DEMO_SECONDS), AITASKS_TEXT_SLOTS_PER_PROCESS="2"
    )
    worker = stack.start_worker()
    stack.start_api()
    # After the reconciler's first look, which sends every PENDING task at start-up.
    wait_until(lambda: "the worker started" in worker.log(), 30, "the reconciler to start")
    busy = [create_task(stack, prompt=f"Busy #{number}")["id"] for number in range(BUSY_TASKS)]
    wait_until(lambda: started(stack, busy[1], 0.0), 30, "the first tasks to run")

    # Lost while the queue holds the other tasks' messages; HIGH, so once sent again it
    # runs next, ahead of them.
    orphan = insert_pending_task(
        stack.database_url, "Lost in a busy queue", priority=TaskPriority.HIGH
    )
    wait_until(
        lambda: read_task(stack.database_url, str(orphan.id)).status.value == "COMPLETED",
        60,
        "the lost task to be sent again and complete",
    )

    # It ran before the queue had emptied: sent again while the queue was busy, not
    # once it was empty (the old rule) nor after the 300 s requeue timer.
    orphan_started = read_task(stack.database_url, str(orphan.id)).started_at
    busy_started = [read_task(stack.database_url, task_id).started_at for task_id in busy]
    assert any(started is None or started > orphan_started for started in busy_started)
    assert completions(stack, str(orphan.id)) == 1
    # Only the lost task was sent again: the queued ones were seen waiting.
    assert sum(map(int, re.findall(r"re-sent (\d+) task", worker.log()))) == 1


async def _scan(redis_url: str, max_messages: int) -> tuple[Waiting, dict[str, uuid.UUID]]:
    """Two text tasks and one image task queued; two image tasks taken by a worker, one
    a moment ago and one a minute ago, as kombu records them. Then scan."""
    tasks = {
        name: Task(id=uuid.uuid4(), kind=kind, priority=TaskPriority.NORMAL)
        for name, kind in [
            ("text 1", "TEXT_GENERATION"),
            ("text 2", "TEXT_GENERATION"),
            ("image queued", "IMAGE_PROCESSING"),
            ("image just taken", "IMAGE_PROCESSING"),
            ("image taken long ago", "IMAGE_PROCESSING"),
        ]
    }
    redis = Redis.from_url(redis_url)
    try:
        for name in ("text 1", "text 2", "image queued"):
            message = task_message(tasks[name])
            await redis.lpush(message.key, message.payload)
        for name, age in (("image just taken", 0.0), ("image taken long ago", 60.0)):
            message = task_message(tasks[name])
            entry = f'[{message.payload}, "", "image_processing"]'
            await redis.hset(UNACKED_KEY, name, entry)
            await redis.zadd(UNACKED_INDEX_KEY, {name: time.time() - age})
        keys = [key for kind in KINDS for key in queue_keys(kind)]
        queued = dict(zip(keys, [await redis.llen(key) for key in keys], strict=True))
        waiting = await waiting_task_ids(
            redis, set(KINDS), queued, max_messages=max_messages, reserved_within=5.0
        )
    finally:
        await redis.aclose()
    return waiting, {name: task.id for name, task in tasks.items()}


def test_the_scan_finds_queued_and_just_taken_tasks(backing: Backing) -> None:
    waiting, ids = asyncio.run(_scan(backing.new_redis(), max_messages=10))

    assert waiting.kinds == set(KINDS)
    # Not the one a worker took a minute ago and still holds: that worker may be dead.
    assert waiting.task_ids == {
        ids["text 1"],
        ids["text 2"],
        ids["image queued"],
        ids["image just taken"],
    }


def test_the_scan_leaves_a_kind_with_more_queued_than_its_bound_to_the_timer(
    backing: Backing,
) -> None:
    waiting, ids = asyncio.run(_scan(backing.new_redis(), max_messages=1))

    # The text queue (2 messages) is over the bound: none of its tasks is sent again.
    assert waiting.kinds == {"IMAGE_PROCESSING", "DATA_ANALYSIS"}
    assert waiting.task_ids == {ids["image queued"], ids["image just taken"]}


def test_a_check_cut_short_by_postgresql_going_away_is_one_warning_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A PostgreSQL that is not there: what a check meets when the server shuts down.
    with pytest.raises(OSError) as raised:
        asyncio.run(asyncpg.connect(host="127.0.0.1", port=free_port(), timeout=5))
    with caplog.at_level(logging.WARNING, logger="tasks.worker.reconciler"):
        log_failed_check(raised.value)

    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.exc_info is None
    assert record.getMessage().startswith("reconciler: PostgreSQL went away during the check")


def test_a_check_that_failed_for_another_reason_is_logged_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    try:
        raise KeyError("a fault of ours")
    except KeyError as error:
        with caplog.at_level(logging.WARNING, logger="tasks.worker.reconciler"):
            log_failed_check(error)

    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None


def api_answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def only_task_id(stack: Stack) -> str | None:
    async def first() -> str | None:
        connection = await asyncpg.connect(stack.database_url)
        try:
            return await connection.fetchval("SELECT id::text FROM tasks")
        finally:
            await connection.close()

    return asyncio.run(first())
