"""HTTP pieces both protocols share: the request id, body limits, errors, the access log.

:func:`answer_infer` is the one inference handler: a protocol supplies how to check the
content type, decode the body and encode the answer (:class:`WireProtocol`), and gets
the same limits, timeout, error bodies and metrics as the other protocol.

Inference requests take a short way through the server. They are plain ASGI, not
Starlette endpoints: :class:`InferenceRoutes` recognises the inference paths before the
FastAPI app (its middleware, router and exception handlers cost more than a small
model's ``predict``) and :func:`serve_infer` does what :class:`RequestIdMiddleware`
does for the other routes (request id, ``X-Request-ID``, access log) on the way.
Behind a ``root_path`` the same handlers are reached through the router instead
(:class:`InferenceEndpoint`).

Status codes: 400 malformed or invalid input (with field-level ``details``), 404
unknown model or version, 413 body over the model's limit, 415 unsupported content
type, 500 the model raised (no traceback sent; it is logged under the request id), 503
still loading, 504 past the model's timeout.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
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

__all__ = [
    "Answer",
    "InferenceEndpoint",
    "InferenceRoutes",
    "RequestIdMiddleware",
    "WireProtocol",
    "answer_infer",
    "json_response",
]

access_log = logging.getLogger("conveyor.serving.access")
log = logging.getLogger("conveyor.serving")

#: Longest request id kept from a client's ``X-Request-ID``.
MAX_REQUEST_ID = 100
VARIANT_HEADER = "x-conveyor-variant"
JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
#: The request headers an inference request reads (names as ASGI gives them: lower case).
_READ_HEADERS = frozenset(
    {
        b"content-type",
        b"content-length",
        b"x-request-id",
        b"x-conveyor-variant",
        b"inference-header-content-length",
    }
)


class Payload(Protocol):
    """A decoded request body: it reads its inputs by the spec of the version that answers."""

    proba: bool

    def parse(self, spec: InputSpec) -> RawInputs: ...


class WireProtocol(Protocol):
    """What a protocol module supplies to :func:`answer_infer`.

    ``headers`` map lower-case header names to their (first) value.
    """

    name: str

    def media_type(self, headers: Mapping[str, str]) -> str:
        """The body's kind from the headers; raises ``UnsupportedMediaType`` (415)."""
        ...

    def decode(self, media: str, headers: Mapping[str, str], body: bytes) -> Payload:
        """The payload; raises ``RequestRejected`` for a malformed body."""
        ...

    def encode(self, result: InferResult, payload: Payload, request_id: str) -> Answer: ...


@dataclass(slots=True)
class Answer:
    """An inference response before it is sent."""

    status: int
    body: bytes
    media_type: bytes = b"application/json"
    #: Extra headers, as ASGI takes them.
    headers: tuple[tuple[bytes, bytes], ...] = ()


def json_answer(content: Any, status: int = 200) -> Answer:
    return Answer(status, orjson.dumps(content, option=JSON_OPTIONS))


def error_answer(error: ConveyorError, rid: str) -> Answer:
    return json_answer(error_body(error, rid), error.http_status)


def json_response(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content, option=JSON_OPTIONS), status, headers, "application/json")


def request_id(scope: Scope) -> str:
    """The id :class:`RequestIdMiddleware` gave this request."""
    return str(scope.get("state", {}).get("request_id", ""))


def new_request_id() -> str:
    """32 random hex digits, like ``uuid4().hex`` but several times cheaper.

    Request ids only need to be unique, not unguessable; each worker process seeds its
    own generator (Python reseeds ``random`` after a fork).
    """
    return f"{random.getrandbits(128):032x}"


def error_response(error: ConveyorError, rid: str) -> Response:
    return json_response(error_body(error, rid), error.http_status)


def header_map(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """The headers an inference request reads, each name's first value (as Starlette's ``get``)."""
    found: dict[str, str] = {}
    for name, value in raw:
        if name in _READ_HEADERS:
            key = name.decode("latin-1")
            if key not in found:
                found[key] = value.decode("latin-1")
    return found


async def answer_infer(
    scope: Scope,
    receive: Receive,
    headers: Mapping[str, str],
    runtime: ServingRuntime,
    wire: WireProtocol,
    model: str,
    version: str | None,
    rid: str,
    started: float,
) -> tuple[Answer, ServedModel | None]:
    """Answer one inference request, counted in the metrics; see the module docstring."""
    served: ServedModel | None = None
    gauge = None

    def on_served(version_served: ServedModel) -> None:
        nonlocal served
        if served is None:
            served = version_served

    deadline = None
    try:
        route = runtime.route(model)
        gauge = runtime.metrics.in_flight_of(route.name)
        gauge.inc()
        timeout_s = route.config.timeout_s
        deadline = runtime.deadlines.start(timeout_s)  # asyncio.timeout's job, cheaper
        media = wire.media_type(headers)
        body = await read_asgi_body(receive, headers.get("content-length"), route.config.max_body_bytes)
        payload = wire.decode(media, headers, body)
        result = await runtime.infer(
            route,
            payload.parse,
            request_id=rid,
            started=started,
            version=version,
            pinned=headers.get(VARIANT_HEADER),
            proba=payload.proba,
            on_served=on_served,
        )
        answer = wire.encode(result, payload, rid)
    except asyncio.CancelledError:
        if deadline is None or not runtime.deadlines.timed_out(deadline):
            raise
        answer = error_answer(PredictTimeout(f"No answer within the model's timeout ({rid})"), rid)
    except ConveyorError as exc:
        answer = error_answer(exc, rid)
    except ClientDisconnect:
        answer = Answer(499, b"", b"")
    except Exception:
        log.exception("Unexpected error answering request %s", rid)
        answer = error_answer(ConveyorError(f"Internal server error; see the server log ({rid})"), rid)
    finally:
        if deadline is not None:
            runtime.deadlines.finish(deadline, timeout_s)
        if gauge is not None:
            gauge.dec()
    runtime.metrics.answered(
        labels_of(served) if served is not None else None, wire.name, answer.status, started
    )
    return answer, served


def answer_headers(answer: Answer, served: ServedModel | None, rid: str | None) -> list[tuple[bytes, bytes]]:
    """The response headers: length and type, what answered, and the request id."""
    headers = [(b"content-length", str(len(answer.body)).encode())]
    if answer.media_type:
        headers.append((b"content-type", answer.media_type))
    headers.extend(answer.headers)
    if served is not None:
        headers.append((b"x-conveyor-model-version", served.version.encode("latin-1")))
        headers.append((b"x-conveyor-variant", served.variant.encode("latin-1")))
    if rid is not None:
        headers.append((b"x-request-id", rid.encode("latin-1")))
    return headers


async def serve_infer(
    scope: Scope,
    receive: Receive,
    send: Send,
    runtime: ServingRuntime,
    wire: WireProtocol,
    model: str,
    version: str | None,
    access: bool,
) -> None:
    """One inference request, answered directly over ASGI (request id and access log included)."""
    started = time.perf_counter()
    headers = header_map(scope["headers"])
    rid = headers.get("x-request-id", "")[:MAX_REQUEST_ID] or new_request_id()
    answer, served = await answer_infer(scope, receive, headers, runtime, wire, model, version, rid, started)
    await send(
        {
            "type": "http.response.start",
            "status": answer.status,
            "headers": answer_headers(answer, served, rid),
        }
    )
    await send({"type": "http.response.body", "body": answer.body})
    if access and access_log.isEnabledFor(logging.INFO):
        outcome = {
            "status": answer.status,
            "version": served.version if served is not None else None,
            "variant": served.variant if served is not None else None,
        }
        _access_line(scope, rid, outcome, started, headers.get("content-length", ""))


class InferenceEndpoint:
    """An inference route for the router (behind :class:`RequestIdMiddleware`): ``{name}``
    and ``{version}`` come from the path; without ``{name}`` the default model answers."""

    def __init__(self, runtime: ServingRuntime, wire: WireProtocol) -> None:
        self.runtime = runtime
        self.wire = wire

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        params = scope.get("path_params", {})
        model = params.get("name", self.runtime.deployment.default)
        headers = header_map(scope["headers"])
        version = params.get("version")
        answer, served = await answer_infer(
            scope, receive, headers, self.runtime, self.wire, model, version, request_id(scope), started
        )
        await send(
            {
                "type": "http.response.start",
                "status": answer.status,
                "headers": answer_headers(answer, served, None),
            }
        )
        await send({"type": "http.response.body", "body": answer.body})


class InferenceRoutes:
    """Finds the inference routes of both protocols from the path, before any other routing.

    ``POST /invocations``, ``/models/{m}[/versions/{v}]/invocations`` (MLflow) and
    ``/v2/models/{m}[/versions/{v}]/infer`` (OIP). Anything else, and any request under a
    ``root_path``, goes to the app's router.
    """

    def __init__(
        self, runtime: ServingRuntime, mlflow: WireProtocol, oip: WireProtocol, *, access: bool
    ) -> None:
        self.runtime = runtime
        self.mlflow = mlflow
        self.oip = oip
        self.access = access

    def match(self, scope: Scope) -> tuple[WireProtocol, str, str | None] | None:
        """``(protocol, model, version)`` for an inference request, else None."""
        if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
            return None
        path: str = scope["path"]
        if path == "/invocations":
            return self.mlflow, self.runtime.deployment.default, None
        parts = path.split("/")
        n = len(parts)
        if n < 4 or parts[0] or not all(parts[1:]):
            return None
        if parts[1] == "models" and parts[-1] == "invocations":
            if n == 4:
                return self.mlflow, parts[2], None
            if n == 6 and parts[3] == "versions":
                return self.mlflow, parts[2], parts[4]
        elif parts[1] == "v2" and parts[2] == "models" and parts[-1] == "infer":
            if n == 5:
                return self.oip, parts[3], None
            if n == 7 and parts[4] == "versions":
                return self.oip, parts[3], parts[5]
        return None

    async def serve(
        self, scope: Scope, receive: Receive, send: Send, found: tuple[WireProtocol, str, str | None]
    ) -> None:
        wire, model, version = found
        await serve_infer(scope, receive, send, self.runtime, wire, model, version, self.access)


async def read_asgi_body(receive: Receive, declared: str | None, limit: int) -> bytes:
    """The body, refused with 413 past ``limit`` bytes (by Content-Length, or while reading).

    Raises:
        PayloadTooLarge: the body is over the limit.
        ClientDisconnect: the client went away before sending it all.
    """
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The body ({declared} bytes) is over this model's limit of {limit} bytes")
    message = await receive()
    if message["type"] != "http.request":
        raise ClientDisconnect()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise PayloadTooLarge(f"The body is over this model's limit of {limit} bytes")
        return body
    chunks = [body]
    size = len(body)
    while True:
        if size > limit:
            raise PayloadTooLarge(f"The body is over this model's limit of {limit} bytes")
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    if size > limit:
        raise PayloadTooLarge(f"The body is over this model's limit of {limit} bytes")
    return b"".join(chunks)


async def read_body(request: Request, limit: int) -> bytes:
    """A Starlette request's body, refused with 413 past ``limit`` bytes.

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
        rid = header or new_request_id()
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


def _access_line(
    scope: Scope, rid: str, answer: dict[str, Any], started: float, length: str | None = None
) -> None:
    client = scope.get("client")
    if length is None:
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
    # ``access_log.info`` without its search of the stack for the caller's file and line,
    # a third of its cost: every access-log line would name this one.
    record = access_log.makeRecord(
        access_log.name, logging.INFO, __file__, 0, orjson.dumps(line).decode(), None, None, "_access_line"
    )
    access_log.handle(record)
