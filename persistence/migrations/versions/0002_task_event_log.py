"""The task event log, and a short `stage` text on tasks.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("stage", sa.String(100)))
    op.create_table(
        "task_events",
        sa.Column(
            "task_id", sa.Uuid(), sa.ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("stage", sa.String(100)),
        sa.Column("delta", sa.Text()),
        sa.Column("result_reset", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("task_id", "sequence"),
    )
    # For pruning the log of tasks that ended long ago.
    op.create_index(
        "ix_tasks_finished_at",
        "tasks",
        ["finished_at"],
        postgresql_where=sa.text("finished_at IS NOT NULL"),
    )
    # For the dashboard feed's re-sync: tasks changed since a moment.
    op.create_index("ix_tasks_updated_at", "tasks", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_tasks_updated_at", "tasks")
    op.drop_index("ix_tasks_finished_at", "tasks")
    op.drop_table("task_events")
    op.drop_column("tasks", "stage")
