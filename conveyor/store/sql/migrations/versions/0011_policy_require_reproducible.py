"""Approval policies: ``require_reproducible`` gets a column of its own.

It was stored inside the ``metrics`` JSON (``{"thresholds": [...], "require_reproducible":
true}``) until a migration could add the column; this one does, moves the flag out of the
JSON and leaves ``metrics`` the plain list of thresholds it was before the flag existed.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-27 03:20:00.000000
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_policies = sa.table(
    "alias_policies",
    sa.column("scope", sa.String),
    sa.column("alias", sa.String),
    sa.column("metrics", sa.Text),
    sa.column("require_reproducible", sa.Boolean),
)


def upgrade() -> None:
    op.add_column(
        "alias_policies",
        sa.Column("require_reproducible", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    conn = op.get_bind()
    for key, alias, metrics in conn.execute(
        sa.select(_policies.c.scope, _policies.c.alias, _policies.c.metrics)
    ):
        data = json.loads(metrics)
        if isinstance(data, dict):
            conn.execute(
                _policies.update()
                .where(_policies.c.scope == key, _policies.c.alias == alias)
                .values(
                    metrics=json.dumps(data.get("thresholds", [])),
                    require_reproducible=bool(data.get("require_reproducible", False)),
                )
            )


def downgrade() -> None:
    conn = op.get_bind()
    flagged = sa.select(_policies.c.scope, _policies.c.alias, _policies.c.metrics).where(
        _policies.c.require_reproducible == sa.true()
    )
    for key, alias, metrics in conn.execute(flagged).all():
        folded = json.dumps({"thresholds": json.loads(metrics), "require_reproducible": True})
        conn.execute(
            _policies.update()
            .where(_policies.c.scope == key, _policies.c.alias == alias)
            .values(metrics=folded)
        )
    with op.batch_alter_table("alias_policies") as batch:
        batch.drop_column("require_reproducible")
