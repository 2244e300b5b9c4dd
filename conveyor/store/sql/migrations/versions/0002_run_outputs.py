"""Run outputs: which run output which logged model at which step.

Until 0001 the only link was ``logged_models.source_run_id``, so a later run that output an
existing model was lost. Existing links are copied over as outputs at step 0, which is
what the API reported for them before.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 22:53:06.698815
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "run_outputs",
        sa.Column("run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("model_id", sa.String(length=64), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["logged_models.model_id"],
            name=op.f("fk_run_outputs_model_id_logged_models"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_run_outputs_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "model_id", "step", name=op.f("pk_run_outputs")),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("run_outputs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_run_outputs_model_id"), ["model_id"], unique=False)

    # Every model that names its source run becomes that run's output at step 0.
    runs = sa.table("runs", sa.column("id", sa.BigInteger), sa.column("run_uuid", sa.String))
    models = sa.table(
        "logged_models", sa.column("model_id", sa.String), sa.column("source_run_id", sa.String)
    )
    outputs = sa.table(
        "run_outputs",
        sa.column("run_id", sa.BigInteger),
        sa.column("model_id", sa.String),
        sa.column("step", sa.BigInteger),
    )
    source = sa.select(runs.c.id, models.c.model_id, sa.literal(0, sa.BigInteger)).select_from(
        models.join(runs, runs.c.run_uuid == models.c.source_run_id)
    )
    op.execute(outputs.insert().from_select(["run_id", "model_id", "step"], source))


def downgrade() -> None:
    with op.batch_alter_table("run_outputs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_run_outputs_model_id"))

    op.drop_table("run_outputs")
