"""The worker process: Celery app with our task bodies, and how `aitasks worker` starts it."""

from __future__ import annotations

import contextlib
import gc
import logging
import socket
import uuid
from typing import cast

from celery import Celery
from celery.signals import worker_process_init, worker_process_shutdown, worker_shutdown
from kombu.exceptions import OperationalError

from persistence.settings import ConfigurationError, Settings
from tasks.celery_app import (
    MAINTENANCE_QUEUE,
    PRIORITY_STEPS,
    SWEEP_TASK_NAME,
    create_celery_app,
    kind_queues,
)
from tasks.kinds import Kind, in_order
from tasks.kinds.text import KIND as TEXT_KIND
from tasks.services.dispatch import PRIORITY_SEPARATOR
from tasks.worker.execution import Work, run_task
from tasks.worker.reconciler import LostWorkerRequest, ReconcilerStep
from tasks.worker.runtime import close_runtime, get_runtime
from tasks.worker.sweeper import sweep_stale_tasks
from tasks.worker.text_worker import (
    TEXT_QUEUE,
    TextWorker,
    held_tasks,
    serve_text_only,
    text_worker_step,
)

logger = logging.getLogger(__name__)


def _register(app: Celery, kind: Kind, settings: Settings) -> None:
    # Set only in a text worker under its parent (the app is made after its environment).
    held = held_tasks() if kind is TEXT_KIND else None

    def run(task_id: str) -> None:
        runtime = get_runtime()
        task_uuid = uuid.UUID(task_id)
        with held.hold(task_uuid) if held else contextlib.nullcontext():
            # The body is imported when a task of the kind first runs: a worker serving
            # only text never loads pandas or Pillow.
            runtime.run(run_task(runtime, task_uuid, app, cast(Work, kind.load_work())))

    run.__doc__ = f"Run a {kind.name} task (idempotent: see run_task)."
    app.task(
        name=kind.task_name,
        time_limit=settings.task_time_limit_seconds + settings.task_kill_grace_seconds,
        Request=LostWorkerRequest,
    )(run)


def create_worker_app(settings: Settings) -> Celery:
    _, redis_url = settings.require_services()
    app = create_celery_app(settings, redis_url)
    for kind in in_order():
        _register(app, kind, settings)

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
@worker_shutdown.connect
def _close_runtime(**_: object) -> None:
    # A pool process's runtime when it ends; the text worker's (which runs its tasks in
    # its main process) when the worker ends. close_runtime leaves a parent's alone.
    close_runtime()


def all_queues() -> list[str]:
    """Every task kind's queue, and the maintenance queue."""
    return [*kind_queues(), MAINTENANCE_QUEUE]


def check_queues(queues: list[str]) -> None:
    unknown = [name for name in queues if name not in all_queues()]
    if unknown or not queues:
        raise ConfigurationError(
            f"Unknown queue {', '.join(unknown) or '(none given)'}; the queues are "
            f"{', '.join(all_queues())}."
        )


def celery_workers(queues: list[str]) -> int:
    """How many Celery workers `aitasks worker --queues` with these queues runs: the text
    worker is one of its own beside the prefork worker of the other queues."""
    return 1 + (TEXT_QUEUE in queues and any(queue != TEXT_QUEUE for queue in queues))


def ping_local_workers(settings: Settings, timeout: float) -> list[str]:
    """The names of the workers on this host that answer a ping."""
    _, redis_url = settings.require_services()
    app = create_celery_app(settings, redis_url)
    try:
        replies = app.control.ping(timeout=timeout)
    finally:
        app.close()
    host = socket.gethostname()
    return sorted(name for reply in replies for name in reply if name.endswith(f"@{host}"))


def queue_depths(settings: Settings) -> dict[str, int]:
    """Messages waiting in each queue, all priority steps together."""
    import redis

    _, redis_url = settings.require_services()
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        keys = {
            queue: [
                f"{queue}{PRIORITY_SEPARATOR}{step}" if step else queue for step in PRIORITY_STEPS
            ]
            for queue in all_queues()
        }
        with client.pipeline(transaction=False) as pipeline:
            for queue_keys in keys.values():
                for key in queue_keys:
                    pipeline.llen(key)
            lengths = iter(pipeline.execute())
        return {queue: sum(next(lengths) for _ in queue_keys) for queue, queue_keys in keys.items()}
    finally:
        client.close()


def running_tasks(settings: Settings, timeout: float) -> dict[str, int]:
    """Each answering worker and how many tasks it is running."""
    _, redis_url = settings.require_services()
    app = create_celery_app(settings, redis_url)
    try:
        active = app.control.inspect(timeout=timeout).active() or {}
    finally:
        app.close()
    return {name: len(tasks) for name, tasks in sorted(active.items())}


def start_flower(settings: Settings, port: int) -> None:
    """Run Flower on our Celery app until stopped. Task arguments are task ids only, so
    Flower shows nothing secret."""
    app = create_worker_app(settings)
    # Workers send task events only when asked (AITASKS_WORKER_TASK_EVENTS): ask the
    # running ones now, so Flower shows the first task; Flower asks again every few
    # seconds, which covers workers started later.
    try:
        app.control.enable_events()
    except OperationalError as error:
        logger.warning("could not ask the workers for task events: %s", error)
    app.start(["flower", f"--port={port}", f"--address={settings.host}"])


def worker_argv(queues: list[str], *, concurrency: int | None, quiet: bool = False) -> list[str]:
    """`celery worker`'s command line for these queues, as `aitasks worker` runs it;
    `quiet` leaves out Celery's start-up banner."""
    argv = [
        *(["--quiet"] if quiet else []),
        "worker",
        "--queues",
        ",".join(queues),
        "--hostname",
        f"{'+'.join(queues)}@%h",
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
    ]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    return argv


def start_worker(
    settings: Settings,
    *,
    queues: list[str] | None,
    beat: bool,
    concurrency: int | None,
    quiet: bool = False,
) -> None:
    """Run a Celery worker in this process until it is told to stop; with `beat`, its
    main process also runs the sweeps and reconciles after outages (tasks/worker/reconciler.py)
    in place of Celery's beat. The text queue goes to a text worker (tasks/worker/text_worker.py)
    that this process starts and watches; the other queues to this process's prefork pool."""
    queues = queues or all_queues()
    check_queues(queues)
    app = create_worker_app(settings)
    others = [queue for queue in queues if queue != TEXT_QUEUE]
    if not others:
        serve_text_only(settings, app, beat=beat, quiet=quiet)
        return
    if beat:
        app.steps["worker"].add(ReconcilerStep)
    if concurrency is None and others == [MAINTENANCE_QUEUE]:
        # Sweeps are short and one at a time: a pool process per core would only idle.
        concurrency = 1
    if TEXT_QUEUE not in queues:
        app.worker_main(worker_argv(others, concurrency=concurrency, quiet=quiet))
        return
    # Started before this worker, not by it: the two start side by side.
    text_worker = TextWorker(settings, app, beat=False, quiet=quiet)
    text_worker.start()
    try:
        app.steps["worker"].add(text_worker_step(text_worker))
        app.worker_main(worker_argv(others, concurrency=concurrency, quiet=quiet))
    finally:
        text_worker.stop()
