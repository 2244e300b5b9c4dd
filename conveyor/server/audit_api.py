"""``/api/conveyor/v1/audit``: the audit log for auditors, read-only by construction.

Only GET routes exist, so nobody can change the log through the API (a POST or DELETE is
405); with authentication on, :class:`~conveyor.server.auth.AuthMiddleware` lets in only
principals holding ``audit_read`` (the auditor and admin roles). Records are those of the
request's workspace; the export is the whole chain, so only the ``default`` workspace's
auditors (the server's own) may take it. It streams JSON Lines straight from the
database, so archiving a long log holds one batch in memory.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from conveyor.errors import InvalidInput, PermissionDenied
from conveyor.server.auth import AUDIT_PREFIX
from conveyor.store.actor import DEFAULT_WORKSPACE, current_workspace
from conveyor.store.sql.audit import AuditLog, parse_head

#: Most records one page returns; page on with ``since_seq``.
MAX_LIMIT = 1000


def build_router(log: AuditLog) -> APIRouter:
    """The audit routes, bound to one store's log."""
    router = APIRouter(prefix=AUDIT_PREFIX, tags=["conveyor: audit"])

    @router.get("/records", summary="Audit records after a cursor, filtered, oldest first")
    def records(
        since_seq: int = 0,
        limit: int = 100,
        resource: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        since_time: int | None = None,
    ) -> dict[str, Any]:
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
        resource_type, resource_id = _resource(resource)
        found = log.read(
            since_seq,
            limit,
            resource_type=resource_type,
            resource_id=resource_id,
            actor=actor,
            action=action,
            since_time=since_time,
        )
        # A full page may have more behind it; the cursor to pass next is its last seq.
        more = len(found) == limit
        return {"records": [r.to_json() for r in found], "next_since_seq": found[-1].seq if more else None}

    @router.get("/verify", summary="Recompute the hash chain; name the first bad record")
    def verify(expect_head: str | None = None) -> dict[str, Any]:
        pin = None if expect_head is None else parse_head(expect_head)
        return log.verify(expect_head=pin).to_json()

    @router.get("/export", summary="The records after a cursor as JSON Lines, streamed")
    def export(since_seq: int = 0) -> StreamingResponse:
        if current_workspace() != DEFAULT_WORKSPACE:
            raise PermissionDenied(
                "The audit export is the whole hash chain, across workspaces: only auditors of "
                f"the '{DEFAULT_WORKSPACE}' workspace may take it. Read this workspace's records "
                "at /records instead."
            )
        return StreamingResponse(log.export_lines(since_seq), media_type="application/x-ndjson")

    return router


def _resource(text: str | None) -> tuple[str | None, str | None]:
    """``TYPE`` or ``TYPE:ID`` as (type, id); the id may itself contain colons."""
    if text is None:
        return None, None
    resource_type, _, resource_id = text.partition(":")
    if not resource_type:
        raise InvalidInput(f"resource must be TYPE or TYPE:ID, got {text!r}")
    return resource_type, resource_id or None
