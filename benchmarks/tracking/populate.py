"""Fill a Conveyor SQLite store with many runs quickly, before its server starts.

Creating 100,000 runs one API call at a time would take longer than the whole
benchmark, so the store creates its schema and the experiment, and the runs with their
params, tags and metrics are then inserted in one transaction straight through
``sqlite3``, with the column names of Conveyor's own table definitions. The runs look
exactly like those of the 5,000-run search workload (same generator, same seed scheme).
The result is checked through the store API afterwards.
"""

from __future__ import annotations

import random
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

from workloads import run_payload

RUN_NAME_TAG = "mlflow.runName"


#: The column order the rows below are built in; checked against Conveyor's schema.
COLUMNS = {
    "tags": ["run_id", "key", "value"],
    "params": ["run_id", "key", "value"],
    "metrics": ["run_id", "key", "step", "timestamp", "value", "is_nan"],
    "latest_metrics": ["run_id", "key", "step", "timestamp", "value", "is_nan"],
}


def _insert(db: sqlite3.Connection, table, rows: list[tuple]) -> None:  # type: ignore[no-untyped-def]
    columns = [c.name for c in table.columns]
    if table.name in COLUMNS and sorted(COLUMNS[table.name]) != sorted(columns):
        raise RuntimeError(
            f"bulk loader expects {table.name} columns {COLUMNS[table.name]}, schema has {columns}"
        )
    columns = COLUMNS.get(table.name, columns)
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    db.executemany(sql, rows)


def bulk_populate(db_path: Path, runs: int, seed: int = 7) -> tuple[str, float]:
    """Create an experiment holding ``runs`` runs; returns its id and the seconds taken."""
    from conveyor.store import open_store

    t0 = time.perf_counter()
    store = open_store(f"sqlite:///{db_path}")
    try:
        experiment_id = store.create_experiment("search-large")
        experiment = store.get_experiment(experiment_id)
    finally:
        store.close()
    tables = _rows(int(experiment_id), experiment.artifact_location.rstrip("/"), runs, seed)
    db = sqlite3.connect(db_path, isolation_level=None)
    try:
        db.execute("PRAGMA synchronous=OFF")
        db.execute("BEGIN")
        for table, rows in tables:
            _insert(db, table, rows)
        db.execute("COMMIT")
    finally:
        db.close()

    store = open_store(f"sqlite:///{db_path}")
    try:
        counted = store.count_runs([experiment_id])
        if counted != runs:
            raise RuntimeError(f"bulk load stored {counted} runs, expected {runs}")
        sample = store.search_runs([experiment_id], max_results=1).items[0]
        if len(sample.metrics) != 10 or len(sample.params) != 5:
            raise RuntimeError(f"bulk-loaded run {sample.info.run_id} lacks metrics or params")
    finally:
        store.close()
    return experiment_id, time.perf_counter() - t0


def _rows(experiment_pk: int, artifact_root: str, runs: int, seed: int) -> list[tuple[Any, list[tuple]]]:
    from conveyor.store.sql import schema as s

    rng = random.Random(seed)
    start = int(time.time() * 1000) - runs
    run_rows, tag_rows, param_rows, metric_rows = [], [], [], []
    order = [c.name for c in s.runs.columns]
    for n in range(runs):
        metrics, params = run_payload(rng)
        run_pk = n + 1
        run_uuid = uuid.uuid4().hex
        values = {
            "id": run_pk,
            "run_uuid": run_uuid,
            "experiment_id": experiment_pk,
            "name": f"run-{n}",
            "user_id": "bench",
            "status": "FINISHED",
            "start_time": start + n,
            "end_time": start + n + 1,
            "artifact_uri": f"{artifact_root}/{run_uuid}/artifacts",
            "lifecycle_stage": "active",
            "deleted_time": None,
        }
        missing = set(order) - set(values)
        if missing:
            raise RuntimeError(f"bulk loader does not know the runs columns {sorted(missing)}")
        run_rows.append(tuple(values[c] for c in order))
        tag_rows.append((run_pk, RUN_NAME_TAG, f"run-{n}"))
        param_rows.extend((run_pk, p.key, p.value) for p in params)
        metric_rows.extend((run_pk, m.key, m.step, m.timestamp, m.value, 0) for m in metrics)
    # One point per metric, so each run's latest point is its only point.
    return [
        (s.runs, run_rows),
        (s.tags, tag_rows),
        (s.params, param_rows),
        (s.metrics, metric_rows),
        (s.latest_metrics, metric_rows),
    ]
