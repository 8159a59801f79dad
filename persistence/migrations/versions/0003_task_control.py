"""Task control: priority, delayed start, per-task timeout, cancel requests, error
history and idempotency keys.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Tasks stored before this migration get the time limit the service had by default.
DEFAULT_TIMEOUT_SECONDS = "1800"


def _columns_both_tables() -> list[tuple[str, sa.types.TypeEngine]]:
    return [
        ("scheduled_for", sa.DateTime(timezone=True)),
        ("cancel_requested_at", sa.DateTime(timezone=True)),
    ]


def upgrade() -> None:
    op.add_column(
        "tasks",
        sa.Column("priority", sa.String(10), nullable=False, server_default="NORMAL"),
    )
    op.create_check_constraint("task_priority", "tasks", "priority IN ('HIGH', 'NORMAL', 'LOW')")
    op.add_column(
        "tasks",
        sa.Column(
            "timeout_seconds",
            sa.Float(),
            nullable=False,
            server_default=sa.text(DEFAULT_TIMEOUT_SECONDS),
        ),
    )
    op.add_column("tasks", sa.Column("idempotency_key", sa.String(200)))
    for table in ("tasks", "task_events"):
        op.add_column(
            table,
            sa.Column(
                "errors",
                postgresql.JSONB(),
                nullable=False,
                server_default=sa.text("'[]'::jsonb"),
            ),
        )
    for name, type_ in _columns_both_tables():
        op.add_column("tasks", sa.Column(name, type_))
        op.add_column("task_events", sa.Column(name, type_))
    op.create_index(
        "ix_tasks_idempotency_key",
        "tasks",
        ["idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.create_index(
        "ix_tasks_pending_scheduled_for",
        "tasks",
        ["scheduled_for"],
        postgresql_where=sa.text("status = 'PENDING' AND scheduled_for IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_pending_scheduled_for", "tasks")
    op.drop_index("ix_tasks_idempotency_key", "tasks")
    for name, _ in _columns_both_tables():
        op.drop_column("task_events", name)
        op.drop_column("tasks", name)
    op.drop_column("task_events", "errors")
    for name in ("errors", "idempotency_key", "timeout_seconds", "priority"):
        op.drop_column("tasks", name)
