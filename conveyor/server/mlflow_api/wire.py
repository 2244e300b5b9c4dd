"""MLflow's JSON wire format: reading requests and writing entities, with MLflow's error messages.

MLflow clients build requests from protobuf messages, so the server must accept what
protobuf's JSON mapping allows: int64 fields as numbers *or* strings of digits, doubles
as numbers or the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``, enums by name
(or number), and — for GET requests — every field as a query parameter, repeated fields
as repeated keys. Responses use proto field names, ``experiment_id`` always a string,
int64 as numbers and non-finite doubles as those strings (orjson would write ``null``).

Why hand-written instead of pydantic models: a log-batch request carries up to 1,000
metric objects, and per-object model validation costs more than the database write.
Each getter here checks one field and raises :class:`~conveyor.errors.InvalidInput` with
the message MLflow's own server gives ("Missing value for required parameter 'run_id'",
"Invalid value 31 for parameter 'run_id' supplied"), which MLflow's tests match on.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson
from fastapi import Request, Response

from conveyor.artifacts import safe_relpath
from conveyor.errors import InvalidInput
from conveyor.server.requests import parse_json_object
from conveyor.store.entities import (
    DatasetInput,
    Experiment,
    Metric,
    Run,
    RunInfo,
    ViewType,
)

#: Requests other than log-batch: large enough for a dataset profile (16 MB) plus schema.
MAX_BODY_BYTES = 32 * 1024 * 1024
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_NON_FINITE = {"NaN": math.nan, "nan": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_INT_TEXT = re.compile(r"^-?[0-9]+$")
_VIEW_TYPES = {"1": ViewType.ACTIVE_ONLY, "2": ViewType.DELETED_ONLY, "3": ViewType.ALL}
_EMPTY = b"{}"


# -- errors ---------------------------------------------------------------------------------


def _shown(value: object) -> str:
    """The value as MLflow prints it in messages: JSON, so 31 stays 31 and "x" is quoted."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return repr(value)


def missing(field: str) -> InvalidInput:
    return InvalidInput(f"Missing value for required parameter '{field}'.")


def invalid(field: str, value: object, expected: str) -> InvalidInput:
    return InvalidInput(
        f"Invalid value {_shown(value)} for parameter '{field}' supplied: expected {expected}, "
        f"got {type(value).__name__}."
    )


# -- reading requests -----------------------------------------------------------------------


class Fields:
    """Typed access to one request's fields, wherever they came from (JSON body or query).

    ``data`` maps names to JSON values; for query strings every value is a list of
    strings (``from_query``), and scalar getters take the last one, as protobuf does.
    """

    __slots__ = ("data", "query")

    def __init__(self, data: Mapping[str, Any], *, query: bool = False) -> None:
        self.data = data
        self.query = query

    @classmethod
    def from_query(cls, request: Request) -> Fields:
        grouped: dict[str, list[str]] = {}
        for key, value in request.query_params.multi_items():
            grouped.setdefault(key, []).append(value)
        return cls(grouped, query=True)

    def raw(self, name: str) -> Any:
        value = self.data.get(name)
        if self.query and isinstance(value, list):
            return value[-1] if value else None
        return value

    def text(self, name: str, *, default: str | None = None) -> str | None:
        """An optional string field."""
        value = self.raw(name)
        if value is None:
            return default
        if not isinstance(value, str):
            raise invalid(name, value, "a string")
        return value

    def need_text(self, name: str) -> str:
        """A required string field: absent, null or empty is MLflow's "Missing value" error."""
        value = self.raw(name)
        if value is None or value == "":
            raise missing(name)
        if not isinstance(value, str):
            raise invalid(name, value, "a string")
        return value

    def present_text(self, name: str) -> str:
        """A required string that may be empty, such as a tag or param value."""
        value = self.raw(name)
        if value is None:
            raise missing(name)
        if not isinstance(value, str):
            raise invalid(name, value, "a string")
        return value

    def run_id(self) -> str:
        """``run_id``, or the legacy ``run_uuid`` that older clients send instead."""
        value = self.text("run_id") or self.text("run_uuid")
        if not value:
            raise missing("run_id")
        return value

    def experiment_id(self, name: str = "experiment_id") -> str:
        """A required experiment id; strings on the wire, but a JSON integer is accepted too."""
        value = self.raw(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return self.need_text(name)

    def integer(self, name: str, *, default: int | None = None) -> int | None:
        """An optional int64, sent as a JSON number or, as protobuf JSON allows, as a string."""
        value = self.raw(name)
        if value is None or value == "":
            return default
        number = to_int(value)
        if number is None:
            raise invalid(name, value, "an integer")
        if not INT64_MIN <= number <= INT64_MAX:
            raise InvalidInput(
                f"Invalid value {_shown(value)} for parameter '{name}' supplied: not an int64."
            )
        return number

    def integer_or(self, name: str, default: int) -> int:
        """An int64 that falls back to ``default`` when absent."""
        number = self.integer(name)
        return default if number is None else number

    def need_integer(self, name: str) -> int:
        number = self.integer(name)
        if number is None:
            raise missing(name)
        return number

    def need_double(self, name: str) -> float:
        """A required double: a JSON number, a numeric string, ``"NaN"`` or ``"±Infinity"``."""
        value = self.raw(name)
        if value is None:
            raise missing(name)
        number = to_float(value)
        if number is None:
            raise invalid(name, value, "a number")
        return number

    def boolean(self, name: str, *, default: bool = False) -> bool:
        value = self.raw(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise invalid(name, value, "a boolean")

    def text_list(self, name: str) -> list[str]:
        """A repeated string field: a JSON list, or repeated query keys; a lone string is one item."""
        value = self.data.get(name)
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list):
            raise invalid(name, value, "a list of strings")
        for item in value:
            if not isinstance(item, str):
                raise invalid(name, value, "a list of strings")
        return value

    def objects(self, name: str) -> list[Fields]:
        """A repeated message field, each item wrapped for typed access."""
        value = self.data.get(name)
        if value is None:
            return []
        if self.query or not isinstance(value, list):
            raise invalid(name, value, "a list of objects")
        items = []
        for item in value:
            if not isinstance(item, dict):
                raise invalid(name, value, "a list of objects")
            items.append(Fields(item))
        return items

    def need_message(self, name: str) -> Fields:
        """A required nested message, wrapped for typed access."""
        value = self.data.get(name)
        if value is None:
            raise missing(name)
        if self.query or not isinstance(value, dict):
            raise invalid(name, value, "an object")
        return Fields(value)

    def key_values(self, name: str, *, value_required: bool = False) -> list[tuple[str, str]]:
        """``[{key, value}]`` pairs (tags, params); an absent value is ``""`` as in protobuf."""
        pairs = []
        for item in self.objects(name):
            value = item.present_text("value") if value_required else item.text("value", default="")
            pairs.append((item.need_text("key"), value or ""))
        return pairs

    def view_type(self, name: str) -> ViewType:
        value = self.raw(name)
        if value is None or value == "":
            return ViewType.ACTIVE_ONLY
        text = str(value)
        if text in _VIEW_TYPES:
            return _VIEW_TYPES[text]
        try:
            return ViewType(text)
        except ValueError:
            raise InvalidInput(
                f"Invalid value {_shown(value)} for parameter '{name}' supplied: "
                "use ACTIVE_ONLY, DELETED_ONLY or ALL."
            ) from None


def to_int(value: object) -> int | None:
    """int64 from a JSON number or digit string; ``None`` when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INT_TEXT.match(value):
        return int(value)
    return None


def to_float(value: object) -> float | None:
    """A double from a JSON number, a numeric string or protobuf's non-finite spellings."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        if value in _NON_FINITE:
            return _NON_FINITE[value]
        try:
            return float(value)
        except ValueError:
            return None
    return None


def too_large(size: int, limit: int) -> InvalidInput:
    return InvalidInput(f"The request body is {size} bytes; this endpoint accepts at most {limit} bytes.")


async def read_body(
    request: Request,
    limit: int = MAX_BODY_BYTES,
    refuse: Callable[[int, int], InvalidInput] = too_large,
) -> bytes:
    """The whole body, refused (``refuse(size, limit)``) as soon as it exceeds ``limit`` bytes.

    Why not ``request.body()``: a declared ``Content-Length`` over the limit is refused
    before reading, and a chunked body is cut off at the limit, so an oversized request
    never sits in memory whole.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise refuse(int(declared), limit)
    pieces: list[bytes] = []
    size = 0
    async for piece in request.stream():
        size += len(piece)
        if size > limit:
            raise refuse(size, limit)
        pieces.append(piece)
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


async def read_fields(request: Request, limit: int = MAX_BODY_BYTES) -> Fields:
    """The request's fields: query parameters for GET, the JSON body otherwise."""
    if request.method == "GET":
        return Fields.from_query(request)
    return parse_body(await read_body(request, limit))


def parse_body(raw: bytes) -> Fields:
    return Fields(parse_json_object(raw))


def artifact_path(path: str) -> str:
    """A relative artifact path, refused with MLflow's exact message ``Invalid path``."""
    try:
        return safe_relpath(path)
    except InvalidInput:
        raise InvalidInput("Invalid path") from None


# -- writing responses ----------------------------------------------------------------------


def ok(payload: object | None = None) -> Response:
    """A 200 JSON response; ``None`` is MLflow's empty message ``{}``."""
    body = _EMPTY if payload is None else orjson.dumps(payload)
    return Response(content=body, media_type="application/json")


def number(value: float) -> float | str:
    """A double as protobuf JSON writes it: non-finite values become strings."""
    if value - value == 0:  # finite, and faster than math.isfinite on the hot path
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def key_value_list(pairs: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in pairs.items()]


def experiment_json(experiment: Experiment) -> dict[str, Any]:
    return {
        "experiment_id": experiment.experiment_id,
        "name": experiment.name,
        "artifact_location": experiment.artifact_location,
        "lifecycle_stage": experiment.lifecycle_stage.value,
        "last_update_time": experiment.last_update_time,
        "creation_time": experiment.creation_time,
        "tags": key_value_list(experiment.tags),
    }


def run_info_json(info: RunInfo) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "run_id": info.run_id,
        "run_uuid": info.run_id,
        "run_name": info.run_name,
        "experiment_id": info.experiment_id,
        "user_id": info.user_id,
        "status": info.status.value,
        "start_time": info.start_time,
        "artifact_uri": info.artifact_uri,
        "lifecycle_stage": info.lifecycle_stage.value,
    }
    if info.end_time is not None:
        payload["end_time"] = info.end_time
    return payload


def metric_json(metric: Metric) -> dict[str, Any]:
    return {
        "key": metric.key,
        "value": number(metric.value),
        "timestamp": metric.timestamp,
        "step": metric.step,
    }


def dataset_input_json(item: DatasetInput) -> dict[str, Any]:
    ds = item.dataset
    dataset: dict[str, Any] = {
        "name": ds.name,
        "digest": ds.digest,
        "source_type": ds.source_type,
        "source": ds.source,
    }
    if ds.schema is not None:
        dataset["schema"] = ds.schema
    if ds.profile is not None:
        dataset["profile"] = ds.profile
    return {"tags": key_value_list(item.tags), "dataset": dataset}


def run_json(run: Run, model_outputs: Iterable[tuple[str, int]] = ()) -> dict[str, Any]:
    """A run as MLflow's ``Run`` message; ``model_outputs`` are ``(model_id, step)`` pairs."""
    payload: dict[str, Any] = {
        "info": run_info_json(run.info),
        "data": {
            "metrics": [metric_json(m) for m in run.metrics.values()],
            "params": key_value_list(run.params),
            "tags": key_value_list(run.tags),
        },
        "inputs": {"dataset_inputs": [dataset_input_json(i) for i in run.inputs]},
    }
    outputs = [{"model_id": model_id, "step": step} for model_id, step in model_outputs]
    if outputs:
        payload["outputs"] = {"model_outputs": outputs}
    return payload
