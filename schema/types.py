"""The GraphQL types, each built from the model by `from_model()`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry
from strawberry.file_uploads import Upload
from strawberry.scalars import JSON

from persistence import models
from persistence.models import TaskPriority, TaskStatus
from schema.context import Context
from schema.inputs import built_directly
from tasks.kinds import DEFAULT_KIND, TaskKind, in_order
from tasks.services.watching import Update

# The model's enums are the GraphQL enums, one name per concept in every layer; TaskKind
# is made from the registry of kinds.
strawberry.enum(TaskStatus, description="Where a task is in its life.")
strawberry.enum(TaskKind, description="What sort of work a task does.")
strawberry.enum(
    TaskPriority, description="With a backlog, HIGH tasks start before NORMAL, NORMAL before LOW."
)


@strawberry.type(description="Why one attempt of a task failed.")
class TaskError:
    attempt: int
    message: str
    at: datetime
    transient: bool = strawberry.field(
        description="The failure may pass (rate limit, server error, timeout): the task "
        "was tried again."
    )

    @classmethod
    def from_entry(cls, entry: dict[str, Any]) -> TaskError:
        return cls(
            attempt=int(entry["attempt"]),
            message=str(entry["message"]),
            at=datetime.fromisoformat(str(entry["at"])),
            transient=bool(entry.get("transient")),
        )


@strawberry.type(description="A file given to a task as input.")
class TaskInputFile:
    name: str
    content_type: str
    size: int = strawberry.field(description="In bytes.")
    sha256: str = strawberry.field(description="The SHA-256 digest of its bytes, in hex.")

    @classmethod
    def from_entry(cls, entry: dict[str, Any]) -> TaskInputFile:
        return cls(
            name=entry["name"],
            content_type=entry["contentType"],
            size=entry["size"],
            sha256=entry["sha256"],
        )


@strawberry.type(description="A file a task produced (an image, a table), to download.")
class TaskArtifact:
    name: str
    content_type: str
    size: int = strawberry.field(description="In bytes.")
    task_id: strawberry.Private[str]

    @strawberry.field(description="Where to download it (GET).")
    def url(self, info: strawberry.Info[Context, None]) -> str:
        return info.context.artifact_url(self.task_id, self.name)

    @classmethod
    def from_entry(cls, task_id: str, entry: dict[str, Any]) -> TaskArtifact:
        return cls(
            name=entry["name"],
            content_type=entry["contentType"],
            size=entry["size"],
            task_id=task_id,
        )


@strawberry.type(description="A unit of AI work and its current state.")
class Task:
    id: strawberry.ID
    # The stored name as it is: the enum serializes a name by its value.
    kind: str = strawberry.field(graphql_type=TaskKind)
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
    priority: TaskPriority
    scheduled_for: datetime | None = strawberry.field(
        description="Not to start before this: a delayed start, or the back-off before a retry."
    )
    attempts: int = strawberry.field(description="How many times a worker has started it.")
    timeout_seconds: float = strawberry.field(
        description="The longest one attempt may run before it ends FAILED."
    )
    cancel_requested_at: datetime | None = strawberry.field(
        description="When a caller cancelled it while it ran; it ends CANCELLED shortly."
    )
    errors: list[TaskError] = strawberry.field(
        description="The error of each failed attempt, oldest first (kept across retries)."
    )
    params: JSON = strawberry.field(description="What the work was asked to do, per kind.")
    inputs: list[TaskInputFile] = strawberry.field(description="The files given as input.")
    output: JSON | None = strawberry.field(
        description="Structured results once COMPLETED: for an image its size and format, "
        "for data the profile and group-by figures."
    )
    artifacts: list[TaskArtifact] = strawberry.field(
        description="Files the task produced, once COMPLETED."
    )

    @strawberry.field(description="The message of the latest failed attempt, if any.")
    def last_error(self) -> str | None:
        return self.errors[-1].message if self.errors else None

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
            priority=task.priority,
            scheduled_for=task.scheduled_for,
            attempts=task.attempts,
            timeout_seconds=task.timeout_seconds,
            cancel_requested_at=task.cancel_requested_at,
            errors=[TaskError.from_entry(entry) for entry in task.errors],
            params=JSON(task.params),
            inputs=[TaskInputFile.from_entry(entry) for entry in task.inputs],
            output=None if task.output is None else JSON(task.output),
            artifacts=[TaskArtifact.from_entry(str(task.id), entry) for entry in task.artifacts],
        )


@strawberry.type(description="Input that was refused; nothing was stored.")
class ValidationError:
    field: str | None = strawberry.field(description="The input field at fault, if one is.")
    message: str


@strawberry.type(
    description="A limit of the caller's API key is reached; nothing was stored. Over HTTP "
    "the response status is 429."
)
class RateLimited:
    message: str
    retry_after_seconds: int | None = strawberry.field(
        description="When to try again; null when it depends on the caller's own tasks "
        "finishing (too many unfinished)."
    )


CreateTaskResult = Annotated[
    Task | ValidationError | RateLimited, strawberry.union("CreateTaskResult")
]


@strawberry.type(description="No task with this id exists; nothing was changed.")
class TaskNotFound:
    id: strawberry.ID
    message: str


@strawberry.type(description="The task's status does not allow this; nothing was changed.")
class TaskStateError:
    status: TaskStatus
    message: str


TaskControlResult = Annotated[
    Task | TaskNotFound | TaskStateError | RateLimited, strawberry.union("TaskControlResult")
]


@strawberry.input(
    description="An input file: inline as `base64`, or as `upload` in a multipart request "
    "(the GraphQL multipart request spec; send the header `GraphQL-Require-Preflight: 1`)."
)
class TaskFileInput:
    name: str = strawberry.field(description="A plain file name, e.g. photo.png or sales.csv.")
    content_type: str | None = strawberry.field(
        default=None, description="Guessed from the name when omitted."
    )
    base64: str | None = strawberry.field(
        default=None, description="The file's bytes in base64 (small files)."
    )
    upload: Upload | None = strawberry.field(default=None, description="A multipart upload.")


def _prompt_description() -> str:
    required = [kind.name for kind in in_order() if kind.needs_prompt]
    others = [
        f"for {kind.name} it {kind.prompt_help}" for kind in in_order() if not kind.needs_prompt
    ]
    return f"What to do. Required for {' and '.join(required)}; {', '.join(others)}."


def _params_description() -> str:
    kinds = " ".join(f"{kind.name}: {kind.params_help}." for kind in in_order() if kind.params)
    return f"Per kind. {kinds} The README lists every field."


def _files_description() -> str:
    # "an image" -> "one image": each kind that takes a file takes exactly one.
    files = [
        "one " + kind.input_file.what.partition(" ")[2] for kind in in_order() if kind.input_file
    ]
    return f"Input files: {', or '.join(files)}."


@built_directly
@strawberry.input
class CreateTaskInput:
    prompt: str = strawberry.field(default="", description=_prompt_description())
    model: str | None = strawberry.field(
        default=None, description="The model to run on; the server's default when omitted."
    )
    kind: TaskKind = DEFAULT_KIND
    priority: TaskPriority = TaskPriority.NORMAL
    run_at: datetime | None = strawberry.field(
        default=None,
        description="Start no earlier than this (with a time zone). A time in the past "
        "starts at once. Not with delaySeconds.",
    )
    delay_seconds: float | None = strawberry.field(
        default=None, description="Start no earlier than this many seconds from now."
    )
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="The same key within 24 hours returns the task it first created, "
        "without storing or running another; with different input it is an error.",
    )
    timeout_seconds: float | None = strawberry.field(
        default=None,
        description="The longest one attempt may run; the server's default when omitted.",
    )
    params: JSON | None = strawberry.field(default=None, description=_params_description())
    files: list[TaskFileInput] = strawberry.field(
        default_factory=list, description=_files_description()
    )


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
    live: bool = strawberry.field(
        description="False while the server cannot hear changes as they happen (its "
        "Redis is unreachable): the subscription then reads them from its PostgreSQL log, "
        "in order and none missed, but up to AITASKS_SUBSCRIPTION_POLL_SECONDS late. True "
        "again once Redis is back; what changed meanwhile has been sent by then."
    )

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
            live=update.live,
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
