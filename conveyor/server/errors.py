"""The one place where errors become HTTP responses.

Bodies follow MLflow's shape, ``{"error_code": …, "message": …}``, on every route, so
MLflow clients and ours parse the same thing. Anything that is not a ``ConveyorError``
is logged with its traceback and answered as a plain 500 without internals.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from conveyor.errors import ConveyorError
from conveyor.server.responses import JSON

log = logging.getLogger("conveyor.server")

_HTTP_CODES = {
    400: "BAD_REQUEST",
    404: "ENDPOINT_NOT_FOUND",
    405: "ENDPOINT_NOT_FOUND",
    413: "REQUEST_LIMIT_EXCEEDED",
    415: "BAD_REQUEST",
}


def error_response(error: ConveyorError) -> JSON:
    return JSON(error.to_json(), status_code=error.http_status)


async def _conveyor_error(_request: Request, exc: Exception) -> JSON:
    assert isinstance(exc, ConveyorError)
    return error_response(exc)


async def _validation_error(_request: Request, exc: Exception) -> JSON:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    field = ".".join(str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path"))
    message = f"Invalid value for parameter '{field}': {first.get('msg', 'invalid')}"
    return JSON({"error_code": "INVALID_PARAMETER_VALUE", "message": message}, status_code=400)


async def _http_error(_request: Request, exc: Exception) -> JSON:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "INTERNAL_ERROR" if exc.status_code >= 500 else "BAD_REQUEST")
    return JSON({"error_code": code, "message": str(exc.detail)}, status_code=exc.status_code)


async def _unexpected(request: Request, exc: Exception) -> JSON:
    log.exception("Unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSON(
        {"error_code": "INTERNAL_ERROR", "message": "Internal server error; see the server log."},
        status_code=500,
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ConveyorError, _conveyor_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
