"""Tells the store who is making each request, for its audit records.

:class:`ActorMiddleware` runs on every HTTP request, inside :class:`AuthMiddleware` when
``--auth`` is on, and sets :func:`conveyor.store.actor.acting_as` for the rest of the
request: the authenticated principal when there is one, else ``anonymous``; always the
client's address and a request id (the client's ``X-Request-ID``, or a new one), which it
echoes in the response so a caller can find the records its request left.
"""

from __future__ import annotations

import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor.identity import RequestContext
from conveyor.store.actor import acting_as

#: Longest request id kept (the audit log's column); a longer client id is cut.
MAX_REQUEST_ID = 100


class ActorMiddleware:
    """Sets the audit actor of each HTTP request; see the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ctx = request_context(scope)

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
            None, source=client[0] if client else None, request_id=header or uuid.uuid4().hex
        )
    if ctx.request_id and len(ctx.request_id) > MAX_REQUEST_ID:
        ctx = RequestContext(ctx.principal, ctx.workspace, ctx.source, ctx.request_id[:MAX_REQUEST_ID])
    return ctx
