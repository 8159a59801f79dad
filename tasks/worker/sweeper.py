"""Recovering lost work: stale PENDING tasks and tasks of dead workers are sent again;
a task that has killed its worker too often is ended FAILED. Also keeps the change log
to its retention bound."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from functools import partial

from celery import Celery

from persistence import repository
from persistence.models import Task
from persistence.unit_of_work import unit_of_work
from tasks.events import publish
from tasks.services.dispatch import send_task
from tasks.worker.runtime import WorkerRuntime

logger = logging.getLogger(__name__)

# Tasks handled per sweep; the next sweep takes the rest.
SWEEP_BATCH = 500
# Logged changes dropped per sweep, so one sweep never holds long locks.
PRUNE_BATCH = 10_000


def too_many_attempts(max_attempts: int) -> str:
    return (
        f"The task's worker was lost on each of {max_attempts} attempts (a crash, running "
        "out of memory, or being killed); it will not be tried again."
    )


async def _take_stale(
    runtime: WorkerRuntime,
    pending_for_seconds: float | None = None,
    kinds: Collection[str] | None = None,
    excluding: Collection[uuid.UUID] = (),
) -> list[Task]:
    settings = runtime.settings
    if pending_for_seconds is None:
        pending_for_seconds = settings.pending_requeue_seconds
    async with unit_of_work(runtime.sessionmaker) as uow:
        failed = await repository.fail_abandoned_tasks(
            uow.session,
            max_attempts=settings.max_attempts,
            error=too_many_attempts(settings.max_attempts),
            limit=SWEEP_BATCH,
        )
        cancelled = await repository.cancel_abandoned_tasks(uow.session, limit=SWEEP_BATCH)
        for change in failed + cancelled:
            uow.after_commit(partial(publish, runtime.redis, change.event))
        stale = await repository.take_stale_tasks(
            uow.session,
            pending_for_seconds=pending_for_seconds,
            limit=SWEEP_BATCH,
            kinds=kinds,
            excluding=excluding,
        )
    if failed:
        logger.warning("%d task(s) failed after losing their worker too often", len(failed))
    return stale


async def _mark_not_enqueued(runtime: WorkerRuntime, unsent: list[Task]) -> None:
    async with runtime.sessionmaker.begin() as session:
        await repository.mark_not_enqueued(session, [task.id for task in unsent])


def _send_all(
    celery_app: Celery, tasks: list[Task], countdown: Callable[[Task], float | None]
) -> list[Task]:
    """Send each task's message; return those that could not be sent."""
    unsent = []
    for task in tasks:
        try:
            send_task(celery_app, str(task.id), task.kind, task.priority, countdown(task))
        except Exception as error:
            logger.warning("could not re-send task %s (%s)", task.id, error)
            unsent.append(task)
    return unsent


async def _prune_log(runtime: WorkerRuntime) -> int:
    async with runtime.sessionmaker.begin() as session:
        cutoff = await repository.database_now(session) - timedelta(
            hours=runtime.settings.event_retention_hours
        )
        return await repository.prune_events(session, finished_before=cutoff, limit=PRUNE_BATCH)


def _send_or_put_back(
    runtime: WorkerRuntime,
    celery_app: Celery,
    tasks: list[Task],
    countdown: Callable[[Task], float | None] = lambda task: None,
) -> int:
    """Send the tasks taken from the database; mark those that could not be sent as not
    enqueued, so the next sweep tries them again. Return how many went out."""
    unsent = _send_all(celery_app, tasks, countdown)
    if unsent:
        runtime.run(_mark_not_enqueued(runtime, unsent))
    return len(tasks) - len(unsent)


def sweep_stale_tasks(runtime: WorkerRuntime, celery_app: Celery) -> int:
    """Send again every task whose message may have been lost; return how many went out.

    A task sent twice is harmless: the second delivery finds it taken and does nothing.
    """
    runtime.run(_prune_log(runtime))
    hand_over_due_tasks(runtime, celery_app)
    return resend_stale_tasks(runtime, celery_app)


def resend_stale_tasks(
    runtime: WorkerRuntime,
    celery_app: Celery,
    pending_for_seconds: float | None = None,
    kinds: Collection[str] | None = None,
    excluding: Collection[uuid.UUID] = (),
) -> int:
    """Send again the tasks of dead workers, and the PENDING tasks (of `kinds`, if given)
    not sent for `pending_for_seconds` (AITASKS_PENDING_REQUEUE_SECONDS if not given),
    leaving out `excluding` (tasks whose message is known to wait); return how many went
    out."""
    stale = runtime.run(_take_stale(runtime, pending_for_seconds, kinds, excluding))
    sent = _send_or_put_back(runtime, celery_app, stale)
    if sent:
        logger.warning("re-sent %d task(s) whose message or worker was lost", sent)
    return sent


async def _take_due(runtime: WorkerRuntime) -> list[Task]:
    async with runtime.sessionmaker.begin() as session:
        return await repository.take_due_tasks(
            session, within_seconds=runtime.settings.handoff_window_seconds, limit=SWEEP_BATCH
        )


def _countdown(task: Task) -> float | None:
    if task.scheduled_for is None:
        return None
    return max(0.0, (task.scheduled_for - datetime.now(UTC)).total_seconds())


def hand_over_due_tasks(runtime: WorkerRuntime, celery_app: Celery) -> int:
    """Send the delayed tasks that start within the hand-over window, each to run at its
    time; return how many went out.

    Until then they wait in PostgreSQL, not in the broker: a message held by the broker
    past its visibility timeout would be handed out twice.
    """
    return _send_or_put_back(
        runtime, celery_app, runtime.run(_take_due(runtime)), countdown=_countdown
    )
