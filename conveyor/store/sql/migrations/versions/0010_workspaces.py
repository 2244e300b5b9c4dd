"""Workspaces on experiments and pipeline runs: the unit of isolation reaches the data.

Registered models carried a workspace since revision 0005; experiments (and through
them runs, metrics, datasets, logged models and artifacts) and pipeline runs get one now.
Everything created before belongs to ``default``, where every earlier role was granted.
Plain ``ADD COLUMN`` with a server default, so SQLite needs no table rebuild.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27 03:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("experiments", "pipeline_runs")


def upgrade() -> None:
    for table in _TABLES:
        op.add_column(
            table,
            sa.Column(
                "workspace", sa.String(length=250), server_default=sa.text("'default'"), nullable=False
            ),
        )
        op.create_index(op.f(f"ix_{table}_workspace"), table, ["workspace"], unique=False)


def downgrade() -> None:
    for table in _TABLES:
        op.drop_index(op.f(f"ix_{table}_workspace"), table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("workspace")
