"""The Open Inference Protocol (KServe V2) over REST, with the binary tensor data extension.

Routes: ``GET /v2`` (server metadata), ``/v2/health/live``, ``/v2/health/ready``,
``GET /v2/models/{name}[/versions/{v}]`` (model metadata), ``.../ready``, and
``POST .../infer``. ``{v}`` may be a version number, an alias or a variant name
(:mod:`conveyor.serving.traffic`). Health answers carry their meaning both in the status
code (200, or 503 while loading) and in a JSON body, for every kind of client.

Tabular requests: with ``"parameters": {"content_type": "pd"}`` (MLServer's
convention) every input tensor is one column. Without it, tensors named after the
signature's columns are columns too, and a single two-dimensional tensor under another
name is split into the signature's columns in order. Outputs are ``predict`` and, for
classifiers that have it, ``predict_proba`` when requested by name in ``outputs``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from conveyor._version import __version__
from conveyor.errors import ConveyorError
from conveyor.serving.errors import FieldProblem, ModelNotReady, RequestRejected, UnsupportedMediaType
from conveyor.serving.http import (
    JSON_OPTIONS,
    Answer,
    InferenceEndpoint,
    error_response,
    json_answer,
    json_response,
    request_id,
)
from conveyor.serving.oip_codec import datatype_of, decode_tensor, encode_tensor
from conveyor.serving.runtime import InferResult, ServingRuntime
from conveyor.serving.served import PROBA
from conveyor.serving.traffic import ModelRoute
from conveyor.serving.validation import InputSpec, MatrixColumns, RawInputs

__all__ = ["OipPayload", "OpenInferenceProtocol", "model_metadata", "routes"]

_MEDIA = ("application/json", "application/octet-stream")


@dataclass
class OipPayload:
    """A decoded inference request."""

    id: str | None
    tensors: dict[str, np.ndarray]
    #: ``parameters.content_type == "pd"``: one tensor per column.
    pandas: bool = False
    #: The outputs asked for, each with whether to send it as binary data; None: the default.
    requested: list[tuple[str, bool]] | None = None
    binary_output: bool = False
    proba: bool = field(init=False)

    def __post_init__(self) -> None:
        self.proba = any(name == PROBA for name, _ in self.requested or ())

    def parse(self, spec: InputSpec) -> RawInputs:
        """The tensors as the spec's fields; see the module docstring for tabular forms."""
        if spec.kind not in ("dataframe", "free"):
            return self.tensors
        if len(self.tensors) == 1 and not self.pandas and spec.kind == "dataframe":
            ((name, array),) = self.tensors.items()
            if array.ndim == 2 and spec.column(name) is None:
                return _split_matrix(name, array, spec)
        columns = {name: _as_column(array) for name, array in self.tensors.items()}
        return _stacked(columns, spec) or columns


class OpenInferenceProtocol:
    """Decoding and encoding for :func:`~conveyor.serving.http.answer_infer`."""

    name = "oip"

    def media_type(self, headers: Mapping[str, str]) -> str:
        media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if headers.get("inference-header-content-length") is not None:
            return "application/octet-stream"
        if media and media not in _MEDIA:
            raise UnsupportedMediaType(f"Inference requests are {' or '.join(_MEDIA)}, not {media!r}")
        return media or "application/json"

    def decode(self, media: str, headers: Mapping[str, str], body: bytes) -> OipPayload:
        document, binary = _split_body(headers, body)
        inputs = document.get("inputs")
        if not isinstance(inputs, list) or not inputs:
            raise RequestRejected.one("", "format", "an inference request needs a non-empty 'inputs' list")
        parameters = _mapping(document.get("parameters"), "parameters")
        tensors: dict[str, np.ndarray] = {}
        problems: list[FieldProblem] = []
        offset = 0
        for spec in inputs:
            try:
                name, array, offset = decode_tensor(spec, binary, offset)
            except RequestRejected as rejected:
                problems.extend(rejected.problems)
                continue
            if name in tensors:
                problems.append(FieldProblem(name, "format", f"input {name!r} is given twice"))
            tensors[name] = array
        if problems:
            raise RequestRejected(problems)
        request_id = document.get("id")
        return OipPayload(
            id=str(request_id) if request_id is not None else None,
            tensors=tensors,
            pandas=parameters.get("content_type") == "pd",
            requested=_requested_outputs(document.get("outputs")),
            binary_output=parameters.get("binary_data_output") is True,
        )

    def encode(self, result: InferResult, payload: Any, request_id: str) -> Answer:
        assert isinstance(payload, OipPayload)
        outputs = result.outputs
        wanted = payload.requested or [(n, payload.binary_output) for n in outputs if n != PROBA]
        unknown = [n for n, _ in wanted if n not in outputs]
        if unknown:
            raise RequestRejected(
                [FieldProblem(n, "unknown", f"output {n!r} is not one of {sorted(outputs)}") for n in unknown]
            )
        tensors, buffers = [], []
        for name, binary in wanted:
            tensor, raw = encode_tensor(name, outputs[name], binary or payload.binary_output)
            tensors.append(tensor)
            if raw is not None:
                buffers.append(raw)
        body: dict[str, Any] = {
            "model_name": result.served.model,
            "model_version": result.served.version,
            "parameters": {},
            "outputs": tensors,
        }
        if payload.id is not None:
            body["id"] = payload.id
        if not buffers:
            return json_answer(body)
        header = orjson.dumps(body, option=JSON_OPTIONS)
        return Answer(
            200,
            header + b"".join(buffers),
            b"application/octet-stream",
            ((b"inference-header-content-length", str(len(header)).encode()),),
        )


def model_metadata(route: ModelRoute, version: str | None = None) -> dict[str, Any]:
    """The OIP model metadata of a served model (or of one of its versions).

    Raises:
        ModelNotFound: the version is not served.
        ModelNotReady: it is still loading.
    """
    slots = [route.pick(version)] if version is not None else route.variants
    loaded = [slot.current for slot in slots if slot.current is not None]
    if not loaded:
        raise ModelNotReady(f"Model {route.name!r} is still loading")
    served = loaded[0]
    spec = served.spec
    metadata: dict[str, Any] = {
        "name": route.name,
        "versions": sorted({s.version for s in loaded}),
        "platform": served.flavor,
        "inputs": [
            {"name": c.name, "datatype": datatype_of(c.dtype), "shape": [-1, *c.shape]} for c in spec.columns
        ],
        "outputs": [
            {"name": name, "datatype": datatype_of(dtype), "shape": [-1, *shape]}
            for name, (dtype, shape) in served.output_meta.items()
        ],
    }
    if spec.kind == "dataframe":
        metadata["parameters"] = {"content_type": "pd"}
    return metadata


def routes(runtime: ServingRuntime) -> list[Route]:
    """The protocol's routes, bound to ``runtime``."""
    wire = OpenInferenceProtocol()

    async def server_metadata(_: Request) -> Response:
        return json_response(
            {"name": "conveyor", "version": __version__, "extensions": ["binary_tensor_data"]}
        )

    async def live(_: Request) -> Response:
        return json_response({"live": True})

    async def ready(_: Request) -> Response:
        return json_response({"ready": runtime.ready}, 200 if runtime.ready else 503)

    async def metadata(request: Request) -> Response:
        try:
            route = runtime.route(request.path_params["name"])
            return json_response(model_metadata(route, request.path_params.get("version")))
        except ConveyorError as exc:
            return error_response(exc, request_id(request.scope))

    async def model_ready(request: Request) -> Response:
        try:
            route = runtime.route(request.path_params["name"])
            version = request.path_params.get("version")
            is_ready = route.pick(version).ready if version is not None else route.ready
        except ConveyorError as exc:
            return error_response(exc, request_id(request.scope))
        return json_response({"name": route.name, "ready": is_ready}, 200 if is_ready else 503)

    infer = InferenceEndpoint(runtime, wire)

    model = "/v2/models/{name}"
    version = "/v2/models/{name}/versions/{version}"
    return [
        Route("/v2", server_metadata, methods=["GET"]),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route(model, metadata, methods=["GET"]),
        Route(version, metadata, methods=["GET"]),
        Route(f"{model}/ready", model_ready, methods=["GET"]),
        Route(f"{version}/ready", model_ready, methods=["GET"]),
        Route(f"{model}/infer", infer, methods=["POST"]),
        Route(f"{version}/infer", infer, methods=["POST"]),
    ]


def _split_body(headers: Mapping[str, str], body: bytes) -> tuple[dict[str, Any], memoryview]:
    """The JSON header as a dict, and the binary data after it."""
    declared = headers.get("inference-header-content-length")
    size = len(body)
    if declared is not None:
        if not declared.isdigit() or int(declared) > len(body):
            raise RequestRejected.one(
                "", "format", f"Inference-Header-Content-Length {declared!r} is not valid"
            )
        size = int(declared)
    try:
        document = orjson.loads(memoryview(body)[:size])
    except orjson.JSONDecodeError as exc:
        raise RequestRejected.one("", "format", f"malformed JSON: {exc}") from None
    if not isinstance(document, dict):
        raise RequestRejected.one("", "format", "an inference request is a JSON object")
    return document, memoryview(body)[size:]


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RequestRejected.one("", "format", f"'{what}' must be an object")
    return value


def _requested_outputs(value: Any) -> list[tuple[str, bool]] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(
        isinstance(o, Mapping) and isinstance(o.get("name"), str) for o in value
    ):
        raise RequestRejected.one("", "format", "'outputs' must be a list of objects with a 'name'")
    return [
        (o["name"], _mapping(o.get("parameters"), "parameters").get("binary_data") is True) for o in value
    ]


def _as_column(array: np.ndarray) -> np.ndarray:
    """A ``[n]`` or ``[n, 1]`` tensor as one column; others stay as they are (and fail validation)."""
    return array.reshape(-1) if array.ndim == 2 and array.shape[1] == 1 else array


def _stacked(columns: dict[str, np.ndarray], spec: InputSpec) -> MatrixColumns | None:
    """One tensor per field, every one a column of the signature's float dtype and of one
    length: the columns as one matrix, which validation checks at once. Else None."""
    dtype = spec.matrix_dtype
    if dtype is None or len(columns) != len(spec.names):
        return None
    arrays = []
    for name in spec.names:
        array = columns.get(name)
        if array is None or array.dtype != dtype or array.ndim != 1:
            return None
        arrays.append(array)
    if len({len(a) for a in arrays}) != 1:
        return None
    return MatrixColumns(np.column_stack(arrays), spec.names)


def _split_matrix(name: str, array: np.ndarray, spec: InputSpec) -> RawInputs:
    if array.shape[1] != len(spec.columns):
        raise RequestRejected.one(
            name,
            "shape",
            f"input {name!r} has {array.shape[1]} columns; "
            f"the model takes {len(spec.columns)}: {list(spec.names)}",
        )
    return MatrixColumns(array, spec.names)
