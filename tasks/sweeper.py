"""Recovering lost messages: stale PENDING tasks and tasks of dead workers are sent again."""

from __future__ import annotations

import logging

from celery import Celery

from persistence import repository
from persistence.models import Task
from tasks.dispatch import send_task
from tasks.runtime import WorkerRuntime

logger = logging.getLogger(__name__)

# Tasks re-sent per sweep; the next sweep takes the rest.
SWEEP_BATCH = 500


async def _take_stale(runtime: WorkerRuntime) -> list[Task]:
    async with runtime.sessionmaker.begin() as session:
        return await repository.take_stale_tasks(
            session,
            pending_for_seconds=runtime.settings.pending_requeue_seconds,
            limit=SWEEP_BATCH,
        )


def sweep_stale_tasks(runtime: WorkerRuntime, celery_app: Celery) -> int:
    """Send again every task whose message may have been lost; return how many.

    A task sent twice is harmless: the second delivery finds it taken and does nothing.
    """
    stale = runtime.run(_take_stale(runtime))
    for task in stale:
        send_task(celery_app, str(task.id), task.kind)
    if stale:
        logger.warning(
            "re-enqueued %d task(s) whose message was lost or whose worker died", len(stale)
        )
    return len(stale)
