"""Task kinds: the column takes any kind name of the registry's shape.

The kinds are declared in `tasks/kinds`, one module each; a check listing their names
made every new kind a migration as well. The column now holds any name of upper-case
letters, digits and underscores (at most 20 characters, as before); which names exist is
the registry's to say, and only the API writes new rows, after checking the kind there.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# As persistence.models.KIND_NAME_PATTERN; a migration keeps its own copy, so a later
# change to the model cannot rewrite what this step did.
KIND_NAME_PATTERN = "^[A-Z][A-Z0-9_]*$"
FIRST_KINDS = ("TEXT_GENERATION", "IMAGE_PROCESSING", "DATA_ANALYSIS")


def upgrade() -> None:
    op.drop_constraint("task_kind", "tasks", type_="check")
    op.create_check_constraint("task_kind_name", "tasks", f"kind ~ '{KIND_NAME_PATTERN}'")


def downgrade() -> None:
    # Fails while a task of a later kind is stored: delete those first.
    op.drop_constraint("task_kind_name", "tasks", type_="check")
    names = ", ".join(f"'{name}'" for name in FIRST_KINDS)
    op.create_check_constraint("task_kind", "tasks", f"kind IN ({names})")
