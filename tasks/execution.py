"""The text-generation task body: claim, stream from the model, record, finish."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from functools import partial

from celery import Celery

from persistence import repository
from persistence.models import TaskChange
from tasks.providers.base import ProviderError
from tasks.running import CancelRequested, ClaimLost, RunningTask
from tasks.runtime import WorkerRuntime

logger = logging.getLogger(__name__)

UNEXPECTED_FAILURE = "The task failed unexpectedly in the worker; the worker log has details."


async def _claim(runtime: WorkerRuntime, task_id: uuid.UUID) -> TaskChange | None:
    return await runtime.write(
        partial(
            repository.claim_task,
            task_id=task_id,
            lease_seconds=runtime.settings.task_lease_seconds,
            max_attempts=runtime.settings.max_attempts,
        )
    )


async def _generate(running: RunningTask) -> None:
    task = running.task
    provider = running.runtime.provider_for(task.model)
    async for chunk in provider.stream(task.prompt, task.model):
        await running.add(chunk)


async def _run_claimed(running: RunningTask) -> None:
    limit = running.task.timeout_seconds
    try:
        async with asyncio.timeout(limit) as deadline:
            await running.run_while_held(partial(_generate, running))
    except ProviderError as error:
        await running.fail_or_retry(error)
    except CancelRequested:
        await running.finish_cancelled()
    except TimeoutError:
        if not deadline.expired():
            raise
        await running.fail(f"The task timed out: it ran longer than its limit of {limit:g} s.")
    else:
        await running.complete()


async def run_text_generation(
    runtime: WorkerRuntime, task_id: uuid.UUID, celery_app: Celery
) -> None:
    """Run one text-generation task until it ends or waits for a retry. Safe to deliver
    twice: a task that is finished, not yet due, or running in a live worker is left
    alone."""
    claimed = await _claim(runtime, task_id)
    if claimed is None:
        logger.info("task %s: nothing to do (finished, running elsewhere, or unknown)", task_id)
        return
    running = RunningTask(runtime, claimed, celery_app)
    try:
        await _run_claimed(running)
    except ClaimLost:
        logger.warning("task %s was taken over by another worker; leaving it", task_id)
    except Exception:
        logger.exception("task %s failed unexpectedly", task_id)
        with contextlib.suppress(ClaimLost):
            await running.fail(UNEXPECTED_FAILURE)
