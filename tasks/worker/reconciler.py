"""Keeping PostgreSQL and the broker in step, from a sweeping worker's main process.

PostgreSQL is the truth about which tasks must run; a Redis message only says "run this
now". When the two disagree (Redis came back empty, the API died between its commit and
its send, a worker process died with its task) the task would wait for a timer. This
module closes that gap within seconds:

- a thread in the worker's main process looks at both servers every
  `reconcile_check_seconds`: when Redis has a new `run_id` (it restarted) or either
  server has come back, it sends every PENDING task again at once; when PostgreSQL has
  PENDING tasks that have waited `pending_orphan_seconds`, or tasks of dead workers, it
  reads which tasks the queues and the workers' reserved messages hold
  (`waiting_task_ids`) and sends again those in neither, busy queues or not; and every
  `sweep_interval_seconds` it runs the full sweep (tasks/worker/sweeper.py).
- when a pool process dies under a task (SIGKILL, the OOM killer), the main process ends
  that task's lease before Celery puts its message back, so the redelivery claims it.

It runs in the main process, not in a child: Celery's embedded beat is a child process
that nothing restarts, so a kill that took it down (as one aimed at the pool processes
does) stopped every sweep for good and stranded the tasks of dead workers.

A task sent twice is harmless: the second delivery finds it taken and does nothing.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
from billiard.einfo import ExceptionWithTraceback
from billiard.exceptions import WorkerLostError
from celery import Celery, bootsteps
from celery.worker.request import Request
from redis.asyncio import Redis
from redis.exceptions import RedisError

from persistence import repository, task_writes
from persistence.database import create_engine
from persistence.outages import unavailable_dependency
from persistence.settings import Settings, get_settings
from tasks.celery_app import PRIORITY_STEPS
from tasks.kinds import KINDS
from tasks.services.dispatch import PRIORITY_SEPARATOR
from tasks.worker.runtime import WorkerRuntime
from tasks.worker.sweeper import resend_stale_tasks, sweep_stale_tasks

logger = logging.getLogger(__name__)

# The main process waits this long at most for PostgreSQL when a pool process died; if
# it cannot reach it, the lease runs out by itself and the sweep takes the task up.
RELEASE_TIMEOUT_SECONDS = 2.0
# How long stopping the worker waits for a reconcile under way.
STOP_TIMEOUT_SECONDS = 10.0
# kombu's Redis transport keeps each message a worker has taken and not yet acknowledged
# in this hash (delivery tag -> [message, exchange, routing key]), and when it was taken
# in this sorted set (delivery tag -> Unix time).
UNACKED_KEY = "unacked"
UNACKED_INDEX_KEY = "unacked_index"


def queue_keys(kind: str) -> list[str]:
    """The Redis lists that hold a kind's messages, one per priority step."""
    queue = KINDS[kind].queue
    return [f"{queue}{PRIORITY_SEPARATOR}{step}" if step else queue for step in PRIORITY_STEPS]


def queued_of(queued: Mapping[str, int], kind: str) -> int:
    """How many of a kind's messages `queued` (messages per queue list) counts."""
    return sum(queued.get(key, 0) for key in queue_keys(kind))


@dataclass(frozen=True)
class Observation:
    """What one look at the servers saw."""

    redis_run_id: str | None  # None: Redis did not answer
    # How many messages each queue list held (see `queue_keys`).
    queued: Mapping[str, int] = field(default_factory=dict)
    database_up: bool = False

    @property
    def empty_kinds(self) -> frozenset[str]:
        return frozenset(kind for kind in KINDS if queued_of(self.queued, kind) == 0)


async def _look_at_redis(runtime: WorkerRuntime) -> tuple[str | None, dict[str, int]]:
    keys = [key for kind in KINDS for key in queue_keys(kind)]
    try:
        info = await runtime.redis.info("server")
        async with runtime.redis.pipeline(transaction=False) as pipeline:
            for key in keys:
                pipeline.llen(key)
            lengths = await pipeline.execute()
    except (RedisError, OSError) as error:
        logger.warning("reconciler: Redis does not answer (%s)", error)
        return None, {}
    return str(info.get("run_id", "")), dict(zip(keys, lengths, strict=True))


def message_task_id(raw: bytes | str) -> uuid.UUID | None:
    """The task a broker message runs (its first argument), from a queue's entry or an
    unacked one; None for anything else."""
    try:
        message = orjson.loads(raw)
        if isinstance(message, list):  # an unacked entry: [message, exchange, routing key]
            message = message[0]
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = orjson.loads(body)[0]
        return uuid.UUID(str(args[0]))
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None


@dataclass(frozen=True)
class Waiting:
    """What the broker holds for the kinds looked at."""

    # The kinds whose queues were read whole (a kind with more queued than the scan's
    # bound is not).
    kinds: frozenset[str]
    # The tasks with a message in those queues or recently taken by a worker.
    task_ids: frozenset[uuid.UUID]


async def waiting_task_ids(
    redis: Redis,
    kinds: Collection[str],
    queued: Mapping[str, int],
    *,
    max_messages: int,
    reserved_within: float,
) -> Waiting:
    """Read, in one MULTI, the queued messages of `kinds` (as many as `queued` counted
    in each list, no more than `max_messages` in all) and the workers' messages taken
    within `reserved_within` seconds; then those messages themselves.

    Only the oldest messages, those counted, are read (kombu pushes on the left and
    takes from the right): one pushed since then is for a task that was just sent, not
    one that waited. A message taken longer ago and not acknowledged is of a task that
    is running (not PENDING), due to run later, or held by a worker that died, whose
    message Redis would hand out only after the visibility timeout.
    """
    budget = max_messages
    reads: list[tuple[str, int]] = []
    scanned = set()
    # The least busy first, so that one long queue does not use up the bound.
    for kind in sorted(kinds, key=lambda kind: queued_of(queued, kind)):
        counts = [(key, queued.get(key, 0)) for key in queue_keys(kind)]
        total = sum(count for _, count in counts)
        if total > budget:
            continue
        budget -= total
        scanned.add(kind)
        reads += [(key, count) for key, count in counts if count]
    async with redis.pipeline(transaction=True) as pipeline:
        for key, count in reads:
            pipeline.lrange(key, -count, -1)
        pipeline.zrangebyscore(UNACKED_INDEX_KEY, time.time() - reserved_within, "+inf")
        *lists, tags = await pipeline.execute()
    messages = [message for found in lists for message in found]
    if tags:
        messages += [found for found in await redis.hmget(UNACKED_KEY, tags) if found]
    found = (message_task_id(message) for message in messages)
    return Waiting(frozenset(scanned), frozenset(task_id for task_id in found if task_id))


async def _database_answers(runtime: WorkerRuntime) -> bool:
    try:
        async with runtime.sessionmaker() as session:
            await repository.database_now(session)
    except Exception as error:
        logger.warning("reconciler: PostgreSQL does not answer (%s)", error)
        return False
    return True


async def observe(runtime: WorkerRuntime) -> Observation:
    (run_id, queued), database_up = await asyncio.gather(
        _look_at_redis(runtime), _database_answers(runtime)
    )
    return Observation(run_id, queued, database_up)


async def _stale_kinds(runtime: WorkerRuntime) -> set[str]:
    async with runtime.sessionmaker() as session:
        return await repository.kinds_with_stale_tasks(
            session, KINDS, pending_for_seconds=runtime.settings.pending_orphan_seconds
        )


@dataclass
class Reconciler:
    """Decides, from one observation to the next, what to send again."""

    settings: Settings
    celery_app: Celery
    _last: Observation | None = None
    _next_sweep: float = field(default=0.0)

    def news(self, seen: Observation) -> str | None:
        """Why everything PENDING should be sent again now, if it should."""
        last = self._last
        if last is None:
            return "the worker started"
        if last.redis_run_id is None:
            return "Redis is back"
        if seen.redis_run_id != last.redis_run_id:
            return "Redis restarted (a new run_id): its queues may have lost messages"
        if not last.database_up:
            return "PostgreSQL is back"
        return None

    def tick(self, runtime: WorkerRuntime) -> None:
        seen = runtime.run(observe(runtime))
        reason = self.news(seen)
        self._last = seen
        if seen.redis_run_id is None or not seen.database_up:
            # Nothing can be sent or taken; the first look after the outage reconciles.
            return
        if reason:
            logger.warning("reconciling at once: %s", reason)
            resend_stale_tasks(runtime, self.celery_app, pending_for_seconds=0)
        else:
            self.send_orphans(runtime, seen)
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + self.settings.sweep_interval_seconds
            sweep_stale_tasks(runtime, self.celery_app)
        elif len(seen.empty_kinds) < len(KINDS):
            # Tasks of dead workers, of the kinds whose queues are busy (those
            # `send_orphans` did not read: over its bound, or the scan turned off).
            resend_stale_tasks(runtime, self.celery_app)

    def send_orphans(self, runtime: WorkerRuntime, seen: Observation) -> None:
        """Send again the PENDING tasks not sent for `pending_orphan_seconds`, and those
        of dead workers, whose message is in no queue and taken by no worker: lost with
        Redis, never sent by an API that died, held by a worker process that was killed,
        or lost in a busy queue (which the requeue timer would find only after
        `pending_requeue_seconds`)."""
        settings = self.settings
        kinds: Collection[str] = seen.empty_kinds
        waiting: Collection[uuid.UUID] = ()
        if settings.reconcile_scan_max_messages:
            stale = runtime.run(_stale_kinds(runtime))
            if not stale:
                return
            scan = runtime.run(
                waiting_task_ids(
                    runtime.redis,
                    stale,
                    seen.queued,
                    max_messages=settings.reconcile_scan_max_messages,
                    reserved_within=settings.pending_orphan_seconds,
                )
            )
            kinds, waiting = scan.kinds, scan.task_ids
        if kinds:
            resend_stale_tasks(
                runtime,
                self.celery_app,
                pending_for_seconds=settings.pending_orphan_seconds,
                kinds=kinds,
                excluding=waiting,
            )


def log_failed_check(error: Exception) -> None:
    """A server that went away mid-check is an outage the next look handles: one line,
    not a traceback. Anything else is a fault of ours, logged in full."""
    server = unavailable_dependency(error)
    if server:
        logger.warning(
            "reconciler: %s went away during the check (%s); trying again", server, error
        )
    else:
        logger.error("reconciler: the check failed; trying again", exc_info=error)


class ReconcilerStep(bootsteps.StartStopStep):
    """The reconciler's thread in a worker's main process (`aitasks worker --beat`)."""

    # Started once the pool has forked its processes: a fork while this thread is inside
    # an import (its first runtime loads SQLAlchemy's asyncpg dialect, uvloop) hands the
    # child that module's lock, held by a thread the child does not have, and the child's
    # first task, which imports the same module, waits for it for good.
    requires = ("celery.worker.components:Pool",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, parent: Any) -> None:
        reconciler = Reconciler(get_settings(), parent.app)
        self._thread = threading.Thread(
            target=self._serve, args=(reconciler,), name="aitasks-reconciler", daemon=True
        )
        self._thread.start()

    def stop(self, parent: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_SECONDS)

    def _serve(self, reconciler: Reconciler) -> None:
        # Nothing may end this thread but a stop: a worker whose reconciler died would
        # strand tasks as silently as the lost beat process did.
        runtime: WorkerRuntime | None = None
        try:
            while True:
                try:
                    runtime = runtime or WorkerRuntime(reconciler.settings)
                    reconciler.tick(runtime)
                except Exception as error:
                    log_failed_check(error)
                if self._stop.wait(reconciler.settings.reconcile_check_seconds):
                    return
        finally:
            if runtime is not None:
                with contextlib.suppress(Exception):
                    runtime.close()


async def _release(settings: Settings, task_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    database_url, _ = settings.require_services()
    engine = create_engine(database_url, "aitasks-worker-main", pooled=False)
    _, arguments = engine.dialect.create_connect_args(engine.url)
    connection = await asyncpg.connect(**arguments, timeout=RELEASE_TIMEOUT_SECONDS)
    try:
        return [
            task_id for task_id in task_ids if await task_writes.release_lease(connection, task_id)
        ]
    finally:
        await connection.close()
        await engine.dispose()


def release_lost_tasks(settings: Settings, task_ids: list[uuid.UUID]) -> None:
    """End the leases of the tasks a dead worker process held (one connection for all), so
    they are claimed again at once."""
    if not task_ids:
        return
    try:
        released = asyncio.run(
            asyncio.wait_for(_release(settings, task_ids), RELEASE_TIMEOUT_SECONDS * 2)
        )
    except Exception as error:
        for task_id in task_ids:
            logger.warning(
                "task %s: its worker process died and its lease could not be ended (%s); "
                "it is taken up when the lease runs out",
                task_id,
                error,
            )
        return
    for task_id in released:
        logger.warning("task %s: its worker process died; it is sent to another", task_id)


class LostWorkerRequest(Request):  # type: ignore[misc]
    """A task request that, when its pool process dies, frees the task before Celery
    requeues the message (task_reject_on_worker_lost), so the redelivery can claim it."""

    def on_failure(
        self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False
    ) -> None:
        error = exc_info.exception
        if isinstance(error, ExceptionWithTraceback):
            error = error.exc
        if isinstance(error, WorkerLostError) and self.args:
            with contextlib.suppress(ValueError):
                release_lost_tasks(get_settings(), [uuid.UUID(str(self.args[0]))])
        super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)
