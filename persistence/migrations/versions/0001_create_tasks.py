"""Create the tasks table.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

STATUSES = ("PENDING", "PROCESSING", "COMPLETED", "FAILED", "CANCELLED")
KINDS = ("TEXT_GENERATION", "IMAGE_PROCESSING", "DATA_ANALYSIS")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


def upgrade() -> None:
    now = sa.text("now()")
    op.create_table(
        "tasks",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False, server_default=sa.text("0")),
        sa.Column("result", sa.Text()),
        sa.Column("error", sa.Text()),
        sa.Column("sequence", sa.Integer(), nullable=False, server_default=sa.text("1")),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint(_one_of("status", STATUSES), name="task_status"),
        sa.CheckConstraint(_one_of("kind", KINDS), name="task_kind"),
        sa.CheckConstraint("progress >= 0 AND progress <= 1", name="task_progress_range"),
    )
    op.create_index("ix_tasks_created_at_id", "tasks", ["created_at", "id"])
    op.create_index("ix_tasks_status_created_at_id", "tasks", ["status", "created_at", "id"])
    op.create_index(
        "ix_tasks_pending_enqueued_at",
        "tasks",
        ["enqueued_at"],
        postgresql_where=sa.text("status = 'PENDING'"),
    )
    op.create_index(
        "ix_tasks_processing_lease",
        "tasks",
        ["lease_expires_at"],
        postgresql_where=sa.text("status = 'PROCESSING'"),
    )


def downgrade() -> None:
    op.drop_table("tasks")
