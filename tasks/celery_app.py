"""The Celery app: Redis broker, a queue per task kind (tasks/kinds), late acknowledgement."""

from __future__ import annotations

import ssl
from typing import Any

from celery import Celery
from kombu import Exchange, Queue

from persistence.models import TaskPriority
from persistence.settings import Settings
from tasks.kinds import in_order

# Each kind's task name and queue come from its declaration (tasks/kinds).
SWEEP_TASK_NAME = "aitasks.sweep_stale_tasks"
# Kombu's Redis transport keeps a list per priority step and serves 0 first.
BROKER_PRIORITIES = {TaskPriority.HIGH: 0, TaskPriority.NORMAL: 3, TaskPriority.LOW: 6}
PRIORITY_STEPS = sorted(BROKER_PRIORITIES.values())
# Maintenance work goes on its own queue, so a backlog of tasks cannot delay the sweeper.
MAINTENANCE_QUEUE = "maintenance"
# The broker answers within this or is treated as down (the sweeper covers what was lost).
BROKER_CONNECT_TIMEOUT_SECONDS = 2.0


def broker_ssl(redis_url: str) -> dict[str, Any] | None:
    """For a `rediss://` URL without `ssl_*` options, verify the server's certificate
    as redis-py does; Kombu alone would then connect without checking it. Options in
    the URL (ssl_cert_reqs, ssl_ca_certs, ssl_certfile, ssl_keyfile) take precedence."""
    if not redis_url.startswith("rediss://"):
        return None
    return {"ssl_cert_reqs": ssl.CERT_REQUIRED}


def broker_url(redis_url: str) -> str:
    """Kombu names a Redis unix socket `redis+socket://`; redis-py says `unix://`."""
    if redis_url.startswith("unix://"):
        return "redis+socket://" + redis_url.removeprefix("unix://")
    return redis_url


def kind_queues() -> list[str]:
    """Every task kind's queue, in the registry's order."""
    return [kind.queue for kind in in_order()]


def _queue(name: str) -> Queue:
    return Queue(name, Exchange(name, type="direct"), routing_key=name)


def create_celery_app(settings: Settings, redis_url: str) -> Celery:
    app = Celery("aitasks", broker=broker_url(redis_url), set_as_current=False)
    app.conf.update(
        broker_use_ssl=broker_ssl(redis_url),
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_queues=[_queue(name) for name in (*kind_queues(), MAINTENANCE_QUEUE)],
        task_default_queue=in_order()[0].queue,
        task_routes={
            **{kind.task_name: {"queue": kind.queue} for kind in in_order()},
            SWEEP_TASK_NAME: {"queue": MAINTENANCE_QUEUE},
        },
        task_default_priority=BROKER_PRIORITIES[TaskPriority.NORMAL],
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout_seconds,
            "priority_steps": PRIORITY_STEPS,
            "socket_connect_timeout": BROKER_CONNECT_TIMEOUT_SECONDS,
        },
        broker_connection_timeout=BROKER_CONNECT_TIMEOUT_SECONDS,
        broker_connection_retry_on_startup=True,
        # A failed publish is retried briefly, then left to the sweeper.
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0.1, "interval_step": 0.2},
        worker_hijack_root_logger=False,
        worker_send_task_events=settings.worker_task_events,
        task_send_sent_event=False,
        beat_schedule={
            "sweep-stale-tasks": {
                "task": SWEEP_TASK_NAME,
                "schedule": settings.sweep_interval_seconds,
                "options": {"expires": settings.sweep_interval_seconds},
            },
        },
        # Beat keeps its schedule in memory: there is nothing to remember across restarts.
        beat_scheduler="celery.beat:Scheduler",
    )
    return app
