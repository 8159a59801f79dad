"""The worker process: Celery app with our task bodies, and how `aitasks worker` starts it."""

from __future__ import annotations

import gc
import uuid

from celery import Celery
from celery.signals import worker_process_init, worker_process_shutdown

from graphql_app.settings import Settings
from persistence.models import TaskKind
from tasks.celery_app import (
    MAINTENANCE_QUEUE,
    QUEUES,
    SWEEP_TASK_NAME,
    TASK_NAMES,
    create_celery_app,
)
from tasks.runtime import close_runtime, get_runtime
from tasks.sweeper import sweep_stale_tasks
from tasks.text_generation import run_text_generation


def create_worker_app(settings: Settings) -> Celery:
    _, redis_url = settings.require_services()
    app = create_celery_app(settings, redis_url)

    @app.task(
        name=TASK_NAMES[TaskKind.TEXT_GENERATION],
        time_limit=settings.task_time_limit_seconds + settings.task_kill_grace_seconds,
    )
    def text_generation(task_id: str) -> None:
        """Run a text-generation task (idempotent: see run_text_generation)."""
        runtime = get_runtime()
        runtime.run(run_text_generation(runtime, uuid.UUID(task_id), app))

    @app.task(name=SWEEP_TASK_NAME)
    def sweep() -> int:
        """Re-send tasks whose message was lost or whose worker died, and hand over
        delayed tasks whose time is near."""
        return sweep_stale_tasks(get_runtime(), app)

    return app


@worker_process_init.connect
def _freeze_inherited_objects(**_: object) -> None:
    # What the pool process inherited from the parent (modules, the Celery app) stays
    # out of the garbage collector's full passes, and its memory stays shared.
    gc.freeze()


@worker_process_shutdown.connect
def _close_runtime(**_: object) -> None:
    close_runtime()


def default_queues() -> list[str]:
    """Every queue with a task body in this version, and the maintenance queue."""
    return [*(QUEUES[kind] for kind in TASK_NAMES), MAINTENANCE_QUEUE]


def start_worker(
    settings: Settings, *, queues: list[str] | None, beat: bool, concurrency: int | None
) -> None:
    """Run a Celery worker in this process until it is told to stop."""
    app = create_worker_app(settings)
    argv = [
        "worker",
        "--queues",
        ",".join(queues or default_queues()),
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
    ]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    if beat:
        argv.append("--beat")
    app.worker_main(argv)
