"""A Conveyor server with audit appends switched off: the baseline of ``governance.py`` only.

Conveyor has no switch to turn its audit log off, on purpose; this launcher replaces the
one function every audit record goes through (``append_events``) with one that builds the
records a caller may read back but writes nothing, so the baseline runs the same code
minus the audit's hashing and inserts. Never use it for anything but measuring.

    python benchmarks/registry/_unaudited_server.py PORT      # CONVEYOR_HOME names the folder
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import uvicorn

from conveyor.store.sql import audit, audit_hooks
from conveyor.store.sql.audit import AuditEvent, AuditRecord


def _append_nothing(_conn: Any, events: Sequence[AuditEvent]) -> list[AuditRecord]:
    return [
        AuditRecord(
            seq=0,
            time=0,
            actor=e.actor,
            actor_kind=str(e.actor_kind),
            source=None,
            workspace=e.workspace,
            action=e.action,
            resource_type=e.resource_type,
            resource_id=e.resource_id,
            before_digest=None,
            after_digest=None,
            request_id=None,
            details=None,
            prev_hash="0" * 64,
            hash="0" * 64,
        )
        for e in events
    ]


def main() -> None:
    audit.append_events = _append_nothing
    audit_hooks.append_events = _append_nothing
    from conveyor.server.app import app_from_environment

    uvicorn.run(app_from_environment(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")


if __name__ == "__main__":
    main()
