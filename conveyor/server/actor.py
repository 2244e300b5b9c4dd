"""Tells the store who is making each request, for its audit records.

:class:`ActorMiddleware` runs on every HTTP request, inside :class:`AuthMiddleware` when
``--auth`` is on, and sets :func:`conveyor.store.actor.acting_as` for the rest of the
request: the authenticated principal when there is one, else ``anonymous``; always the
client's address and a request id (the client's ``X-Request-ID``, or a new one), which it
echoes in the response so a caller can find the records its request left.

The workspace of a request is its ``X-Conveyor-Workspace`` header, or ``X-MLFLOW-WORKSPACE``
(what the ``mlflow`` client sends after ``mlflow.set_workspace`` or with
``MLFLOW_WORKSPACE`` set), else ``default``. It reaches the store with the actor and
scopes every query the request makes.
"""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor.errors import ConveyorError
from conveyor.identity import DEFAULT_WORKSPACE, RequestContext, check_name
from conveyor.server.responses import JSON
from conveyor.store.actor import acting_as

#: Longest request id kept (the audit log's column); a longer client id is cut.
MAX_REQUEST_ID = 100
#: The Prometheus route, which may also name the workspace in its query string.
METRICS_PATH = "/metrics"
#: Request headers that name the workspace, first found wins.
WORKSPACE_HEADERS = (b"x-conveyor-workspace", b"x-mlflow-workspace")


class ActorMiddleware:
    """Sets the audit actor of each HTTP request; see the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            ctx = request_context(scope)
        except ConveyorError as exc:
            await JSON(exc.to_json(), status_code=exc.http_status)(scope, receive, send)
            return

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start" and ctx.request_id:
                MutableHeaders(scope=message)["X-Request-ID"] = ctx.request_id
            await send(message)

        with acting_as(ctx.audit_actor()):
            await self.app(scope, receive, send_with_id)


def request_context(scope: Scope) -> RequestContext:
    """The context the auth middleware left, or an anonymous one; request id cut to fit."""
    ctx = scope.get("state", {}).get("context")
    if ctx is None:
        client = scope.get("client")
        header = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        ctx = RequestContext(
            None,
            request_workspace(scope),
            source=client[0] if client else None,
            request_id=header or uuid.uuid4().hex,
        )
    if ctx.request_id and len(ctx.request_id) > MAX_REQUEST_ID:
        ctx = RequestContext(ctx.principal, ctx.workspace, ctx.source, ctx.request_id[:MAX_REQUEST_ID])
    return ctx


def request_workspace(scope: Scope) -> str:
    """The workspace the request names, checked; ``default`` when it names none.

    A header names it; so may ``?workspace=`` on ``/metrics``, because Prometheus sets
    query parameters per scrape job (``params:``) where it cannot always set headers.

    Raises:
        InvalidInput: the header or parameter holds no valid workspace name.
    """
    headers = dict(scope.get("headers") or [])
    for name in WORKSPACE_HEADERS:
        if value := headers.get(name, b"").decode("latin-1").strip():
            return check_name(value)
    if scope.get("path") == METRICS_PATH:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if value := (query.get("workspace") or [""])[-1].strip():
            return check_name(value)
    return DEFAULT_WORKSPACE
