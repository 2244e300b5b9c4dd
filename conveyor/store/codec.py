"""Conveyor's own wire format for tracking entities, shared by the server and the REST store.

Compact on purpose: metric batches travel as columns (one list per field) rather than
one object per point, which is what lets the native client log far faster than MLflow's
wire allows. JSON has no NaN or infinity, so non-finite floats travel as the strings
``"NaN"``, ``"Infinity"`` and ``"-Infinity"``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from conveyor.errors import InvalidInput
from conveyor.store.entities import (
    ArtifactRecord,
    Dataset,
    DatasetInput,
    Experiment,
    LifecycleStage,
    Metric,
    Run,
    RunInfo,
    RunStatus,
)

_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def encode_float(value: float) -> float | str:
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def decode_float(value: object, field: str) -> float:
    if isinstance(value, str) and value in _NON_FINITE:
        return _NON_FINITE[value]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"Invalid value {value!r} for parameter '{field}': must be a number")
    return float(value)


def encode_metrics(metrics: Sequence[Metric]) -> dict[str, list[Any]]:
    return {
        "key": [m.key for m in metrics],
        "value": [encode_float(m.value) for m in metrics],
        "timestamp": [m.timestamp for m in metrics],
        "step": [m.step for m in metrics],
    }


def decode_metrics(columns: object) -> list[Metric]:
    if not isinstance(columns, dict):
        raise InvalidInput("Invalid value for parameter 'metrics': expected an object of columns")
    keys, values, stamps, steps = (columns.get(name, []) for name in ("key", "value", "timestamp", "step"))
    if not all(isinstance(c, list) for c in (keys, values, stamps, steps)):
        raise InvalidInput("Invalid value for parameter 'metrics': each column must be a list")
    if not len(keys) == len(values) == len(stamps) == len(steps):
        raise InvalidInput("Invalid value for parameter 'metrics': columns must have equal lengths")
    return [
        Metric(key, value if type(value) is float else decode_float(value, "metrics.value"), stamp, step)
        for key, value, stamp, step in zip(keys, values, stamps, steps, strict=True)
    ]


def encode_experiment(e: Experiment) -> dict[str, Any]:
    return {
        "experiment_id": e.experiment_id,
        "name": e.name,
        "artifact_location": e.artifact_location,
        "lifecycle_stage": e.lifecycle_stage.value,
        "creation_time": e.creation_time,
        "last_update_time": e.last_update_time,
        "tags": e.tags,
    }


def decode_experiment(d: dict[str, Any]) -> Experiment:
    return Experiment(**{**d, "lifecycle_stage": LifecycleStage(d["lifecycle_stage"])})


def encode_run_info(info: RunInfo) -> dict[str, Any]:
    return {
        "run_id": info.run_id,
        "experiment_id": info.experiment_id,
        "run_name": info.run_name,
        "user_id": info.user_id,
        "status": info.status.value,
        "start_time": info.start_time,
        "end_time": info.end_time,
        "artifact_uri": info.artifact_uri,
        "lifecycle_stage": info.lifecycle_stage.value,
    }


def decode_run_info(d: dict[str, Any]) -> RunInfo:
    return RunInfo(
        **{**d, "status": RunStatus(d["status"]), "lifecycle_stage": LifecycleStage(d["lifecycle_stage"])}
    )


def encode_dataset_input(item: DatasetInput) -> dict[str, Any]:
    ds = item.dataset
    return {
        "dataset": {
            "name": ds.name,
            "digest": ds.digest,
            "source_type": ds.source_type,
            "source": ds.source,
            "schema": ds.schema,
            "profile": ds.profile,
        },
        "tags": item.tags,
    }


def decode_dataset_input(d: object) -> DatasetInput:
    if not isinstance(d, dict) or not isinstance(d.get("dataset"), dict):
        raise InvalidInput("Invalid value for parameter 'inputs': each item needs a 'dataset' object")
    try:
        dataset = Dataset(**d["dataset"])
    except TypeError as exc:
        raise InvalidInput(f"Invalid value for parameter 'inputs.dataset': {exc}") from None
    return DatasetInput(dataset=dataset, tags=dict(d.get("tags") or {}))


def encode_run(run: Run) -> dict[str, Any]:
    return {
        "info": encode_run_info(run.info),
        "params": run.params,
        "metrics": encode_metrics(list(run.metrics.values())),
        "tags": run.tags,
        "inputs": [encode_dataset_input(i) for i in run.inputs],
    }


def decode_run(d: dict[str, Any]) -> Run:
    return Run(
        info=decode_run_info(d["info"]),
        params=d["params"],
        metrics={m.key: m for m in decode_metrics(d["metrics"])},
        tags=d["tags"],
        inputs=[decode_dataset_input(i) for i in d["inputs"]],
    )


def encode_artifact(record: ArtifactRecord) -> dict[str, Any]:
    return {
        "path": record.path,
        "size": record.size,
        "sha256": record.sha256,
        "run_id": record.run_id,
        "created_time": record.created_time,
    }


def decode_artifact(d: dict[str, Any]) -> ArtifactRecord:
    try:
        return ArtifactRecord(**d)
    except TypeError as exc:
        raise InvalidInput(f"Invalid artifact record: {exc}") from None
