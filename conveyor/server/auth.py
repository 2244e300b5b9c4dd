"""Authentication at the HTTP edge: who is calling, and a coarse permission per route.

:class:`AuthMiddleware` (installed by ``create_app`` when ``Settings.auth`` is on) turns
the ``Authorization`` header into a :class:`~conveyor.identity.Principal`, refuses a
request without valid credentials with 401 and a ``WWW-Authenticate`` challenge, and one
whose principal lacks the route's permission with 403 naming it. Bodies are MLflow's
``{"error_code", "message"}``, so MLflow clients raise ``RestException`` with
``UNAUTHENTICATED`` / ``PERMISSION_DENIED``.

Each route needs one permission (:func:`required_permission`) in the request's workspace
(:func:`~conveyor.server.actor.request_workspace`): reads need ``read``, mutations
``write``, the identity admin API ``admin``, the audit API ``audit_read`` (for any
method, so a write attempt by a non-auditor is refused before it reaches the router's
405). What the request then sees is confined to that workspace by the store's queries
(:mod:`conveyor.store.sql.scope`). The request's
:class:`~conveyor.identity.RequestContext` is left in ``request.state.context`` for
handlers and the audit log.

It is a plain ASGI middleware rather than a route dependency so that it covers every
route, the MLflow UI copies included, without each router having to remember it.
"""

from __future__ import annotations

import ipaddress
import logging
import uuid

import anyio.to_thread
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from conveyor.errors import ConveyorError, Unauthenticated
from conveyor.identity import IdentityService, Permission, RequestContext, require
from conveyor.server.actor import request_workspace
from conveyor.server.responses import JSON

log = logging.getLogger("conveyor.server")

#: Answered without credentials: probes must work before anyone signs in.
OPEN_PATHS = frozenset({"/health", "/version"})
IDENTITY_PREFIX = "/api/conveyor/v1/identity"
APPROVALS_PREFIX = "/api/conveyor/v1/registry/approvals"
AUDIT_PREFIX = "/api/conveyor/v1/audit"
#: MLflow's webhook API (and its UI copy): webhooks send registry data to any URL, and
#: even a listing shows those URLs, so every method needs `admin`.
WEBHOOK_PREFIXES = ("/api/2.0/mlflow/webhooks", "/ajax-api/2.0/mlflow/webhooks")
#: Identity routes any signed-in principal may call, whatever its roles.
_SELF_SERVICE = frozenset({f"{IDENTITY_PREFIX}/whoami"})
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_ALIAS_SUFFIX = "/mlflow/registered-models/alias"
#: POST endpoints that only read: searches and counts (MLflow sends searches as POST).
_READ_POST_SUFFIXES = ("/search", "/count")
_CHALLENGES = ('Bearer realm="conveyor"', 'Basic realm="conveyor"')


def required_permission(method: str, path: str) -> Permission | tuple[Permission, ...] | None:
    """The permission a route needs (a tuple: any one of them); None: any signed-in principal."""
    if path.startswith(IDENTITY_PREFIX):
        return None if path in _SELF_SERVICE else Permission.ADMIN
    if path.startswith(AUDIT_PREFIX):
        return Permission.AUDIT_READ
    if path.startswith(WEBHOOK_PREFIXES):
        return Permission.ADMIN
    if path.startswith(APPROVALS_PREFIX) and method == "POST":
        # Approving needs `approve`, not `write`; a requester may withdraw (reject) their
        # own request, so the service checks rejections in finer detail.
        if path.endswith("/approve"):
            return Permission.APPROVE
        if path.endswith("/reject"):
            return Permission.READ
    if method in _READ_METHODS or (method == "POST" and path.rstrip("/").endswith(_READ_POST_SUFFIXES)):
        return Permission.READ
    if path.endswith(_ALIAS_SUFFIX):
        # Moving an alias changes what servers following it serve: release automation
        # (deployers) may, without the write access that editing models needs.
        return (Permission.WRITE, Permission.DEPLOY)
    return Permission.WRITE


class AuthMiddleware:
    """Authenticates every HTTP request except :data:`OPEN_PATHS`; see the module docstring."""

    def __init__(self, app: ASGIApp, identity: IdentityService) -> None:
        self.app = app
        self.identity = identity

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            ctx = await self._context(request)
        except ConveyorError as exc:
            await _refusal(exc)(scope, receive, send)
            return
        scope.setdefault("state", {})["context"] = ctx
        await self.app(scope, receive, send)

    async def _context(self, request: Request) -> RequestContext:
        header = request.headers.get("authorization")
        principal = self.identity.recently_verified(header) or await anyio.to_thread.run_sync(
            self.identity.authenticate, header
        )
        workspace = request_workspace(request.scope)
        permission = required_permission(request.method, request.url.path)
        if permission is not None:
            require(principal, permission, workspace)
        return RequestContext(
            principal,
            workspace,
            source=request.client.host if request.client else None,
            request_id=request.headers.get("x-request-id") or uuid.uuid4().hex,
        )


def _refusal(exc: ConveyorError) -> JSON:
    response = JSON(exc.to_json(), status_code=exc.http_status)
    if isinstance(exc, Unauthenticated):
        for challenge in _CHALLENGES:
            response.headers.append("WWW-Authenticate", challenge)
    return response


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: assume it resolves to a reachable interface


def exposure_warning(host: str, auth: bool) -> str | None:
    """The warning for a server anyone on the network may use, or None if it is not one."""
    if auth or is_loopback(host):
        return None
    return (
        f"WARNING: the server listens on {host} without authentication: anyone who can reach "
        "it can read, change and delete every experiment, run and artifact. Start it with "
        "--auth (after `conveyor users create <name> --admin`), or bind 127.0.0.1."
    )
