"""How a worker runs any task: claim it, do its kind's work while holding the claim,
and end it (COMPLETED, FAILED, CANCELLED, or back to PENDING for a retry)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

import orjson
from celery import Celery

from persistence import task_writes
from persistence.models import TaskChange
from persistence.outages import POSTGRESQL, unavailable_dependency
from persistence.settings import Settings
from tasks.logs import log_transition
from tasks.providers.base import ProviderError
from tasks.services.dispatch import send_task
from tasks.worker.metrics import record_attempt
from tasks.worker.running import (
    CancelRequested,
    ClaimLost,
    Outcome,
    RunningTask,
    WorkFailed,
)
from tasks.worker.runtime import WorkerRuntime

logger = logging.getLogger(__name__)

# A worker whose PostgreSQL went away tries this often to hand its task back.
HAND_BACK_RETRY_SECONDS = 0.5
UNEXPECTED_FAILURE = "The task failed unexpectedly in the worker; the worker log has details."

# A kind's work: given the claimed task, do it, writing output and progress on the way.
Work = Callable[[RunningTask], Coroutine[Any, Any, Outcome | None]]


async def _claim(runtime: WorkerRuntime, task_id: uuid.UUID) -> TaskChange | None:
    return await runtime.write(
        partial(
            task_writes.claim_task,
            task_id=task_id,
            lease_seconds=runtime.settings.task_lease_seconds,
            max_attempts=runtime.settings.max_attempts,
        )
    )


async def _run_claimed(running: RunningTask, work: Work) -> None:
    limit = running.task.timeout_seconds
    try:
        async with asyncio.timeout(limit) as deadline:
            outcome = await running.run_while_held(partial(work, running))
    except ProviderError as error:
        await running.fail_or_retry(error)
    except WorkFailed as error:
        await running.fail(str(error))
    except CancelRequested:
        await running.finish_cancelled()
    except TimeoutError:
        if not deadline.expired():
            raise
        await running.fail(f"The task timed out: it ran longer than its limit of {limit:g} s.")
    else:
        problem = _oversize(outcome, running.runtime.settings)
        if problem:
            await running.fail(problem)
        else:
            await running.complete(outcome)


def _oversize(outcome: Outcome | None, settings: Settings) -> str | None:
    """Why the outcome is too large to store, if it is."""
    if outcome is None:
        return None
    if outcome.output is not None:
        size = len(orjson.dumps(outcome.output))
        if size > settings.output_max_bytes:
            return (
                f"The task's output is {size:,} bytes of JSON; the limit is "
                f"{settings.output_max_bytes:,} (AITASKS_OUTPUT_MAX_BYTES)."
            )
    for artifact in outcome.artifacts:
        if artifact.size > settings.artifact_max_bytes:
            return (
                f"The artifact {artifact.name!r} is {artifact.size:,} bytes; the limit is "
                f"{settings.artifact_max_bytes:,} (AITASKS_ARTIFACT_MAX_BYTES)."
            )
    return None


async def _release(running: RunningTask) -> bool:
    async with running.runtime.pool.acquire() as connection:
        return await task_writes.release_lease(connection, running.task.id, running.attempt)


async def hand_back(running: RunningTask, error: Exception) -> None:
    """PostgreSQL was lost in the middle of the task: once it answers again, end this
    worker's lease and send the task again, so it starts over within seconds of the
    server's return instead of when the lease runs out. Whether the last write landed
    cannot be known, so the task is not carried on here: the next claim starts it
    afresh (its result reset), and a task that did complete is left as it is."""
    task_id = running.task.id
    logger.warning("task %s: PostgreSQL was lost (%s); handing the task back", task_id, error)
    deadline = time.monotonic() + running.runtime.settings.task_lease_seconds
    while time.monotonic() < deadline:
        try:
            released = await _release(running)
        except Exception as retry_error:
            if unavailable_dependency(retry_error) != POSTGRESQL:
                raise
            await asyncio.sleep(HAND_BACK_RETRY_SECONDS)
            continue
        if released:
            task = running.task
            with contextlib.suppress(Exception):
                send_task(running.celery_app, str(task_id), task.kind, task.priority)
        return
    # The lease has run out by itself: the sweep sends the task once PostgreSQL is back.


async def run_task(
    runtime: WorkerRuntime, task_id: uuid.UUID, celery_app: Celery, work: Work
) -> None:
    """Run one task until it ends or waits for a retry. Safe to deliver twice: a task
    that is finished, not yet due, or running in a live worker is left alone."""
    claimed = await _claim(runtime, task_id)
    if claimed is None:
        logger.info("task %s: nothing to do (finished, running elsewhere, or unknown)", task_id)
        return
    log_transition(claimed.task)
    running = RunningTask(runtime, claimed, celery_app)
    started = time.monotonic()
    try:
        await _run_claimed(running, work)
    except ClaimLost:
        logger.warning("task %s was taken over by another worker; leaving it", task_id)
    except Exception as error:
        if unavailable_dependency(error) == POSTGRESQL:
            await hand_back(running, error)
            return
        logger.exception("task %s failed unexpectedly", task_id)
        with contextlib.suppress(ClaimLost):
            await running.fail(UNEXPECTED_FAILURE)
    finally:
        await running.settle()
        record_attempt(running.task, time.monotonic() - started)
