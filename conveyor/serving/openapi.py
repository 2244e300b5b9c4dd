"""The OpenAPI document of a serving app: each model's routes with its signature as schema.

The inference routes are generic (``/v2/models/{name}/infer``), so the document lists
them once per served model instead, with the request body described by that model's
signature: which columns, of which JSON types, which are required, and an example
built from the model's input example. It is rebuilt on every request of
``/openapi.json``, so it follows hot swaps; a model still loading is listed without a
schema.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from conveyor._version import __version__
from conveyor.serving.oip_codec import datatype_of
from conveyor.serving.served import ServedModel
from conveyor.serving.validation import Column, InputSpec, columns_of

if TYPE_CHECKING:
    from conveyor.serving.runtime import ServingRuntime

__all__ = ["openapi_document"]

DESCRIPTION = (
    "Conveyor's model server: the Open Inference Protocol (KServe V2) and MLflow's scoring protocol "
    'for every model. Errors are `{"error", "details": [{"field", "problem", "message"}], '
    '"request_id"}`; see docs/serving.md.'
)
_ERRORS = {
    "400": {"description": "Malformed or invalid input; `details` lists every field-level problem"},
    "404": {"description": "No such model, version or alias is served"},
    "413": {"description": "Body over the model's limit"},
    "415": {"description": "Unsupported content type"},
    "500": {"description": "The model failed; logged under the request id"},
    "503": {"description": "Still loading"},
    "504": {"description": "Past the model's timeout"},
}


def openapi_document(runtime: ServingRuntime) -> dict[str, Any]:
    """The whole document; see the module docstring."""
    paths: dict[str, Any] = {
        "/v2/health/ready": _get("Ready when every model is loaded and warmed up (200, else 503)"),
        "/v2/health/live": _get("Live while the process answers"),
        "/metrics": _get("Prometheus metrics"),
    }
    for name, route in runtime.routes.items():
        served = next((slot.current for slot in route.variants if slot.current is not None), None)
        paths[f"/v2/models/{name}"] = _get(f"Open Inference Protocol metadata of {name!r}")
        paths[f"/v2/models/{name}/infer"] = _post(
            f"Predict with {name!r} (Open Inference Protocol)", _oip_body(served)
        )
        paths[f"/models/{name}/invocations"] = _post(
            f"Predict with {name!r} (MLflow scoring protocol)", _mlflow_body(served)
        )
    return {
        "openapi": "3.1.0",
        "info": {"title": "Conveyor serving", "version": __version__, "description": DESCRIPTION},
        "paths": paths,
    }


def _get(summary: str) -> dict[str, Any]:
    return {"get": {"summary": summary, "responses": {"200": {"description": "OK"}}}}


def _post(summary: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "requestBody": {"required": True, "content": {"application/json": body}},
            "responses": {"200": {"description": "Predictions"}, **_ERRORS},
        }
    }


def _oip_body(served: ServedModel | None) -> dict[str, Any]:
    if served is None:
        return {"schema": {"type": "object", "description": "(model still loading)"}}
    spec = served.spec
    tensors = [
        {
            "type": "object",
            "required": ["name", "datatype", "shape", "data"],
            "properties": {
                "name": {"const": c.name},
                "datatype": {"const": datatype_of(c.dtype)},
                "shape": {"type": "array", "items": {"type": "integer"}},
                "data": {"type": "array", "items": _json_type(c)},
            },
        }
        for c in spec.columns
    ]
    schema = {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object", "properties": {"content_type": {"enum": ["pd"]}}},
            "inputs": {"type": "array", "items": {"oneOf": tensors} if tensors else {"type": "object"}},
            "outputs": {
                "type": "array",
                "items": {"type": "object", "properties": {"name": {"type": "string"}}},
            },
        },
    }
    example_rows = _example(served)
    example = {
        "parameters": {"content_type": "pd"},
        "inputs": [
            {
                "name": name,
                "datatype": datatype_of(spec.column(name).dtype),
                "shape": [len(values)],
                "data": values,
            }
            for name, values in example_rows.items()
            if spec.column(name) is not None
        ],
    }
    return {"schema": schema, "example": example}


def _mlflow_body(served: ServedModel | None) -> dict[str, Any]:
    if served is None:
        return {"schema": {"type": "object", "description": "(model still loading)"}}
    spec = served.spec
    record = {
        "type": "object",
        "properties": {c.name: _json_type(c) for c in spec.columns},
        "required": [c.name for c in spec.columns if not c.optional],
        "additionalProperties": spec.unknown == "ignore",
    }
    schema = {
        "type": "object",
        "properties": {
            "dataframe_records": {"type": "array", "minItems": 1, "items": record},
            "dataframe_split": {
                "type": "object",
                "required": ["data"],
                "properties": {
                    "columns": {"type": "array", "items": {"enum": list(spec.names)}},
                    "data": {"type": "array", "minItems": 1, "items": {"type": "array"}},
                },
            },
            "instances": {"type": "array"},
            "inputs": {"type": ["array", "object"]},
        },
    }
    rows = _example(served)
    records = [dict(zip(rows, values, strict=True)) for values in zip(*rows.values(), strict=True)]
    return {"schema": schema, "example": {"dataframe_records": records}}


def _json_type(column: Column) -> dict[str, Any]:
    if column.shape:
        return {"type": "array"}
    kind = "object" if column.dtype in ("string", "object") else np.dtype(column.dtype).kind
    schema: dict[str, Any] = {
        "f": {"type": "number"},
        "i": {"type": "integer"},
        "u": {"type": "integer", "minimum": 0},
        "b": {"type": "boolean"},
        "M": {"type": "string", "format": "date-time"},
    }.get(kind, {"type": "string"} if column.dtype == "string" else {})
    if column.allow_nan and schema.get("type") == "number":
        schema = {"type": ["number", "null"]}
    return schema


def _example(served: ServedModel) -> dict[str, list[Any]]:
    """Two rows of the model's input example (or one synthetic row), as JSON values."""
    spec: InputSpec = served.spec
    try:
        example = served.loaded.input_example
        columns = spec.validate(columns_of(example)) if example is not None else spec.synthetic_row()
    except Exception:
        return {}
    return {
        name: (np.datetime_as_string(array[:2]) if array.dtype.kind == "M" else array[:2]).tolist()
        for name, array in columns.items()
        if array.ndim == 1
    }
