"""How a worker writes a running task's output: in batches while the work waits, and with
the completion when the work ends before a batch went out. Runs `run_task` in this
process, on a worker runtime of its own, against the shared stack's database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

from persistence.models import TaskStatus
from persistence.settings import Settings
from tasks.celery_app import create_celery_app
from tasks.events import channel_of, decode
from tasks.providers.base import Chunk
from tasks.worker.execution import run_task
from tasks.worker.running import PENDING_BATCHES_MAX, Outcome, RunningTask
from tasks.worker.runtime import WorkerRuntime
from tests.fixtures.stack import Stack
from tests.fixtures.tasks import insert_pending_task, logged_events

FLUSH_CHARS = 20
# A published change reaches a subscriber on the same machine well within this.
MESSAGE_TIMEOUT_SECONDS = 5.0
BATCH = "x" * FLUSH_CHARS


@pytest.fixture
def runtime(stack: Stack) -> Iterator[WorkerRuntime]:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=stack.database_url,
        redis_url=stack.redis_url,
        stream_flush_chars=FLUSH_CHARS,
        stream_flush_seconds=3600,
    )
    runtime = WorkerRuntime(settings)
    yield runtime
    runtime.close()


def run(runtime: WorkerRuntime, stack: Stack, batches: int, pause: bool) -> list[str | None]:
    """Run a task whose work writes `batches` full batches, letting the loop run between
    them or not; the deltas of its changes after the claim."""

    async def work(running: RunningTask) -> Outcome | None:
        for _ in range(batches):
            await running.add(Chunk(BATCH))
            if pause:
                await asyncio.sleep(0.01)
        return None

    task = insert_pending_task(stack.database_url, "batches")
    app = create_celery_app(runtime.settings, stack.redis_url)
    try:
        runtime.run(run_task(runtime, task.id, app, work))
    finally:
        app.close()
    events = logged_events(stack.database_url, str(task.id))
    assert events[-1].status == TaskStatus.COMPLETED
    assert "".join(event.delta or "" for event in events) == BATCH * batches
    return [event.delta for event in events if event.sequence > 2]


def test_output_that_ends_before_a_write_went_out_comes_with_the_completion(
    runtime: WorkerRuntime, stack: Stack
) -> None:
    assert run(runtime, stack, batches=2, pause=False) == [BATCH * 2]


def test_output_is_written_in_batches_while_the_work_waits(
    runtime: WorkerRuntime, stack: Stack
) -> None:
    deltas = run(runtime, stack, batches=3, pause=True)

    assert deltas[:3] == [BATCH] * 3
    assert deltas[3:] == [""]


def test_output_that_never_lets_a_write_run_is_written_a_few_batches_at_a_time(
    runtime: WorkerRuntime, stack: Stack
) -> None:
    batches = PENDING_BATCHES_MAX * 2 + 1

    deltas = run(runtime, stack, batches=batches, pause=False)

    whole = BATCH * PENDING_BATCHES_MAX
    assert deltas == [whole, whole, BATCH]


def test_a_task_is_claimed_once(runtime: WorkerRuntime, stack: Stack) -> None:
    task = insert_pending_task(stack.database_url, "once")
    app = create_celery_app(runtime.settings, stack.redis_url)

    async def work(running: RunningTask) -> Outcome | None:
        await running.add(Chunk("done"))
        return None

    try:
        for _ in range(2):
            runtime.run(run_task(runtime, uuid.UUID(str(task.id)), app, work))
    finally:
        app.close()
    statuses = [event.status for event in logged_events(stack.database_url, str(task.id))]
    assert statuses == [TaskStatus.PENDING, TaskStatus.PROCESSING, TaskStatus.COMPLETED]


def test_every_change_of_a_run_is_published_once_and_in_order(
    runtime: WorkerRuntime, stack: Stack
) -> None:
    # Subscribers hear each change of a run once, in the order of its sequence.
    task = insert_pending_task(stack.database_url, "published in order")
    app = create_celery_app(runtime.settings, stack.redis_url)

    async def work(running: RunningTask) -> Outcome | None:
        for _ in range(3):
            await running.add(Chunk(BATCH))
            await asyncio.sleep(0.01)
        return None

    async def published_sequences(count: int) -> list[int]:
        pubsub = runtime.redis.pubsub()
        await pubsub.subscribe(channel_of(runtime.redis))
        try:
            await pubsub.get_message(timeout=MESSAGE_TIMEOUT_SECONDS)
            await run_task(runtime, task.id, app, work)
            sequences = []
            while len(sequences) < count:
                message = await pubsub.get_message(timeout=MESSAGE_TIMEOUT_SECONDS)
                assert message is not None, f"published so far: {sequences}"
                event = decode(message["data"].decode())
                if event.task_id == task.id:
                    sequences.append(event.sequence)
            return sequences
        finally:
            await pubsub.aclose()

    try:
        sequences = runtime.run(published_sequences(count=5))
    finally:
        app.close()
    logged = logged_events(stack.database_url, str(task.id))
    assert logged[-1].status == TaskStatus.COMPLETED
    assert sequences == [event.sequence for event in logged[1:]] == [2, 3, 4, 5, 6]
