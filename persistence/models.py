"""The `tasks` table. Alembic migrations create it; this mapping only describes it."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Enum, Float, Index, Integer, String, Text, func, text
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


class TaskKind(enum.StrEnum):
    TEXT_GENERATION = "TEXT_GENERATION"
    IMAGE_PROCESSING = "IMAGE_PROCESSING"
    DATA_ANALYSIS = "DATA_ANALYSIS"


MODEL_NAME_MAX_CHARS = 200


class Base(DeclarativeBase):
    pass


def _enum(enum_class: type[enum.Enum], name: str) -> Enum:
    # VARCHAR with a CHECK rather than a PostgreSQL enum type: adding a value later is
    # then an ordinary migration instead of ALTER TYPE outside a transaction.
    return Enum(enum_class, name=name, native_enum=False, length=20, create_constraint=True)


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    kind: Mapped[TaskKind] = mapped_column(_enum(TaskKind, "task_kind"))
    prompt: Mapped[str] = mapped_column(Text)
    model: Mapped[str] = mapped_column(String(MODEL_NAME_MAX_CHARS))
    status: Mapped[TaskStatus] = mapped_column(_enum(TaskStatus, "task_status"))
    progress: Mapped[float] = mapped_column(Float, server_default=text("0"))
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

    # Server-set columns (created_at, sequence, ...) come back in the INSERT's RETURNING,
    # so a new task is complete without a second round trip.
    __mapper_args__ = {"eager_defaults": True}

    __table_args__ = (
        Index("ix_tasks_created_at_id", "created_at", "id"),
        Index("ix_tasks_status_created_at_id", "status", "created_at", "id"),
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
    )

    def evolve(self, **changes: Any) -> Task:
        """A detached copy with some columns changed, for views built from events."""
        values = {column.key: getattr(self, column.key) for column in Task.__mapper__.column_attrs}
        values.update(changes)
        return Task(**values)
