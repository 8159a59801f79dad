"""A dead pool process, or a create whose message never left, does not strand a task.

These stacks keep the default lease (60 s) and requeue delay (300 s): the tasks must end
well before either could have helped.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import asyncpg
import httpx
import psutil
import pytest

from persistence.settings import Settings
from tasks.celery_app import create_celery_app
from tests.fixtures.graphql import create_task, get_task
from tests.fixtures.stack import Process, Stack, free_port, wait_until
from tests.fixtures.tasks import insert_pending_task, logged_events, read_task

# Seconds the demo model takes per task here: long enough to kill it at several points.
DEMO_SECONDS = 4.0
# The bound the issue sets for a task to end after its worker died, plus the task itself.
RECOVERY_SECONDS = 30.0 + DEMO_SECONDS


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
