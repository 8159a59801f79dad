"""The log line of a task's transition, the same from the API and the workers."""

from __future__ import annotations

import logging

from persistence.models import Task

transitions = logging.getLogger("aitasks.transitions")


def log_transition(task: Task) -> None:
    """One line per status a task enters, with its id: never its prompt or result."""
    transitions.info(
        "task %s %s",
        task.id,
        task.status.value,
        extra={
            "task_id": str(task.id),
            "kind": task.kind.value,
            "status": task.status.value,
            "attempt": task.attempts,
            "stage": task.stage,
        },
    )
