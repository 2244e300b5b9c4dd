"""``/api/conveyor/v1/identity``: users, service accounts, tokens and role bindings over HTTP.

Mounted only when authentication is on: without it every caller is anonymous, and an open
identity API would let anyone mint the admin token that is waiting to work once ``--auth``
is switched on. :class:`~conveyor.server.auth.AuthMiddleware` lets only admins in (except
``whoami``), and the service checks the same again with the request's context.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from conveyor.identity import DEFAULT_WORKSPACE, IdentityService, RequestContext
from conveyor.server.auth import IDENTITY_PREFIX
from conveyor.server.requests import integer, json_body, string

T = TypeVar("T")
_DAY_MS = 86_400_000


def _ctx(request: Request) -> RequestContext:
    return request.state.context


async def _call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await run_in_threadpool(fn, *args, **kwargs)


def build_router(identity: IdentityService) -> APIRouter:
    """The identity admin routes, bound to one identity service."""
    router = APIRouter(prefix=IDENTITY_PREFIX, tags=["conveyor: identity"])
    _principal_routes(router, identity)
    _token_routes(router, identity)
    _role_routes(router, identity)
    return router


def _principal_routes(router: APIRouter, identity: IdentityService) -> None:
    @router.get("/whoami", summary="The caller's principal and roles")
    def whoami(request: Request) -> dict[str, Any]:
        principal = _ctx(request).principal
        return {} if principal is None else principal.to_json()

    @router.get("/principals", summary="Users and service accounts")
    def list_principals() -> dict[str, Any]:
        return {"principals": [p.to_json() for p in identity.list_principals()]}

    @router.post("/users", summary="Create a user, optionally with a password")
    async def create_user(request: Request) -> dict[str, Any]:
        data = await json_body(request)
        principal = await _call(
            identity.create_user,
            string(data, "name", need=True),
            _ctx(request),
            display_name=string(data, "display_name"),
            password=string(data, "password"),
        )
        return principal.to_json()

    @router.post("/service-accounts", summary="Create a service account (tokens only)")
    async def create_service_account(request: Request) -> dict[str, Any]:
        data = await json_body(request)
        principal = await _call(
            identity.create_service_account,
            string(data, "name", need=True),
            _ctx(request),
            display_name=string(data, "display_name"),
        )
        return principal.to_json()

    @router.put("/users/{name}/password", summary="Set a user's password")
    async def set_password(name: str, request: Request) -> dict[str, Any]:
        data = await json_body(request)
        await _call(identity.set_password, name, string(data, "password", need=True), _ctx(request))
        return {}

    @router.post("/principals/{name}/disable", summary="Disable a principal; its credentials stop working")
    def disable(name: str, request: Request) -> dict[str, Any]:
        return identity.set_disabled(name, True, _ctx(request)).to_json()

    @router.post("/principals/{name}/enable", summary="Enable a disabled principal again")
    def enable(name: str, request: Request) -> dict[str, Any]:
        return identity.set_disabled(name, False, _ctx(request)).to_json()


def _token_routes(router: APIRouter, identity: IdentityService) -> None:
    @router.get("/tokens", summary="API tokens (never their secrets)")
    def list_tokens(principal: str | None = None) -> dict[str, Any]:
        return {"tokens": [asdict(t) for t in identity.list_tokens(principal)]}

    @router.post("/principals/{name}/tokens", summary="Issue an API token; the secret is in this answer only")
    async def issue_token(name: str, request: Request) -> dict[str, Any]:
        data = await json_body(request)
        days = integer(data, "expires_in_days", default=90)
        issued = await _call(
            identity.issue_token,
            name,
            _ctx(request),
            name=string(data, "name", default="default") or "default",
            expires_in_ms=None if days == 0 else (days or 0) * _DAY_MS,
        )
        return {"token": asdict(issued.token), "secret": issued.secret}

    @router.post("/tokens/{token_id}/revoke", summary="Revoke an API token")
    def revoke_token(token_id: str, request: Request) -> dict[str, Any]:
        return {"token": asdict(identity.revoke_token(token_id, _ctx(request)))}


def _role_routes(router: APIRouter, identity: IdentityService) -> None:
    @router.get("/workspaces", summary="Workspaces")
    def list_workspaces() -> dict[str, Any]:
        return {"workspaces": identity.list_workspaces()}

    @router.post("/workspaces", summary="Create a workspace")
    async def create_workspace(request: Request) -> dict[str, Any]:
        data = await json_body(request)
        await _call(identity.create_workspace, string(data, "name", need=True), _ctx(request))
        return {}

    @router.get("/role-bindings", summary="Who holds which role where")
    def list_bindings(principal: str | None = None, workspace: str | None = None) -> dict[str, Any]:
        return {"role_bindings": [asdict(b) for b in identity.list_bindings(principal, workspace)]}

    @router.post("/role-bindings", summary="Grant a role in a workspace")
    async def grant(request: Request) -> dict[str, Any]:
        data = await json_body(request)
        binding = await _call(identity.grant, *_binding_args(data), _ctx(request), _workspace(data))
        return asdict(binding)

    @router.post("/role-bindings/revoke", summary="Revoke a role in a workspace")
    async def revoke(request: Request) -> dict[str, Any]:
        data = await json_body(request)
        await _call(identity.revoke, *_binding_args(data), _ctx(request), _workspace(data))
        return {}


def _binding_args(data: dict[str, Any]) -> tuple[str, str]:
    return string(data, "principal", need=True) or "", string(data, "role", need=True) or ""


def _workspace(data: dict[str, Any]) -> str:
    return string(data, "workspace", default=DEFAULT_WORKSPACE) or DEFAULT_WORKSPACE
