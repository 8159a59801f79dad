"""The GraphQL types, each built from the model by `from_model()`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from persistence import models
from persistence.models import TaskKind, TaskStatus
from tasks.watching import Update

# The model's enums are the GraphQL enums: one name per concept in every layer.
strawberry.enum(TaskStatus, description="Where a task is in its life.")
strawberry.enum(TaskKind, description="What sort of work a task does.")


@strawberry.type(description="A unit of AI work and its current state.")
class Task:
    id: strawberry.ID
    kind: TaskKind
    prompt: str
    model: str
    status: TaskStatus
    progress: float = strawberry.field(description="From 0 to 1; 1 once COMPLETED.")
    stage: str | None = strawberry.field(
        description='A few words on what the work is doing now: "queued", "starting", '
        '"generating", "done", "failed".'
    )
    result: str | None = strawberry.field(
        description="The output: while a text task runs, the text so far; then all of it."
    )
    error: str | None
    sequence: int = strawberry.field(
        description="Counts the task's changes: every change raises it by one."
    )
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def from_model(cls, task: models.Task) -> Task:
        return cls(
            id=strawberry.ID(str(task.id)),
            kind=task.kind,
            prompt=task.prompt,
            model=task.model,
            status=task.status,
            progress=task.progress,
            stage=task.stage,
            result=task.result,
            error=task.error,
            sequence=task.sequence,
            created_at=task.created_at,
            updated_at=task.updated_at,
            started_at=task.started_at,
            finished_at=task.finished_at,
        )


@strawberry.type(description="Input that was refused; nothing was stored.")
class ValidationError:
    field: str | None = strawberry.field(description="The input field at fault, if one is.")
    message: str


CreateTaskResult = Annotated[Task | ValidationError, strawberry.union("CreateTaskResult")]


@strawberry.input
class CreateTaskInput:
    prompt: str
    model: str | None = strawberry.field(
        default=None, description="The model to run on; the server's default when omitted."
    )
    kind: TaskKind = TaskKind.TEXT_GENERATION


@strawberry.type(
    description="One change of a task, in order of `sequence`, or (as a subscription's "
    "first update) the task as it is."
)
class TaskUpdate:
    sequence: int
    status: TaskStatus
    progress: float
    stage: str | None
    delta: str | None = strawberry.field(
        description="Text this change added to the end of `task.result`; null when it "
        "added none, and on a first update, whose `task.result` already holds the text."
    )
    task: Task

    @classmethod
    def from_update(cls, update: Update) -> TaskUpdate:
        task = update.task
        return cls(
            sequence=task.sequence,
            status=task.status,
            progress=task.progress,
            stage=task.stage,
            delta=update.delta or None,
            task=Task.from_model(task),
        )


@strawberry.type
class TaskEdge:
    cursor: str
    node: Task


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type(description="A page of tasks, newest first (Relay connection).")
class TaskConnection:
    edges: list[TaskEdge]
    page_info: PageInfo
