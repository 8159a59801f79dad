"""Work other than text: structured parameters, input files, JSON output and artifacts.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _jsonb(name: str, default: str) -> sa.Column:
    return sa.Column(name, postgresql.JSONB(), nullable=False, server_default=sa.text(default))


def upgrade() -> None:
    # JSON rather than JSONB for what callers read back as they wrote it: JSONB reorders
    # object keys, and the order of a group-by's aggregations is the order of its columns.
    op.add_column(
        "tasks",
        sa.Column("params", postgresql.JSON(), nullable=False, server_default=sa.text("'{}'")),
    )
    op.add_column("tasks", _jsonb("inputs", "'[]'::jsonb"))
    for table in ("tasks", "task_events"):
        op.add_column(table, sa.Column("output", postgresql.JSON()))
        op.add_column(table, _jsonb("artifacts", "'[]'::jsonb"))
    op.create_table(
        "task_files",
        sa.Column(
            "task_id",
            sa.Uuid(),
            sa.ForeignKey("tasks.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("role", sa.String(10), primary_key=True),
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint("role IN ('input', 'artifact')", name="task_file_role"),
    )


def downgrade() -> None:
    op.drop_table("task_files")
    for table in ("tasks", "task_events"):
        op.drop_column(table, "artifacts")
        op.drop_column(table, "output")
    op.drop_column("tasks", "inputs")
    op.drop_column("tasks", "params")
