"""Callers: API keys, and an owner on every task.

Tasks stored before this migration have the owner "" (no key has an empty name), so no
caller sees them; give them an owner with
`UPDATE tasks SET owner = '<key name>' WHERE owner = ''` if they should stay visible.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
    )
    op.add_column("tasks", sa.Column("owner", sa.String(100), nullable=False, server_default=""))
    op.alter_column("tasks", "owner", server_default=None)
    op.drop_index("ix_tasks_created_at_id", "tasks")
    op.drop_index("ix_tasks_status_created_at_id", "tasks")
    op.drop_index("ix_tasks_idempotency_key", "tasks")
    op.create_index("ix_tasks_owner_created_at_id", "tasks", ["owner", "created_at", "id"])
    op.create_index(
        "ix_tasks_owner_status_created_at_id", "tasks", ["owner", "status", "created_at", "id"]
    )
    op.create_index(
        "ix_tasks_owner_idempotency_key",
        "tasks",
        ["owner", "idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_owner_idempotency_key", "tasks")
    op.drop_index("ix_tasks_owner_status_created_at_id", "tasks")
    op.drop_index("ix_tasks_owner_created_at_id", "tasks")
    op.create_index(
        "ix_tasks_idempotency_key",
        "tasks",
        ["idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.create_index("ix_tasks_status_created_at_id", "tasks", ["status", "created_at", "id"])
    op.create_index("ix_tasks_created_at_id", "tasks", ["created_at", "id"])
    op.drop_column("tasks", "owner")
    op.drop_table("api_keys")
