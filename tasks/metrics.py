"""Prometheus metrics of the workers: how long tasks take and how they end, retries, and
queue depths.

Celery's pool processes each count their own; `aitasks worker --metrics-port` points
prometheus_client's multiprocess mode at a directory of its own (set before this module
is imported) and serves the sum from the worker's main process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from persistence.models import Task, TaskStatus
from persistence.settings import Settings

TASK_SECONDS = Histogram(
    "aitasks_task_duration_seconds",
    "Time a worker spent on one attempt of a task, by kind and how the attempt ended.",
    ["kind", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)
RETRIES = Counter(
    "aitasks_task_retries_total",
    "Attempts that failed for a passing reason and were queued again.",
    ["kind"],
)
OUTCOMES = {
    TaskStatus.COMPLETED: "completed",
    TaskStatus.FAILED: "failed",
    TaskStatus.CANCELLED: "cancelled",
    TaskStatus.PENDING: "retried",
}
# Set by `aitasks worker --metrics-port` before this module is imported.
MULTIPROCESS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"


def record_attempt(task: Task, seconds: float) -> None:
    """Count an attempt that ended (or was taken over: "lost")."""
    outcome = OUTCOMES.get(task.status, "lost")
    TASK_SECONDS.labels(task.kind.value, outcome).observe(seconds)
    if outcome == "retried":
        RETRIES.labels(task.kind.value).inc()


class QueueDepths(Collector):
    """Messages waiting per queue, read from Redis at each scrape."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from tasks.worker import queue_depths

        family = GaugeMetricFamily(
            "aitasks_queue_depth", "Messages waiting in each queue.", labels=["queue"]
        )
        try:
            depths = queue_depths(self._settings)
        except Exception:
            depths = {}
        for queue, depth in depths.items():
            family.add_metric([queue], depth)
        yield family


def serve(settings: Settings, port: int, host: str) -> None:
    """Serve the pool processes' metrics, summed, and the queue depths, on `port`."""
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=os.environ[MULTIPROCESS_DIRECTORY])
    registry.register(QueueDepths(settings))
    start_http_server(port, addr=host, registry=registry)
