"""``/api/conveyor/v1/registry/approvals``: promotion requests and their decisions over HTTP.

Routes translate to :class:`~conveyor.registry.ApprovalService` calls and back. The
caller is the request's :class:`~conveyor.identity.RequestContext` (left by the auth
middleware); without ``--auth`` there is none, and the service refuses to request or
decide, since it cannot tell who acts. Reads (list, get) work either way.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from conveyor.identity import RequestContext
from conveyor.registry import ApprovalService
from conveyor.server.auth import APPROVALS_PREFIX
from conveyor.server.requests import json_body, required, string


def _ctx(request: Request) -> RequestContext:
    """The authenticated caller, or an anonymous remote one when auth is off."""
    found = getattr(request.state, "context", None)
    if found is not None:
        return found
    return RequestContext(None, source=request.client.host if request.client else "unknown")


def build_router(approvals: ApprovalService) -> APIRouter:
    """The approval routes, bound to one approval service."""
    router = APIRouter(prefix=APPROVALS_PREFIX, tags=["conveyor: approvals"])

    @router.post("", summary="Request that a protected alias point at a version")
    async def request_promotion(request: Request) -> dict[str, Any]:
        data = await json_body(request)
        found = await run_in_threadpool(
            approvals.request_promotion,
            string(data, "name", need=True) or "",
            required(data, "version"),
            string(data, "alias", need=True) or "",
            string(data, "reason", need=True) or "",
            _ctx(request),
        )
        return found.to_json()

    @router.get("", summary="Approval requests, newest first")
    def list_requests(status: str | None = None, name: str | None = None) -> dict[str, Any]:
        return {"requests": [r.to_json() for r in approvals.list_requests(status, name)]}

    @router.get("/{request_id}", summary="One approval request, with its evidence")
    def get_request(request_id: str) -> dict[str, Any]:
        return approvals.get_request(request_id).to_json()

    @router.post("/{request_id}/approve", summary="Approve, and make the alias move")
    async def approve(request_id: str, request: Request) -> dict[str, Any]:
        reason = string(await json_body(request), "reason", need=True) or ""
        found = await run_in_threadpool(approvals.approve, request_id, reason, _ctx(request))
        return found.to_json()

    @router.post("/{request_id}/reject", summary="Reject (or, as its requester, withdraw)")
    async def reject(request_id: str, request: Request) -> dict[str, Any]:
        reason = string(await json_body(request), "reason", need=True) or ""
        found = await run_in_threadpool(approvals.reject, request_id, reason, _ctx(request))
        return found.to_json()

    return router
