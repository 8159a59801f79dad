"""The text-generation task body: claim, stream from the model, record, finish."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from persistence import repository
from persistence.models import TaskChange
from tasks.providers.base import Chunk, ProviderError
from tasks.runtime import WorkerRuntime

logger = logging.getLogger(__name__)

GENERATING_STAGE = "generating"
UNEXPECTED_FAILURE = "The task failed unexpectedly in the worker; the worker log has details."
# The claim is renewed this many times per lease, so one slow or failed renewal still
# leaves time for the next before the lease runs out.
RENEWALS_PER_LEASE = 3


class ClaimLost(Exception):
    """Another worker took the task over (this one stalled past its lease): stop quietly."""


class RunningTask:
    """One claimed task: writes carry the claim's attempt number, so a worker that lost
    the task changes nothing.

    Output is gathered and written in batches (see `stream_flush_chars` and
    `stream_flush_seconds`): each write appends the batch to the result, logs it as one
    event with the batch as its `delta`, and publishes that event.
    """

    def __init__(self, runtime: WorkerRuntime, change: TaskChange) -> None:
        self.runtime = runtime
        self.task = change.task
        self.attempt = change.task.attempts
        self.claim_lost = False
        self._pending: list[str] = []
        self._pending_chars = 0
        self._progress = 0.0
        self._last_write = time.monotonic()

    async def _write(self, change: Callable[[AsyncSession], Awaitable[TaskChange | None]]) -> None:
        made = await self.runtime.write(change)
        if made is None:
            raise ClaimLost
        self.task = made.task
        self._last_write = time.monotonic()

    def _take_pending(self) -> str:
        text = "".join(self._pending)
        self._pending.clear()
        self._pending_chars = 0
        return text

    async def add(self, chunk: Chunk) -> None:
        """Take a chunk of output; write when a batch is full or due."""
        self._pending.append(chunk.text)
        self._pending_chars += len(chunk.text)
        if chunk.progress is not None and chunk.progress < 1:
            self._progress = min(max(chunk.progress, self._progress), 1.0)
        settings = self.runtime.settings
        due = time.monotonic() - self._last_write >= settings.stream_flush_seconds
        changed = self._pending_chars > 0 or self._progress > self.task.progress
        if self._pending_chars >= settings.stream_flush_chars or (due and changed):
            await self.flush()

    async def flush(self) -> None:
        delta = self._take_pending()
        await self._write(
            partial(
                repository.record_output,
                task_id=self.task.id,
                attempt=self.attempt,
                delta=delta or None,
                progress=self._progress,
                stage=GENERATING_STAGE,
                lease_seconds=self.runtime.settings.task_lease_seconds,
            )
        )

    async def complete(self) -> None:
        delta = self._take_pending()
        await self._write(
            partial(
                repository.complete_task, task_id=self.task.id, attempt=self.attempt, delta=delta
            )
        )

    async def fail(self, error: str) -> None:
        """End FAILED, keeping the output so far."""
        delta = self._take_pending()
        await self._write(
            partial(
                repository.fail_task,
                task_id=self.task.id,
                attempt=self.attempt,
                error=error,
                delta=delta or None,
            )
        )

    async def generate(self) -> None:
        provider = self.runtime.provider_for(self.task.model)
        async for chunk in provider.stream(self.task.prompt, self.task.model):
            await self.add(chunk)

    async def generate_while_held(self) -> None:
        """Generate, renewing the claim meanwhile; stop at once if the claim is lost, so
        a task taken over by another worker is not streamed (and paid for) twice."""
        body = asyncio.create_task(self.generate())
        keeper = asyncio.create_task(self._keep_claim(body))
        try:
            return await body
        except asyncio.CancelledError:
            if self.claim_lost:
                raise ClaimLost from None
            raise
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)

    async def _keep_claim(self, body: asyncio.Task[None]) -> None:
        seconds = self.runtime.settings.task_lease_seconds
        while True:
            await asyncio.sleep(seconds / RENEWALS_PER_LEASE)
            try:
                async with self.runtime.sessionmaker.begin() as session:
                    held = await repository.renew_lease(
                        session, self.task.id, self.attempt, seconds
                    )
            except Exception as error:
                # The next renewal may succeed before the lease runs out.
                logger.warning("task %s: could not renew its lease (%s)", self.task.id, error)
                continue
            if not held:
                self.claim_lost = True
                body.cancel()
                return


async def _claim(runtime: WorkerRuntime, task_id: uuid.UUID) -> TaskChange | None:
    return await runtime.write(
        partial(
            repository.claim_task,
            task_id=task_id,
            lease_seconds=runtime.settings.task_lease_seconds,
            max_attempts=runtime.settings.max_attempts,
        )
    )


async def _run_claimed(running: RunningTask) -> None:
    limit = running.runtime.settings.task_time_limit_seconds
    try:
        async with asyncio.timeout(limit) as deadline:
            await running.generate_while_held()
    except ProviderError as error:
        await running.fail(str(error))
    except TimeoutError:
        if not deadline.expired():
            raise
        await running.fail(f"The task ran longer than its limit of {limit:g} seconds.")
    else:
        await running.complete()


async def run_text_generation(runtime: WorkerRuntime, task_id: uuid.UUID) -> None:
    """Run one text-generation task to COMPLETED or FAILED. Safe to deliver twice: a task
    that is finished, or running in a live worker, is left alone."""
    claimed = await _claim(runtime, task_id)
    if claimed is None:
        logger.info("task %s: nothing to do (finished, running elsewhere, or unknown)", task_id)
        return
    running = RunningTask(runtime, claimed)
    try:
        await _run_claimed(running)
    except ClaimLost:
        logger.warning("task %s was taken over by another worker; leaving it", task_id)
    except Exception:
        logger.exception("task %s failed unexpectedly", task_id)
        with contextlib.suppress(ClaimLost):
            await running.fail(UNEXPECTED_FAILURE)
