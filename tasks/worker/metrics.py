"""Prometheus metrics of the workers: how long tasks take and how they end, and retries.

Celery's pool processes each count their own; `aitasks worker --metrics-port` points
prometheus_client's multiprocess mode at a directory of its own (set before this module
is imported) and serves the sum from the worker's main process (tasks/worker/metrics_server.py).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from persistence.models import Task, TaskStatus

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


def record_attempt(task: Task, seconds: float) -> None:
    """Count an attempt that ended (or was taken over: "lost")."""
    outcome = OUTCOMES.get(task.status, "lost")
    TASK_SECONDS.labels(task.kind, outcome).observe(seconds)
    if outcome == "retried":
        RETRIES.labels(task.kind).inc()
