"""``/api/conveyor/v1/registry/approvals`` and ``…/policies``: four eyes over HTTP.

Approvals are promotion requests and their decisions; policies say which aliases are
protected and what evidence a request needs (``PUT`` needs ``admin``, checked by the
service, since policies decide what the four eyes guard).

Routes translate to :class:`~conveyor.registry.ApprovalService` calls and back. The
caller is the request's :class:`~conveyor.identity.RequestContext` (left by the auth
middleware); without ``--auth`` there is none, and the service refuses to request or
decide, since it cannot tell who acts. Reads (list, get) work either way.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from conveyor.errors import InvalidInput
from conveyor.identity import RequestContext
from conveyor.registry import ApprovalService, MetricThreshold
from conveyor.server.auth import APPROVALS_PREFIX
from conveyor.server.requests import integer, json_body, required, string
from conveyor.store.sql.approval_entities import DEFAULT_EXPIRY_HOURS

POLICIES_PREFIX = "/api/conveyor/v1/registry/policies"


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


def build_policy_router(approvals: ApprovalService) -> APIRouter:
    """Read and set alias policies; ``name`` may be ``*`` for every model."""
    router = APIRouter(prefix=POLICIES_PREFIX, tags=["conveyor: approvals"])

    @router.get("/{name}/{alias}", summary="The policy in force for a model's alias")
    def get_policy(name: str, alias: str) -> dict[str, Any]:
        return approvals.get_policy(name, alias).to_json()

    @router.put("/{name}/{alias}", summary="Set what moving a model's alias needs (admin)")
    async def set_policy(name: str, alias: str, request: Request) -> dict[str, Any]:
        data = await json_body(request)
        found = await run_in_threadpool(
            lambda: approvals.set_policy(
                name,
                alias,
                protected=_flag(data, "protected", default=True),
                metrics=_thresholds(data),
                require_model_card=_flag(data, "require_model_card"),
                require_validation_step=string(data, "require_validation_step"),
                require_reproducible=_flag(data, "require_reproducible"),
                expiry_hours=integer(data, "expiry_hours", default=DEFAULT_EXPIRY_HOURS) or 0,
                ctx=_ctx(request),
            )
        )
        return found.to_json()

    return router


def _flag(data: dict[str, Any], field: str, *, default: bool = False) -> bool:
    value = data.get(field, default)
    if not isinstance(value, bool):
        raise InvalidInput(f"'{field}' must be true or false, got {value!r}")
    return value


def _thresholds(data: dict[str, Any]) -> list[MetricThreshold | str]:
    """``metrics``: a list of ``"holdout/auc >= 0.8"`` strings or ``{metric, op, value, dataset}``."""
    items = data.get("metrics", [])
    if not isinstance(items, list):
        raise InvalidInput(f"'metrics' must be a list of thresholds, got {type(items).__name__}")
    return [MetricThreshold.from_json(i) if isinstance(i, dict) else _text(i) for i in items]


def _text(item: object) -> str:
    if not isinstance(item, str):
        raise InvalidInput(f"A threshold is a string like 'holdout/auc >= 0.8' or an object, got {item!r}")
    return item
