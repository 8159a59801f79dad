"""Celery's own ceiling on this machine: a worker that drains tasks doing nothing.

The app is `tasks.celery_app.create_celery_app`, the product's, so broker, transport
options, late acknowledgement, prefetch and task events are the same; it has one task,
which does nothing, routed to the text-generation queue. `python -m bench.noop_worker`
runs it with the command line `aitasks worker` gives its app (`tasks.worker.app.worker_argv`):
the same queues, the same options, the same concurrency (AITASKS_WORKER_CONCURRENCY,
else one process per core), but no beat (the sweep has no body here).
"""

from __future__ import annotations

import logging
import sys

from celery import Celery

from bench.process_limits import exit_with_parent
from persistence.settings import Settings, get_settings
from tasks.celery_app import create_celery_app
from tasks.kinds.text import KIND as TEXT_KIND
from tasks.worker.app import all_queues, worker_argv

NOOP_TASK_NAME = "aitasks.bench.noop"
NOOP_QUEUE = TEXT_KIND.queue


def create_noop_app(settings: Settings) -> Celery:
    _, redis_url = settings.require_services()
    app = create_celery_app(settings, redis_url)

    @app.task(name=NOOP_TASK_NAME)
    def noop() -> None:
        """Nothing: what is measured is Celery getting the message to it and back."""

    return app


def send_noops(app: Celery, count: int) -> None:
    """Queue `count` no-op tasks (blocking)."""
    with app.producer_or_acquire() as producer:
        for _ in range(count):
            # The queue and (default) priority of a createTask message.
            app.send_task(NOOP_TASK_NAME, queue=NOOP_QUEUE, producer=producer)


def main() -> None:
    exit_with_parent()
    # As `aitasks` does before any command (the worker leaves the root logger alone).
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    settings = get_settings()
    app = create_noop_app(settings)
    app.worker_main(worker_argv(all_queues(), concurrency=settings.worker_concurrency))


if __name__ == "__main__":
    main()
