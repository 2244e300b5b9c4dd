"""Row ↔ entity conversions and bulk loaders shared by the SQL store's queries."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence

from sqlalchemy import Connection, RowMapping, select

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
from conveyor.store.sql import schema as s

#: SQLite allows 32,766 bound parameters per statement; stay well below on every back end.
IN_CHUNK = 2000


def chunks(items: Sequence[int], size: int = IN_CHUNK) -> Iterable[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def metric_value(value: float, is_nan: bool) -> float:
    return math.nan if is_nan else value


def experiment_from_row(row: RowMapping, tags: dict[str, str]) -> Experiment:
    return Experiment(
        experiment_id=str(row["id"]),
        name=row["name"],
        artifact_location=row["artifact_location"],
        lifecycle_stage=LifecycleStage(row["lifecycle_stage"]),
        creation_time=row["creation_time"],
        last_update_time=row["last_update_time"],
        tags=tags,
    )


def run_info_from_row(row: RowMapping) -> RunInfo:
    return RunInfo(
        run_id=row["run_uuid"],
        experiment_id=str(row["experiment_id"]),
        run_name=row["name"],
        user_id=row["user_id"],
        status=RunStatus(row["status"]),
        start_time=row["start_time"],
        end_time=row["end_time"],
        artifact_uri=row["artifact_uri"],
        lifecycle_stage=LifecycleStage(row["lifecycle_stage"]),
    )


def artifact_from_row(row: RowMapping, run_uuid: str | None) -> ArtifactRecord:
    return ArtifactRecord(
        path=row["path"],
        size=row["size"],
        sha256=row["sha256"],
        run_id=run_uuid,
        created_time=row["created_time"],
    )


def load_experiment_tags(conn: Connection, ids: Sequence[int]) -> dict[int, dict[str, str]]:
    found: dict[int, dict[str, str]] = defaultdict(dict)
    for part in chunks(ids):
        query = select(s.experiment_tags).where(s.experiment_tags.c.experiment_id.in_(part))
        for row in conn.execute(query).mappings():
            found[row["experiment_id"]][row["key"]] = row["value"]
    return found


def load_runs(conn: Connection, run_rows: Sequence[RowMapping]) -> list[Run]:
    """Build full ``Run`` values for many runs with four queries in total, not four per run."""
    ids = [row["id"] for row in run_rows]
    params: dict[int, dict[str, str]] = defaultdict(dict)
    tags: dict[int, dict[str, str]] = defaultdict(dict)
    latest: dict[int, dict[str, Metric]] = defaultdict(dict)
    inputs: dict[int, list[DatasetInput]] = defaultdict(list)
    for part in chunks(ids):
        for row in conn.execute(select(s.params).where(s.params.c.run_id.in_(part))).mappings():
            params[row["run_id"]][row["key"]] = row["value"]
        for row in conn.execute(select(s.tags).where(s.tags.c.run_id.in_(part))).mappings():
            tags[row["run_id"]][row["key"]] = row["value"]
        query = select(s.latest_metrics).where(s.latest_metrics.c.run_id.in_(part))
        for row in conn.execute(query).mappings():
            latest[row["run_id"]][row["key"]] = Metric(
                row["key"], metric_value(row["value"], row["is_nan"]), row["timestamp"], row["step"]
            )
        query = (
            select(s.inputs.c.run_id, s.inputs.c.tags.label("input_tags"), s.datasets)
            .join(s.datasets, s.datasets.c.id == s.inputs.c.dataset_id)
            .where(s.inputs.c.run_id.in_(part))
            .order_by(s.datasets.c.id)
        )
        for row in conn.execute(query).mappings():
            inputs[row["run_id"]].append(_dataset_input(row))
    return [
        Run(
            info=run_info_from_row(row),
            params=params.get(row["id"], {}),
            metrics=latest.get(row["id"], {}),
            tags=tags.get(row["id"], {}),
            inputs=inputs.get(row["id"], []),
        )
        for row in run_rows
    ]


def _dataset_input(row: RowMapping) -> DatasetInput:
    dataset = Dataset(
        name=row["name"],
        digest=row["digest"],
        source_type=row["source_type"],
        source=row["source"],
        schema=row["schema"],
        profile=row["profile"],
    )
    return DatasetInput(dataset=dataset, tags=json.loads(row["input_tags"]))
