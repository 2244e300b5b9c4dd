"""Model monitoring: reference profiles, monitor runs, result points, alert rules and alerts.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-28 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "monitor_profiles",
        sa.Column("model", sa.String(length=256), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("columns", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(length=20), nullable=True),
        sa.Column("label_column", sa.String(length=250), nullable=True),
        sa.Column("cbpe", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("model", "version", name=op.f("pk_monitor_profiles")),
    )
    op.create_table(
        "monitor_runs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=256), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=True),
        sa.Column("alias", sa.String(length=255), nullable=True),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("window_end", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("started", sa.BigInteger(), nullable=False),
        sa.Column("finished", sa.BigInteger(), nullable=True),
        sa.Column("rows", sa.BigInteger(), nullable=True),
        sa.Column("points", sa.Integer(), nullable=True),
        sa.Column("report_path", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("details", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_runs")),
    )
    with op.batch_alter_table("monitor_runs", schema=None) as batch_op:
        batch_op.create_index("ix_monitor_runs_model_started", ["model", "started"], unique=False)
    op.create_table(
        "monitor_points",
        sa.Column("model", sa.String(length=256), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("window_end", sa.BigInteger(), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("feature", sa.String(length=500), nullable=False),
        sa.Column("alias", sa.String(length=255), nullable=False),
        sa.Column("value", sa.Float(precision=53), nullable=False),
        sa.Column("estimated", sa.Boolean(), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint(
            "model",
            "version",
            "window_start",
            "window_end",
            "metric",
            "feature",
            name=op.f("pk_monitor_points"),
        ),
    )
    with op.batch_alter_table("monitor_points", schema=None) as batch_op:
        batch_op.create_index("ix_monitor_points_model_window_end", ["model", "window_end"], unique=False)
    op.create_table(
        "monitor_alert_rules",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=256), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("feature", sa.String(length=500), nullable=False),
        sa.Column("op", sa.String(length=2), nullable=False),
        sa.Column("threshold", sa.Float(precision=53), nullable=False),
        sa.Column("severity", sa.String(length=20), nullable=False),
        sa.Column("for_runs", sa.Integer(), nullable=False),
        sa.Column("suggest_retrain", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_alert_rules")),
    )
    with op.batch_alter_table("monitor_alert_rules", schema=None) as batch_op:
        batch_op.create_index("ix_monitor_alert_rules_model", ["model"], unique=False)
    op.create_table(
        "monitor_alerts",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("rule_id", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=256), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("feature", sa.String(length=500), nullable=False),
        sa.Column("severity", sa.String(length=20), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("open_key", sa.String(length=64), nullable=True),
        sa.Column("opened_at", sa.BigInteger(), nullable=False),
        sa.Column("resolved_at", sa.BigInteger(), nullable=True),
        sa.Column("last_value", sa.Float(precision=53), nullable=True),
        sa.Column("last_window_end", sa.BigInteger(), nullable=False),
        sa.Column("last_run_id", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_alerts")),
        sa.UniqueConstraint("open_key", name=op.f("uq_monitor_alerts_open_key")),
    )
    with op.batch_alter_table("monitor_alerts", schema=None) as batch_op:
        batch_op.create_index("ix_monitor_alerts_model_opened_at", ["model", "opened_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("monitor_alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_monitor_alerts_model_opened_at")
    op.drop_table("monitor_alerts")
    with op.batch_alter_table("monitor_alert_rules", schema=None) as batch_op:
        batch_op.drop_index("ix_monitor_alert_rules_model")
    op.drop_table("monitor_alert_rules")
    with op.batch_alter_table("monitor_points", schema=None) as batch_op:
        batch_op.drop_index("ix_monitor_points_model_window_end")
    op.drop_table("monitor_points")
    with op.batch_alter_table("monitor_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_monitor_runs_model_started")
    op.drop_table("monitor_runs")
    op.drop_table("monitor_profiles")
