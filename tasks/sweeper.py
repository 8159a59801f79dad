"""Recovering lost work: stale PENDING tasks and tasks of dead workers are sent again;
a task that has killed its worker too often is ended FAILED. Also keeps the change log
to its retention bound."""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import partial

from celery import Celery

from persistence import repository
from persistence.events import publish
from persistence.models import Task
from persistence.unit_of_work import unit_of_work
from tasks.dispatch import send_task
from tasks.runtime import WorkerRuntime

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


async def _take_stale(runtime: WorkerRuntime) -> list[Task]:
    settings = runtime.settings
    async with unit_of_work(runtime.sessionmaker) as uow:
        failed = await repository.fail_abandoned_tasks(
            uow.session,
            max_attempts=settings.max_attempts,
            error=too_many_attempts(settings.max_attempts),
            limit=SWEEP_BATCH,
        )
        for change in failed:
            uow.after_commit(partial(publish, runtime.redis, change.event))
        stale = await repository.take_stale_tasks(
            uow.session, pending_for_seconds=settings.pending_requeue_seconds, limit=SWEEP_BATCH
        )
    if failed:
        logger.warning("%d task(s) failed after losing their worker too often", len(failed))
    return stale


async def _mark_not_enqueued(runtime: WorkerRuntime, unsent: list[Task]) -> None:
    async with runtime.sessionmaker.begin() as session:
        await repository.mark_not_enqueued(session, [task.id for task in unsent])


def _send_all(celery_app: Celery, tasks: list[Task]) -> list[Task]:
    """Send each task's message; return those that could not be sent."""
    unsent = []
    for task in tasks:
        try:
            send_task(celery_app, str(task.id), task.kind)
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


def sweep_stale_tasks(runtime: WorkerRuntime, celery_app: Celery) -> int:
    """Send again every task whose message may have been lost; return how many went out.

    A task sent twice is harmless: the second delivery finds it taken and does nothing.
    """
    runtime.run(_prune_log(runtime))
    stale = runtime.run(_take_stale(runtime))
    unsent = _send_all(celery_app, stale)
    if unsent:
        runtime.run(_mark_not_enqueued(runtime, unsent))
    if len(stale) > len(unsent):
        logger.warning(
            "re-sent %d task(s) whose message or worker was lost", len(stale) - len(unsent)
        )
    return len(stale) - len(unsent)
