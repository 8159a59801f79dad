"""Handing tasks to the broker without blocking the API's event loop."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from celery import Celery

from persistence.models import Task, TaskKind, TaskPriority
from tasks.celery_app import BROKER_PRIORITIES, QUEUES, TASK_NAMES

logger = logging.getLogger(__name__)

# Publishing is a short socket write; a few threads keep up with the API, and bound how
# many requests can be stuck on a broker that has gone away.
PUBLISH_THREADS = 4


def send_task(
    celery_app: Celery,
    task_id: str,
    kind: TaskKind,
    priority: TaskPriority = TaskPriority.NORMAL,
    countdown: float | None = None,
) -> None:
    """Publish the message that runs a task. Blocking: call it off the event loop."""
    celery_app.send_task(
        TASK_NAMES[kind],
        args=[task_id],
        queue=QUEUES[kind],
        priority=BROKER_PRIORITIES[priority],
        countdown=countdown,
    )


class Dispatcher:
    """Sends task messages from a small thread pool, after the row is committed."""

    def __init__(self, celery_app: Celery, timeout_seconds: float) -> None:
        self._celery_app = celery_app
        self._timeout = timeout_seconds
        self._executor = ThreadPoolExecutor(PUBLISH_THREADS, thread_name_prefix="enqueue")

    async def enqueue(self, task: Task, countdown: float | None = None) -> None:
        """Hand the task's message to the broker, to run `countdown` seconds from now. If
        it cannot be sent now, the task stays PENDING and the sweeper sends it later."""
        loop = asyncio.get_running_loop()
        send = loop.run_in_executor(
            self._executor,
            send_task,
            self._celery_app,
            str(task.id),
            task.kind,
            task.priority,
            countdown,
        )
        try:
            await asyncio.wait_for(send, self._timeout)
        except Exception as error:
            logger.warning("task %s not enqueued now (%s); the sweeper will retry", task.id, error)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        # Releases the broker connections of Celery's producer pool.
        self._celery_app.close()
