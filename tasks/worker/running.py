"""A claimed task in a worker: its claim kept alive, its output written in batches, and
cancel requests heard within a second."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import asyncpg
from celery import Celery

from persistence import repository, task_writes
from persistence.models import STAGE_MAX_CHARS, FileRole, TaskChange, TaskFile
from tasks.cancel_signals import take_cancel_request
from tasks.logs import log_transition
from tasks.providers.base import Chunk, ProviderError
from tasks.services.dispatch import send_task
from tasks.worker.runtime import WorkerRuntime

logger = logging.getLogger(__name__)

T = TypeVar("T")

GENERATING_STAGE = "generating"
# The claim is renewed this many times per lease, so one slow or failed renewal still
# leaves time for the next before the lease runs out.
RENEWALS_PER_LEASE = 3
# Batches of output that may gather before they are written at once, even though the work
# has not let a background write run (a model whose whole answer is already received) or
# one is still under way: bounds a worker's memory, and such an answer still shows it is
# being written.
PENDING_BATCHES_MAX = 4
# A worker looks for a cancel request this often (one Redis LPOP per running task), so a
# cancelled task stops within about this long.
CANCEL_POLL_SECONDS = 0.25


class ClaimLost(Exception):
    """Another worker took the task over (this one stalled past its lease): stop quietly."""


class CancelRequested(Exception):
    """A caller cancelled the task while it ran."""


class WorkFailed(Exception):
    """The work cannot be done with this input (a corrupt image, a malformed CSV): the
    task ends FAILED with this message, and is not tried again."""


@dataclass(frozen=True)
class Outcome:
    """What a finished task leaves besides its text: structured output and files."""

    output: dict[str, Any] | None = None
    artifacts: tuple[TaskFile, ...] = ()


# PostgreSQL text cannot hold NUL; a model or a data file may still produce one.
NUL = "\x00"


def storable(text: str) -> str:
    return text.replace(NUL, "\ufffd") if NUL in text else text


async def in_thread(
    expected: type[Exception], function: Callable[..., T], *args: Any, **kwargs: Any
) -> T:
    """Run a library's blocking step (Pillow, pandas) in a thread, so the claim is
    renewed and a cancel heard meanwhile; its `expected` failures end the task with their
    own message.

    A thread cannot be stopped: on a cancel or a timeout the step is let finish before
    the task ends, so a worker process never runs a step of an ended task alongside its
    next task. Steps are bounded by the input limits, so this wait is too.
    """
    step = asyncio.get_running_loop().run_in_executor(None, partial(function, *args, **kwargs))
    try:
        return await asyncio.shield(step)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await step
        raise
    except expected as error:
        raise WorkFailed(str(error)) from None


class RunningTask:
    """One claimed task: writes carry the claim's attempt number, so a worker that lost
    the task changes nothing.

    Output is gathered and written in batches (see `stream_flush_chars` and
    `stream_flush_seconds`): each write appends the batch to the result, logs it as one
    event with the batch as its `delta`, and publishes that event.
    """

    def __init__(self, runtime: WorkerRuntime, change: TaskChange, celery_app: Celery) -> None:
        self.runtime = runtime
        self.celery_app = celery_app
        self.task = change.task
        self.attempt = change.task.attempts
        self.claim_lost = False
        self.cancel_requested = False
        self._done = asyncio.Event()
        self._pending: list[str] = []
        self._pending_chars = 0
        self._progress = 0.0
        self._stage = GENERATING_STAGE
        self._last_write = time.monotonic()
        # The work, while it runs; the write of a batch in the background, once due
        # (`_flush_call`) and under way (`_flusher`).
        self._body: asyncio.Task[Any] | None = None
        self._flush_call: asyncio.Handle | None = None
        self._flusher: asyncio.Task[None] | None = None

    async def _write(
        self, change: Callable[[asyncpg.Connection], Awaitable[TaskChange | None]]
    ) -> None:
        made = await self.runtime.write(change)
        if made is None:
            raise ClaimLost
        if made.task.status != self.task.status:
            log_transition(made.task)
        self.task = made.task
        self._last_write = time.monotonic()

    def _take_pending(self) -> str:
        text = "".join(self._pending)
        self._pending.clear()
        self._pending_chars = 0
        return text

    async def add(self, chunk: Chunk) -> None:
        """Take a chunk of output. A full or due batch is written in the background once
        the work next waits, so a stream that ends first (a fast model, an answer sent
        whole) has its text written with the completion: one change instead of two."""
        self._raise_flush_failure()
        text = storable(chunk.text)
        self._pending.append(text)
        self._pending_chars += len(text)
        if chunk.progress is not None and chunk.progress < 1:
            self._progress = min(max(chunk.progress, self._progress), 1.0)
        if self._batch_ready():
            self._flush_soon()
        if self._pending_chars >= PENDING_BATCHES_MAX * self.runtime.settings.stream_flush_chars:
            await self.flush()

    def _batch_ready(self) -> bool:
        settings = self.runtime.settings
        due = time.monotonic() - self._last_write >= settings.stream_flush_seconds
        changed = self._pending_chars > 0 or self._progress > self.task.progress
        return self._pending_chars >= settings.stream_flush_chars or (due and changed)

    def _flush_soon(self) -> None:
        if self._flusher is None and self._flush_call is None:
            self._flush_call = asyncio.get_running_loop().call_soon(self._start_flush)

    def _start_flush(self) -> None:
        """Called once the work has let the loop run: if it has ended meanwhile, its
        last write (the completion, or the failure) takes the batch."""
        self._flush_call = None
        if self._body is None or not self._body.done():
            self._flusher = asyncio.create_task(self._flush_in_background())

    async def _flush_in_background(self) -> None:
        while self._batch_ready():
            await self._write_pending()

    def _raise_flush_failure(self) -> None:
        """Raise what a finished background write raised (ClaimLost, a lost database)."""
        if self._flusher is not None and self._flusher.done():
            flusher, self._flusher = self._flusher, None
            flusher.result()

    async def _flushed(self) -> None:
        """Until no write is in the background, raising what it raised; one not yet
        started is dropped, and its text goes with the caller's write."""
        if self._flush_call is not None:
            self._flush_call.cancel()
            self._flush_call = None
        flusher = self._flusher
        if flusher is None:
            return
        try:
            # Shielded: a cancelled body must not cancel a write in the middle.
            await asyncio.shield(flusher)
        finally:
            if flusher.done():
                self._flusher = None

    async def settle(self) -> None:
        """Let a background write end before the task is left; its outcome no longer
        matters (the task ended, or another worker has it)."""
        with contextlib.suppress(Exception):
            await self._flushed()

    async def report(self, progress: float, stage: str) -> None:
        """Say how far the work is and what it does now (written at once)."""
        self._progress = min(max(progress, self._progress), 1.0)
        self._stage = storable(stage)[:STAGE_MAX_CHARS]
        await self.flush()

    async def input_files(self) -> list[TaskFile]:
        async with self.runtime.sessionmaker() as session:
            return await repository.get_files(session, self.task.id, FileRole.INPUT)

    async def flush(self) -> None:
        """Write the output gathered so far, now."""
        await self._flushed()
        await self._write_pending()

    async def _write_pending(self) -> None:
        delta = self._take_pending()
        await self._write(
            partial(
                task_writes.record_output,
                task_id=self.task.id,
                attempt=self.attempt,
                delta=delta or None,
                progress=self._progress,
                stage=self._stage,
                lease_seconds=self.runtime.settings.task_lease_seconds,
            )
        )

    async def complete(self, outcome: Outcome | None = None) -> None:
        await self._flushed()
        delta = self._take_pending()
        outcome = outcome or Outcome()
        await self._write(
            partial(
                task_writes.complete_task,
                task_id=self.task.id,
                attempt=self.attempt,
                delta=delta,
                output=outcome.output,
                artifacts=outcome.artifacts,
            )
        )

    async def fail(self, error: str) -> None:
        """End FAILED, keeping the output so far."""
        await self._flushed()
        delta = self._take_pending()
        await self._write(
            partial(
                task_writes.fail_task,
                task_id=self.task.id,
                attempt=self.attempt,
                error=error,
                delta=delta or None,
            )
        )

    async def finish_cancelled(self) -> None:
        await self._flushed()
        delta = self._take_pending()
        await self._write(
            partial(
                task_writes.finish_cancelled,
                task_id=self.task.id,
                attempt=self.attempt,
                delta=delta or None,
            )
        )

    def _tries_so_far(self) -> int:
        """This attempt and the ones just before it that failed for a passing reason."""
        tries = 1
        for entry in reversed(self.task.errors):
            if not entry.get("transient"):
                break
            tries += 1
        return tries

    def _backoff(self, tries: int) -> float:
        settings = self.runtime.settings
        ceiling = min(
            settings.retry_backoff_max_seconds, settings.retry_backoff_seconds * 2 ** (tries - 1)
        )
        # Jitter spreads out tasks that failed together (say, on one rate limit).
        return ceiling * random.uniform(0.5, 1.0)

    async def fail_or_retry(self, error: ProviderError) -> None:
        """Fail the task, or, for a passing failure with tries left, queue it again after
        a back-off."""
        await self._flushed()
        tries = self._tries_so_far()
        if not error.transient or tries >= self.runtime.settings.retry_attempts:
            await self.fail(str(error))
            return
        delay = self._backoff(tries)
        logger.info(
            "task %s: try %d failed (%s); again in %.1f s", self.task.id, tries, error, delay
        )
        await self._write(
            partial(
                task_writes.retry_later,
                task_id=self.task.id,
                attempt=self.attempt,
                error=str(error),
                delay_seconds=delay,
            )
        )
        try:
            send_task(self.celery_app, str(self.task.id), self.task.kind, self.task.priority, delay)
        except Exception as send_error:
            # Stored as PENDING: the sweeper sends it once it is overdue.
            logger.warning("task %s: could not queue its retry (%s)", self.task.id, send_error)

    async def run_while_held(self, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run `work`, renewing the claim and listening for a cancel request meanwhile.

        Stops at once if the claim is lost, so a task taken over by another worker is not
        streamed (and paid for) twice; raises CancelRequested if a caller cancelled it.
        """
        body = self._body = asyncio.create_task(work())
        watchers: list[asyncio.Task[None]] = []

        def watch() -> None:
            watchers.append(asyncio.create_task(self._keep_claim(body)))
            # Stopped by an event, never cancelled: it is often in the middle of a Redis
            # call.
            watchers.append(asyncio.create_task(self._listen_for_cancel(body)))

        # The watchers start one poll interval in, not at the start: a task that ends
        # sooner (the demo model's, a short answer) costs one timer instead of three
        # asyncio tasks and a Redis call, and a cancel is still heard within the interval.
        start = asyncio.get_running_loop().call_later(CANCEL_POLL_SECONDS, watch)
        try:
            return await body
        except asyncio.CancelledError:
            if self.claim_lost:
                raise ClaimLost from None
            if self.cancel_requested:
                raise CancelRequested from None
            raise
        finally:
            start.cancel()
            self._done.set()
            if watchers:
                keeper, listener = watchers
                keeper.cancel()
                await asyncio.gather(keeper, listener, return_exceptions=True)

    async def _listen_for_cancel(self, body: asyncio.Task[Any]) -> None:
        while not self._done.is_set():
            try:
                requested = await take_cancel_request(self.runtime.redis, self.task.id)
            except Exception as error:
                # The lease renewal also sees a cancel request, if more slowly.
                logger.warning("task %s: could not check for a cancel (%s)", self.task.id, error)
                requested = False
            if requested:
                self.cancel_requested = True
                body.cancel()
                return
            await self._ends_within(CANCEL_POLL_SECONDS)

    async def _ends_within(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._done.wait(), seconds)
        return self._done.is_set()

    async def _keep_claim(self, body: asyncio.Task[Any]) -> None:
        seconds = self.runtime.settings.task_lease_seconds
        while True:
            await asyncio.sleep(seconds / RENEWALS_PER_LEASE)
            try:
                async with self.runtime.pool.acquire() as connection:
                    lease = await task_writes.renew_lease(
                        connection, self.task.id, self.attempt, seconds
                    )
            except Exception as error:
                # The next renewal may succeed before the lease runs out.
                logger.warning("task %s: could not renew its lease (%s)", self.task.id, error)
                continue
            if not lease.held or lease.cancel_requested:
                # The row also records a cancel request, in case its signal was lost.
                self.claim_lost = not lease.held
                self.cancel_requested = lease.cancel_requested
                body.cancel()
                return
