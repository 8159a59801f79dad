"""The `tasks` table and its event log. Alembic migrations create them; this module only
describes them."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSON, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class TaskStatus(enum.StrEnum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})


class TaskPriority(enum.StrEnum):
    HIGH = "HIGH"
    NORMAL = "NORMAL"
    LOW = "LOW"


# A task kind's name (tasks/kinds declares the kinds; the column holds any name of this
# shape, so a new kind needs no migration).
KIND_NAME_MAX_CHARS = 20
KIND_NAME_PATTERN = "^[A-Z][A-Z0-9_]*$"
MODEL_NAME_MAX_CHARS = 200
CALLER_NAME_MAX_CHARS = 100
IDEMPOTENCY_KEY_MAX_CHARS = 200
STAGE_MAX_CHARS = 100
# What a new task's `stage` says until a worker takes it.
QUEUED_STAGE = "queued"
STARTING_STAGE = "starting"
DONE_STAGE = "done"
FAILED_STAGE = "failed"
RETRY_STAGE = "waiting to retry"
CANCELLING_STAGE = "cancelling"
CANCELLED_STAGE = "cancelled"


class Base(DeclarativeBase):
    pass


def _enum(enum_class: type[enum.Enum], name: str) -> Enum:
    # VARCHAR with a CHECK rather than a PostgreSQL enum type: adding a value later is
    # then an ordinary migration instead of ALTER TYPE outside a transaction.
    return Enum(enum_class, name=name, native_enum=False, length=20, create_constraint=True)


_ENUM_COLUMNS: dict[str, type[enum.Enum]] = {
    "status": TaskStatus,
    "priority": TaskPriority,
}


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # The caller that created it (an API key's name); only that caller sees the task.
    owner: Mapped[str] = mapped_column(String(CALLER_NAME_MAX_CHARS))
    kind: Mapped[str] = mapped_column(String(KIND_NAME_MAX_CHARS))
    prompt: Mapped[str] = mapped_column(Text)
    model: Mapped[str] = mapped_column(String(MODEL_NAME_MAX_CHARS))
    status: Mapped[TaskStatus] = mapped_column(_enum(TaskStatus, "task_status"))
    progress: Mapped[float] = mapped_column(Float, server_default=text("0"))
    # A few words on what the work is doing now ("queued", "generating", ...).
    stage: Mapped[str | None] = mapped_column(String(STAGE_MAX_CHARS))
    result: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    # Bumped by every change, in the UPDATE that makes it: the order of a task's events.
    sequence: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When a message for this task was last handed to the broker (for the sweeper).
    enqueued_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    # Until when the worker running it holds it; renewed while that worker is alive.
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    priority: Mapped[TaskPriority] = mapped_column(
        _enum(TaskPriority, "task_priority"), server_default=text("'NORMAL'")
    )
    # Not to start before this (a delayed start, or the back-off before a retry).
    scheduled_for: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The longest one attempt may run before it ends FAILED.
    timeout_seconds: Mapped[float] = mapped_column(Float)
    # Set when a caller cancelled the task while a worker was running it.
    cancel_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The error of each failed attempt, oldest first: {"attempt", "message", "at"}.
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    idempotency_key: Mapped[str | None] = mapped_column(String(IDEMPOTENCY_KEY_MAX_CHARS))
    # What the work is asked to do beyond the prompt, checked per kind at submission.
    # JSON, not JSONB, here and in `output`: kept in the order written (JSONB sorts keys).
    params: Mapped[dict[str, Any]] = mapped_column(JSON, server_default=text("'{}'"))
    # The input files, described: {"name", "contentType", "size", "sha256"}; the bytes are
    # in `task_files`.
    inputs: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    # Structured results (image size, a data profile), set when the task completes.
    output: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The files the task produced, described: {"name", "contentType", "size"}.
    artifacts: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, server_default=text("'[]'::jsonb")
    )

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Task:
        """A task built from a whole row of `tasks` as the driver returns it (for the
        statements written out in SQL), its enums as the model's."""
        values = dict(row)
        for name, enum_class in _ENUM_COLUMNS.items():
            values[name] = enum_class(values[name])
        return cls._of_values(values)

    @classmethod
    def _of_values(cls, values: dict[str, Any]) -> Task:
        """A transient task holding exactly these column values.

        Filled in as the ORM fills a loaded row, straight into the instance's dict: the
        constructor sends an attribute event per column, far more work than this, and
        a worker builds a task for every change.
        """
        task = cls.__mapper__.class_manager.new_instance()
        task.__dict__.update(values)
        return task

    # Server-set columns (created_at, sequence, ...) come back in the INSERT's RETURNING,
    # so a new task is complete without a second round trip.
    __mapper_args__ = {"eager_defaults": True}

    __table_args__ = (
        Index("ix_tasks_owner_created_at_id", "owner", "created_at", "id"),
        Index("ix_tasks_owner_status_created_at_id", "owner", "status", "created_at", "id"),
        Index(
            "ix_tasks_pending_enqueued_at",
            "enqueued_at",
            postgresql_where=text("status = 'PENDING'"),
        ),
        Index(
            "ix_tasks_processing_lease",
            "lease_expires_at",
            postgresql_where=text("status = 'PROCESSING'"),
        ),
        Index(
            "ix_tasks_finished_at",
            "finished_at",
            postgresql_where=text("finished_at IS NOT NULL"),
        ),
        Index("ix_tasks_updated_at", "updated_at"),
        Index(
            "ix_tasks_owner_idempotency_key",
            "owner",
            "idempotency_key",
            unique=True,
            postgresql_where=text("idempotency_key IS NOT NULL"),
        ),
        Index(
            "ix_tasks_pending_scheduled_for",
            "scheduled_for",
            postgresql_where=text("status = 'PENDING' AND scheduled_for IS NOT NULL"),
        ),
    )

    def evolve(self, **changes: Any) -> Task:
        """A detached copy with some columns changed, for views built from events."""
        values = {key: getattr(self, key) for key in _TASK_COLUMNS}
        values.update(changes)
        return Task._of_values(values)


# Reading the columns configures the mappers, as a task's constructor would on first use:
# `_of_values` builds tasks without it.
_TASK_COLUMNS = tuple(column.key for column in Task.__mapper__.column_attrs)


# One row per change of a task after its creation (sequence 2, 3, ...), written in the
# transaction that makes the change: the durable, gap-free record that subscribers catch
# up from when a pub/sub message may have been missed. Sequence 1 is the creation itself,
# which the task row describes.
task_events = Table(
    "task_events",
    Base.metadata,
    Column("task_id", ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True),
    Column("sequence", Integer, primary_key=True),
    Column("status", _enum(TaskStatus, "task_status"), nullable=False),
    Column("progress", Float, nullable=False),
    Column("stage", String(STAGE_MAX_CHARS)),
    # Text appended to the task's result by this change.
    Column("delta", Text),
    # The result was cleared before `delta` was appended (a new attempt starts afresh).
    Column("result_reset", Boolean, nullable=False),
    Column("error", Text),
    Column("attempts", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("scheduled_for", DateTime(timezone=True)),
    Column("cancel_requested_at", DateTime(timezone=True)),
    Column("errors", JSONB, nullable=False),
    Column("output", JSON),
    Column("artifacts", JSONB, nullable=False),
)


# API keys. Only a SHA-256 digest of each key is kept: the keys are long random strings,
# so a digest cannot be reversed by guessing, and a leaked table reveals no key.
api_keys = Table(
    "api_keys",
    Base.metadata,
    Column("id", Uuid, primary_key=True),
    # Who the key speaks for: keys with one name share their tasks (so a key can be
    # replaced without losing them).
    Column("name", String(CALLER_NAME_MAX_CHARS), nullable=False),
    # The key's first characters, to tell keys apart in a listing.
    Column("prefix", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("revoked_at", DateTime(timezone=True)),
)


class FileRole(enum.StrEnum):
    INPUT = "input"
    ARTIFACT = "artifact"


FILE_NAME_MAX_CHARS = 200
CONTENT_TYPE_MAX_CHARS = 100

# The bytes of a task's input files and artifacts. PostgreSQL keeps them with the task
# (deleted with it), so there is no second store to back up, secure or clean; the size
# limits keep each row well within what a bytea handles comfortably.
task_files = Table(
    "task_files",
    Base.metadata,
    Column("task_id", ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True),
    Column("role", String(10), primary_key=True),
    Column("name", String(FILE_NAME_MAX_CHARS), primary_key=True),
    Column("content_type", String(CONTENT_TYPE_MAX_CHARS), nullable=False),
    Column("size", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
)


@dataclass(frozen=True)
class TaskFile:
    """An input file or an artifact: its bytes and how to serve them."""

    name: str
    content_type: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)


# Columns of `tasks` that an event carries as they are after the change.
EVENT_STATE_COLUMNS = (
    "status",
    "progress",
    "stage",
    "error",
    "attempts",
    "updated_at",
    "started_at",
    "finished_at",
    "scheduled_for",
    "cancel_requested_at",
    "errors",
    "output",
    "artifacts",
)


@dataclass(frozen=True)
class TaskEvent:
    """One committed change of a task: its new `sequence`, the small columns as they now
    are, and the text it added to the result. Applying a task's events in order to its
    state at creation gives its state at any sequence, result included."""

    task_id: uuid.UUID
    sequence: int
    status: TaskStatus
    progress: float
    stage: str | None
    delta: str | None
    result_reset: bool
    error: str | None
    attempts: int
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    scheduled_for: datetime | None
    cancel_requested_at: datetime | None
    errors: list[dict[str, Any]]
    output: dict[str, Any] | None
    artifacts: list[dict[str, Any]]

    @classmethod
    def of(cls, task: Task, *, delta: str | None = None, result_reset: bool = False) -> TaskEvent:
        """The event of the change that left `task` as it is."""
        state = {name: getattr(task, name) for name in EVENT_STATE_COLUMNS}
        return cls(
            task_id=task.id,
            sequence=task.sequence,
            delta=delta,
            result_reset=result_reset,
            **state,
        )

    def apply_to(self, task: Task) -> Task:
        result = None if self.result_reset else task.result
        if self.delta is not None:
            result = (result or "") + self.delta
        state = {name: getattr(self, name) for name in EVENT_STATE_COLUMNS}
        return task.evolve(sequence=self.sequence, result=result, **state)


@dataclass(frozen=True)
class TaskChange:
    """What a write did: the task as it now is, and the event that describes the change."""

    task: Task
    event: TaskEvent
