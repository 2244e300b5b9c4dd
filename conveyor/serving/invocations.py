"""MLflow's scoring protocol: ``POST /invocations``, ``/ping``, ``/health``, ``/version``.

Bodies are exactly what ``mlflow models serve`` takes: a JSON object with one of
``dataframe_split``, ``dataframe_records``, ``instances`` or ``inputs`` (and optional
``params``), or CSV with a header row (``text/csv``, and ``application/csv`` as
MLflow's documentation says). The answer is ``{"predictions": [...]}``.

MLflow serves one model per server, at ``/invocations``; here that route answers for
the deployment's default model, and every model also has
``/models/{name}/invocations`` and ``/models/{name}/versions/{v}/invocations``.

Unlike MLflow, JSON goes straight into NumPy columns (rows of numbers for an all-float
signature become one matrix in one call), and unknown columns are refused, not dropped,
unless the deployment says ``unknown_columns: ignore``.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from conveyor._version import __version__
from conveyor.serving.errors import FieldProblem, RequestRejected, UnsupportedMediaType
from conveyor.serving.http import Answer, InferenceEndpoint, json_answer, json_response
from conveyor.serving.runtime import InferResult, ServingRuntime
from conveyor.serving.served import PREDICT, PROBA
from conveyor.serving.validation import TENSOR_INPUT, InputSpec, MatrixColumns, RawInputs

__all__ = ["FORMATS", "MlflowPayload", "MlflowScoring", "routes"]

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_JSON = "application/json"
_CSV = ("text/csv", "application/csv")
_REQUIRED = (
    f"The input must be a JSON dictionary with exactly one of the input fields {set(FORMATS)} "
    "(and optionally 'params')"
)


class MlflowPayload:
    """A decoded ``/invocations`` body: its format and data, read by the answering spec."""

    proba = False

    def __init__(self, kind: str, data: Any) -> None:
        self.kind = kind
        self.data = data
        self._csv: dict[str, np.ndarray] | None = None

    def parse(self, spec: InputSpec) -> RawInputs:
        if self.kind == "csv":
            if self._csv is None:
                self._csv = _read_csv(self.data)
            return self._csv
        if self.kind == "dataframe_split":
            return _split(self.data, spec)
        if self.kind == "dataframe_records":
            return _records(self.data)
        return _tensors(self.data, spec)


class MlflowScoring:
    """Decoding and encoding for :func:`~conveyor.serving.http.answer_infer`."""

    name = "mlflow"

    def media_type(self, headers: Mapping[str, str]) -> str:
        raw = headers.get("content-type")
        if raw == _JSON:  # the usual case, without parsing
            return _JSON
        if not raw:
            raise UnsupportedMediaType(f"Send Content-Type {_JSON}, text/csv or application/csv")
        media, *parameters = (part.strip() for part in raw.split(";"))
        media = media.lower()
        for parameter in parameters:
            key, _, value = parameter.partition("=")
            if key.strip().lower() != "charset":
                raise UnsupportedMediaType(f"Unrecognized content type parameter {key.strip()!r}")
            if value.strip().strip('"').lower() != "utf-8":
                raise UnsupportedMediaType("The scoring server only supports UTF-8")
        if media != _JSON and media not in _CSV:
            raise UnsupportedMediaType(
                f"This server takes {_JSON}, text/csv or application/csv, not {media!r}"
            )
        return media

    def decode(self, media: str, headers: Mapping[str, str], body: bytes) -> MlflowPayload:
        if media in _CSV:
            return MlflowPayload("csv", body)
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise RequestRejected.one("", "format", f"malformed JSON: {exc}") from None
        if not isinstance(document, dict):
            raise RequestRejected.one("", "format", f"{_REQUIRED}; received a {type(document).__name__}")
        if len(document) == 1:  # the usual case: one input field and no params
            (kind,) = document
            if kind in FORMATS:
                return MlflowPayload(kind, document[kind])
        present = [key for key in FORMATS if key in document]
        if len(present) != 1:
            raise RequestRejected.one("", "format", f"{_REQUIRED}; received the fields {sorted(document)}")
        extra = set(document) - {*FORMATS, "params"}
        params = document.get("params") or {}
        if not isinstance(params, dict):
            raise RequestRejected.one("params", "format", "'params' must be an object")
        problems = [FieldProblem(k, "unknown", f"unknown top-level field {k!r}") for k in sorted(extra)]
        problems += [FieldProblem(f"params.{k}", "unknown", "this model takes no params") for k in params]
        if problems:
            raise RequestRejected(problems)
        return MlflowPayload(present[0], document[present[0]])

    def encode(self, result: InferResult, payload: Any, request_id: str) -> Answer:
        outputs = {name: array for name, array in result.outputs.items() if name != PROBA}
        if list(outputs) == [PREDICT]:
            return json_answer({"predictions": _jsonable(outputs[PREDICT])})
        return json_answer({"predictions": {name: _jsonable(a) for name, a in outputs.items()}})


def routes(runtime: ServingRuntime) -> list[Route]:
    """The protocol's routes, bound to ``runtime``."""
    wire = MlflowScoring()

    async def ping(_: Request) -> Response:
        return json_response({"ready": runtime.ready}, 200 if runtime.ready else 503)

    async def version(_: Request) -> Response:
        return PlainTextResponse(__version__)

    invocations = InferenceEndpoint(runtime, wire)

    return [
        Route("/ping", ping, methods=["GET"]),
        Route("/health", ping, methods=["GET"]),
        Route("/version", version, methods=["GET"]),
        Route("/invocations", invocations, methods=["POST"]),
        Route("/models/{name}/invocations", invocations, methods=["POST"]),
        Route("/models/{name}/versions/{version}/invocations", invocations, methods=["POST"]),
    ]


# -- payload shapes -----------------------------------------------------------------------


def _split(data: Any, spec: InputSpec) -> RawInputs:
    """``{"columns": [...], "data": [[...], ...]}`` (pandas' ``orient="split"``)."""
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise RequestRejected.one(
            "", "format", "dataframe_split needs {'columns': [...], 'data': [[...], ...]}"
        )
    columns = data.get("columns")
    if columns is None:
        columns = list(spec.names)
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise RequestRejected.one("", "format", "dataframe_split 'columns' must be a list of names")
    return rows_to_columns(data["data"], columns, spec)


def _records(data: Any) -> RawInputs:
    """``[{"col": value, ...}, ...]`` (pandas' ``orient="records"``)."""
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise RequestRejected.one("", "format", "dataframe_records must be a list of objects")
    names = dict.fromkeys(key for record in data for key in record)
    return {name: [record.get(name) for record in data] for name in names}


def _tensors(data: Any, spec: InputSpec) -> RawInputs:
    """``instances`` / ``inputs`` (TF Serving's row and column formats)."""
    if isinstance(data, dict):
        return data
    if not isinstance(data, list):
        raise RequestRejected.one("", "format", "'instances' and 'inputs' take a list or an object")
    if data and all(isinstance(item, dict) for item in data):
        return _records(data)
    if spec.kind == "dataframe":
        return rows_to_columns(data, list(spec.names), spec)
    return {TENSOR_INPUT if spec.kind != "tensors" else spec.names[0]: data}


def rows_to_columns(rows: Any, names: list[str], spec: InputSpec) -> RawInputs:
    """Rows of values as one list (or array view) per named column.

    Rows of plain numbers for an all-float signature are read as one NumPy matrix: one
    C-level call instead of one per value.

    Raises:
        RequestRejected: not a list of rows, or a row of the wrong length.
    """
    if not isinstance(rows, list):
        raise RequestRejected.one("", "format", "the data must be a list of rows")
    if not rows:
        raise RequestRejected.one("", "empty", "the request has no rows")
    width = len(names)
    if spec.all_float:
        try:
            matrix = np.asarray(rows)
        except ValueError:
            matrix = None
        if (
            matrix is not None
            and matrix.ndim == 2
            and matrix.shape[1] == width
            and matrix.dtype.kind in "iuf"
        ):
            return MatrixColumns(matrix, names)
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width:
            got = f"{len(row)} values" if isinstance(row, list) else type(row).__name__
            raise RequestRejected.one("", "shape", f"row {i} has {got}; expected {width} ({names})")
    return {name: list(values) for name, values in zip(names, zip(*rows, strict=True), strict=True)}


def _read_csv(body: bytes) -> dict[str, np.ndarray]:
    import pandas as pd

    try:
        frame = pd.read_csv(io.BytesIO(body))
    except pd.errors.EmptyDataError:
        raise RequestRejected.one("", "empty", "the CSV body is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise RequestRejected.one("", "format", f"malformed CSV: {exc}") from None
    return {str(column): frame[column].to_numpy() for column in frame.columns}


def _jsonable(array: np.ndarray) -> Any:
    """NumPy arrays orjson writes natively; others (objects, text) as lists."""
    return array if array.dtype.kind in "biuf" and array.dtype.isnative else array.tolist()
