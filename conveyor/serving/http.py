"""HTTP pieces both protocols share: the request id, body limits, errors, the access log.

:func:`handle_infer` is the one inference handler: a protocol supplies how to check the
content type, decode the body and encode the answer (:class:`WireProtocol`), and gets
the same limits, timeout, error bodies, metrics and access log as the other protocol.

Status codes: 400 malformed or invalid input (with field-level ``details``), 404
unknown model or version, 413 body over the model's limit, 415 unsupported content
type, 500 the model raised (no traceback sent; it is logged under the request id), 503
still loading, 504 past the model's timeout.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any, Protocol

import orjson
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor.errors import ConveyorError
from conveyor.serving.errors import PayloadTooLarge, PredictTimeout, error_body
from conveyor.serving.runtime import InferResult, ServingRuntime, labels_of
from conveyor.serving.served import ServedModel
from conveyor.serving.validation import InputSpec, RawInputs

__all__ = ["RequestIdMiddleware", "WireProtocol", "handle_infer", "json_response"]

access_log = logging.getLogger("conveyor.serving.access")
log = logging.getLogger("conveyor.serving")

#: Longest request id kept from a client's ``X-Request-ID``.
MAX_REQUEST_ID = 100
VARIANT_HEADER = "x-conveyor-variant"
JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


class Payload(Protocol):
    """A decoded request body: it reads its inputs by the spec of the version that answers."""

    proba: bool

    def parse(self, spec: InputSpec) -> RawInputs: ...


class WireProtocol(Protocol):
    """What a protocol module supplies to :func:`handle_infer`."""

    name: str

    def media_type(self, headers: Headers) -> str:
        """The body's kind from the headers; raises ``UnsupportedMediaType`` (415)."""
        ...

    def decode(self, media: str, headers: Headers, body: bytes) -> Payload:
        """The payload; raises ``RequestRejected`` for a malformed body."""
        ...

    def encode(self, result: InferResult, payload: Payload, request_id: str) -> Response: ...


def json_response(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content, option=JSON_OPTIONS), status, headers, "application/json")


def request_id(scope: Scope) -> str:
    """The id :class:`RequestIdMiddleware` gave this request."""
    return str(scope.get("state", {}).get("request_id", ""))


def error_response(error: ConveyorError, rid: str) -> Response:
    return json_response(error_body(error, rid), error.http_status)


async def handle_infer(
    request: Request,
    runtime: ServingRuntime,
    wire: WireProtocol,
    model: str,
    version: str | None = None,
) -> Response:
    """Answer one inference request; see the module docstring."""
    started = time.perf_counter()
    rid = request_id(request.scope)
    info: dict[str, ServedModel] = {}
    gauge = None
    try:
        route = runtime.route(model)
        gauge = runtime.metrics.in_flight.labels(route.name)
        gauge.inc()
        async with asyncio.timeout(route.config.timeout_s):
            media = wire.media_type(request.headers)
            body = await read_body(request, route.config.max_body_bytes)
            payload = wire.decode(media, request.headers, body)
            result = await runtime.infer(
                route,
                payload.parse,
                request_id=rid,
                started=started,
                version=version,
                pinned=request.headers.get(VARIANT_HEADER),
                proba=payload.proba,
                on_served=lambda served: info.setdefault("served", served),
            )
            response = wire.encode(result, payload, rid)
    except TimeoutError:
        response = error_response(PredictTimeout(f"No answer within the model's timeout ({rid})"), rid)
    except ConveyorError as exc:
        response = error_response(exc, rid)
    except ClientDisconnect:
        response = Response(status_code=499)
    except Exception:
        log.exception("Unexpected error answering request %s", rid)
        response = error_response(ConveyorError(f"Internal server error; see the server log ({rid})"), rid)
    finally:
        if gauge is not None:
            gauge.dec()
    _account(runtime, wire.name, info.get("served"), response, started)
    return response


def _account(
    runtime: ServingRuntime, protocol: str, served: ServedModel | None, response: Response, started: float
) -> None:
    """Count the request and time it; name the version that answered in the headers."""
    labels = labels_of(served) if served is not None else ("", "", "", "")
    metrics = runtime.metrics
    metrics.requests.labels(*labels, protocol, str(response.status_code)).inc()
    metrics.request_duration.labels(*labels, protocol).observe(time.perf_counter() - started)
    if served is not None:
        response.headers["X-Conveyor-Model-Version"] = served.version
        response.headers["X-Conveyor-Variant"] = served.variant


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 past ``limit`` bytes (by Content-Length, or while reading).

    Raises:
        PayloadTooLarge: the body is over the limit.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The body ({declared} bytes) is over this model's limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The body is over this model's limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class RequestIdMiddleware:
    """Gives each request an id (the client's ``X-Request-ID``, or a new one), returns it
    in the response's ``X-Request-ID``, and writes one JSON access-log line per request.

    Args:
        app: The app inside.
        access: Write the access log (one ``json`` line per request on the
            ``conveyor.serving.access`` logger, at INFO).
    """

    def __init__(self, app: ASGIApp, *, access: bool = True) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        header = Headers(scope=scope).get("x-request-id", "")[:MAX_REQUEST_ID]
        rid = header or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        answer: dict[str, Any] = {"status": 0}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = rid
                answer.update(
                    status=message["status"],
                    version=headers.get("x-conveyor-model-version"),
                    variant=headers.get("x-conveyor-variant"),
                )
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self.access and access_log.isEnabledFor(logging.INFO):
                _access_line(scope, rid, answer, started)


def _access_line(scope: Scope, rid: str, answer: dict[str, Any], started: float) -> None:
    client = scope.get("client")
    length = Headers(scope=scope).get("content-length", "")
    line = {
        "ts": round(time.time(), 6),
        "request_id": rid,
        "method": scope["method"],
        "path": scope["path"],
        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        "client": client[0] if client else None,
        "bytes_in": int(length) if length.isdigit() else None,
        **answer,
    }
    access_log.info(orjson.dumps(line).decode())
