"""MLflow's logging endpoints: metrics, params, tags, dataset inputs, model history and outputs.

These are the hot paths (autologging sends one request per metric), so each handler
parses with orjson in the event loop, builds entities directly from dicts and makes
exactly one store call in the thread pool. The store validates keys, values and
batch limits; this module only checks shapes and types.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request, Response

from conveyor.errors import InvalidInput
from conveyor.server.mlflow_api.routing import Context, Endpoint, call
from conveyor.server.mlflow_api.wire import (
    Fields,
    invalid,
    missing,
    ok,
    parse_body,
    read_body,
    read_fields,
    to_float,
    to_int,
)
from conveyor.store.entities import Dataset, DatasetInput, Metric, Param, Tag

#: MLflow refuses log-batch bodies over 1 MB (``MAX_BATCH_LOG_REQUEST_SIZE``); so do we.
MAX_BATCH_BODY_BYTES = 1_000_000
#: Run tag that collects the MLmodel metadata of every model logged to a run.
LOG_MODEL_HISTORY_TAG = "mlflow.log-model.history"
_MODEL_JSON_FIELDS = ("artifact_path", "flavors", "utc_time_created", "run_id")


def parse_metric(item: Any, index: int) -> Metric:
    """One ``{key, value, timestamp, step}`` object of a batch; errors name it (``metrics[3]``).

    The common case (a float value, int timestamp and step) is checked first and costs a
    few type tests; the precise error paths run only when something is off.
    """
    if type(item) is dict:
        key, value, stamp, step = (
            item.get("key"),
            item.get("value"),
            item.get("timestamp"),
            item.get("step", 0),
        )
        if key is not None and type(value) is float and type(stamp) is int and type(step) is int:
            return Metric(key, value, stamp, step)
    return _parse_metric_slowly(item, f"metrics[{index}]")


def _parse_metric_slowly(item: Any, where: str) -> Metric:
    if not isinstance(item, dict):
        raise invalid(where, item, "an object")
    key = item.get("key")
    if key is None:
        raise missing(f"{where}.key")
    raw_value = item.get("value")
    value = raw_value if type(raw_value) is float else to_float(raw_value)
    if value is None:
        if raw_value is None:
            raise missing(f"{where}.value")
        raise invalid(f"{where}.value", raw_value, "a number")
    raw_stamp = item.get("timestamp")
    stamp = raw_stamp if type(raw_stamp) is int else to_int(raw_stamp)
    if stamp is None:
        if raw_stamp is None:
            raise missing(f"{where}.timestamp")
        raise invalid(f"{where}.timestamp", raw_stamp, "an integer")
    raw_step = item.get("step", 0)
    step = raw_step if type(raw_step) is int else (0 if raw_step is None else to_int(raw_step))
    if step is None:
        raise invalid(f"{where}.step", raw_step, "an integer")
    return Metric(key, value, stamp, step)


def _pairs(data: dict[str, Any], name: str) -> list[tuple[Any, Any]]:
    """``[{key, value}]`` as tuples without per-item wrappers; the store checks key and value types."""
    items = data.get(name)
    if items is None:
        return []
    if not isinstance(items, list):
        raise invalid(name, items, "a list of objects")
    pairs = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise invalid(f"{name}[{index}]", item, "an object")
        key = item.get("key")
        if key is None:
            raise missing(f"{name}[{index}].key")
        pairs.append((key, item.get("value", "")))
    return pairs


def _batch_too_large(size: int, _limit: int) -> InvalidInput:
    return InvalidInput(
        f"Batched logging API requests must be at most 1 MB in size, got {size} bytes. "
        "Split the batch into smaller requests."
    )


def _batch(raw: bytes) -> tuple[str, list[Metric], list[Param], list[Tag]]:
    f = parse_body(raw)
    run_id = f.run_id()
    metric_items = f.data.get("metrics") or []
    if not isinstance(metric_items, list):
        raise invalid("metrics", metric_items, "a list of objects")
    metrics = [parse_metric(item, i) for i, item in enumerate(metric_items)]
    params = [Param(k, val) for k, val in _pairs(f.data, "params")]
    tags = [Tag(k, val) for k, val in _pairs(f.data, "tags")]
    return run_id, metrics, params, tags


def _dataset_input(item: Fields) -> DatasetInput:
    ds = item.need_message("dataset")
    dataset = Dataset(
        name=ds.need_text("name"),
        digest=ds.need_text("digest"),
        source_type=ds.need_text("source_type"),
        source=ds.need_text("source"),
        schema=ds.text("schema") or None,
        profile=ds.text("profile") or None,
    )
    return DatasetInput(dataset, dict(item.key_values("tags")))


def _model_json(text: str) -> dict[str, Any]:
    try:
        model = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise InvalidInput(
            "Invalid value for parameter 'model_json' supplied: it is not valid JSON."
        ) from None
    if not isinstance(model, dict):
        raise InvalidInput("Invalid value for parameter 'model_json' supplied: expected a JSON object.")
    absent = [name for name in _MODEL_JSON_FIELDS if name not in model]
    if absent:
        raise InvalidInput(f"Model json is missing mandatory fields: {', '.join(absent)}")
    return model


def endpoints(ctx: Context) -> list[Endpoint]:
    store = ctx.service.store

    async def log_metric(request: Request) -> Response:
        f = parse_body(await read_body(request))
        metric = Metric(
            f.need_text("key"),
            f.need_double("value"),
            f.need_integer("timestamp"),
            f.integer_or("step", 0),
        )
        await call(store.log_batch, f.run_id(), metrics=[metric])
        return ok()

    async def log_batch(request: Request) -> Response:
        raw = await read_body(request, MAX_BATCH_BODY_BYTES, _batch_too_large)
        # Parsing 1,000 metrics happens in the worker thread too, off the event loop.
        await call(lambda: store.log_batch(*_batch(raw)))
        return ok()

    async def log_param(request: Request) -> Response:
        f = parse_body(await read_body(request))
        param = Param(f.need_text("key"), f.present_text("value"))
        await call(store.log_batch, f.run_id(), params=[param])
        return ok()

    async def set_tag(request: Request) -> Response:
        f = parse_body(await read_body(request))
        tag = Tag(f.need_text("key"), f.present_text("value"))
        await call(store.log_batch, f.run_id(), tags=[tag])
        return ok()

    async def delete_tag(request: Request) -> Response:
        f = parse_body(await read_body(request))
        await call(store.delete_tag, f.run_id(), f.need_text("key"))
        return ok()

    async def log_inputs(request: Request) -> Response:
        f = await read_fields(request)
        run_id = f.run_id()
        inputs = [_dataset_input(item) for item in f.objects("datasets")]
        for model in f.objects("models"):
            model.need_text("model_id")
        await call(store.log_inputs, run_id, inputs)
        return ok()

    def append_model_history(run_id: str, model: dict[str, Any]) -> None:
        run = store.get_run(run_id)
        history = orjson.loads(run.tags.get(LOG_MODEL_HISTORY_TAG, "[]"))
        history.append(model)
        store.set_tag(run_id, Tag(LOG_MODEL_HISTORY_TAG, orjson.dumps(history).decode()))

    async def log_model(request: Request) -> Response:
        f = await read_fields(request)
        run_id = f.run_id()
        model = _model_json(f.need_text("model_json"))
        await call(append_model_history, run_id, model)
        return ok()

    async def log_outputs(request: Request) -> Response:
        f = await read_fields(request)
        run_id = f.run_id()
        outputs = [(item.need_text("model_id"), item.integer_or("step", 0)) for item in f.objects("models")]
        await call(ctx.logged_models().record_outputs, run_id, outputs)
        return ok()

    metric_fields = {
        "run_id": "string",
        "key": "string",
        "value": "number",
        "timestamp": "integer",
        "step": "integer",
    }
    key_value = {"run_id": "string", "key": "string", "value": "string"}
    return [
        Endpoint("POST", "/mlflow/runs/log-metric", log_metric, "Log one metric point", metric_fields),
        Endpoint(
            "POST",
            "/mlflow/runs/log-batch",
            log_batch,
            "Log metrics, params and tags in one atomic request (at most 1 MB)",
            {"run_id": "string", "metrics": "object[]", "params": "object[]", "tags": "object[]"},
        ),
        Endpoint(
            "POST", "/mlflow/runs/log-parameter", log_param, "Log a param (immutable once logged)", key_value
        ),
        Endpoint("POST", "/mlflow/runs/set-tag", set_tag, "Set a run tag", key_value),
        Endpoint(
            "POST",
            "/mlflow/runs/delete-tag",
            delete_tag,
            "Delete a run tag",
            {"run_id": "string", "key": "string"},
        ),
        Endpoint(
            "POST",
            "/mlflow/runs/log-inputs",
            log_inputs,
            "Record datasets a run consumed",
            {"run_id": "string", "datasets": "object[]", "models": "object[]"},
        ),
        Endpoint(
            "POST",
            "/mlflow/runs/log-model",
            log_model,
            "Append MLmodel metadata to the run's model history",
            {"run_id": "string", "model_json": "string"},
        ),
        Endpoint(
            "POST",
            "/mlflow/runs/outputs",
            log_outputs,
            "Record logged models a run output, each at a step",
            {"run_id": "string", "models": "object[]"},
        ),
    ]
