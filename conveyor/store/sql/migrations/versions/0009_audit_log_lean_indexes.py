"""Audit log: drop the ``time`` and ``actor`` indexes, which every write paid for.

Each tracking write appends an audit record, and each secondary index is one more B-tree
page to change per append. Time ranges need no index of their own: ``seq`` order is time
order, so ``AuditLog.seq_before`` finds a time by binary search on the primary key. Actor
filters are rare, auditor-only reads and scan the log instead.

Plain ``DROP INDEX`` on purpose: SQLite batch mode would rebuild the table and lose the
append-only triggers of revision 0004.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27 02:05:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_audit_log_time", table_name="audit_log")
    op.drop_index("ix_audit_log_actor", table_name="audit_log")


def downgrade() -> None:
    op.create_index("ix_audit_log_actor", "audit_log", ["actor"], unique=False)
    op.create_index("ix_audit_log_time", "audit_log", ["time"], unique=False)
