"""Reading request bodies and fields with precise 400s, shared by the HTTP routers.

Bodies are parsed with orjson straight from bytes: per-field pydantic models cost more
than the database write on the hot logging paths.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request

from conveyor.errors import InvalidInput

#: MLflow refuses log-batch bodies over 1 MB; Conveyor's columnar batches may be larger.
MAX_JSON_BODY = 64 * 1024 * 1024


async def json_body(request: Request, limit: int = MAX_JSON_BODY) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > limit:
        raise InvalidInput(f"Request body is {len(raw)} bytes, at most {limit} are allowed")
    return parse_json_object(raw)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """A JSON object body; an empty body is an empty object (protobuf's empty message)."""
    if not raw or raw.isspace():
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"Malformed JSON in the request body: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInput("The request body must be a JSON object.")
    return data


def required(data: dict[str, Any], field: str) -> Any:
    value = data.get(field)
    if value is None or value == "":
        raise InvalidInput(f"Missing value for required parameter '{field}'")
    return value


def string(data: dict[str, Any], field: str, *, default: str | None = None, need: bool = False) -> str | None:
    value = required(data, field) if need else data.get(field, default)
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"Invalid value {value!r} for parameter '{field}' supplied: must be a string")
    return value


def integer(data: dict[str, Any], field: str, *, default: int | None = None) -> int | None:
    """An int64 sent as a JSON number or, as protobuf JSON allows, as a string of digits."""
    value = data.get(field, default)
    if value is None:
        return None
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"Invalid value {value!r} for parameter '{field}' supplied: must be an integer")
    return value


def string_map(data: dict[str, Any], field: str) -> dict[str, str]:
    value = data.get(field) or {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidInput(f"Invalid value for parameter '{field}': must be an object of strings")
    return value


def string_list(data: dict[str, Any], field: str) -> list[str]:
    value = data.get(field) or []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
        raise InvalidInput(f"Invalid value for parameter '{field}': must be a list of strings")
    return [str(v) for v in value]
