"""Monitor runs on real prediction logs and feedback: points, runs, reports, and every bad window."""

# The fixtures come from monitor_fixtures by import, which pyflakes reads as redefinitions.
# ruff: noqa: F811

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from conveyor import models
from conveyor.errors import NotFound
from conveyor.monitoring import results
from conveyor.monitoring._time import window_bounds
from conveyor.monitoring.jobs import run_monitor
from conveyor.monitoring.profiles import load_profile, register_with_profile
from conveyor.store.sql.audit import AuditLog
from conveyor.store.sql.monitoring_entities import RunStatus
from tests.monitoring.monitor_fixtures import (  # noqa: F401 - fixtures by name
    END,
    FEATURES,
    START,
    Served,
    backend,
    model_dir,
    open_context,
    reference_frame,
    serve,
    served,
    served_sqlite,
)


def by_key(points: list) -> dict[tuple[str, str], float]:
    return {(p.metric, p.feature): p.value for p in points}


def test_run_stores_points_report_and_run_then_labels_make_it_realized(served: Served) -> None:
    window = reference_frame(500, seed=2, shift=1.5)
    ids = served.log(window)
    first = run_monitor(served.ctx, served.uri, window="1h", end=END)

    run = first.run
    assert (run.status, run.rows, run.version, run.alias) == (RunStatus.FINISHED, 500, "1", "champion")
    assert (run.window_start, run.window_end) == (int(START.timestamp() * 1000), int(END.timestamp() * 1000))
    values = by_key(first.points)
    assert values[("drift_detected", "input.x1")] == 1.0
    assert values[("drift_detected", "input.x2")] == 0.0
    assert values[("rows", "")] == 500
    accuracy = next(p for p in first.points if p.metric == "accuracy")
    assert accuracy.estimated and run.details["performance"] == "estimated"
    stored = results.points(served.ctx, served.name, START, END)
    assert sorted(stored, key=str) == sorted(first.points, key=str)

    json_path = run.details["report_json"]
    record = served.ctx.store.get_artifact_record(json_path)
    assert record is not None
    assert served.ctx.registry.artifacts.read_verified(json_path, record.sha256).startswith(b"{")
    assert run.report_path is not None and served.ctx.store.get_artifact_record(run.report_path) is not None

    served.label(ids, window["y"].tolist())
    second = run_monitor(served.ctx, served.uri, window="1h", end=END)
    realized = by_key(second.points)
    assert not next(p for p in second.points if p.metric == "accuracy").estimated
    assert realized[("accuracy", "")] == pytest.approx(0.9, abs=0.08)
    assert second.run.details["labelled_rows"] == 500
    again = results.points(served.ctx, served.name, START, END)
    assert len(again) == len({(p.version, p.metric, p.feature) for p in again}) == len(second.points)
    assert [r.run_id for r in results.list_runs(served.ctx, served.name)] == [second.run.run_id, run.run_id]

    log = AuditLog(served.ctx.store)
    actions = [r.action for r in log.read(0, 10, resource_type="monitor_run", resource_id=run.run_id)]
    assert actions == ["monitoring.run.start", "monitoring.run.finish"]
    window_id = f"{served.name}/1@{run.window_start}-{run.window_end}"
    writes = log.read(0, 10, resource_type="monitor_window", resource_id=window_id)
    assert [r.details["replaced"] for r in writes] == [0, len(first.points)]
    version_records = log.read(0, 10, resource_type="model_version", resource_id=f"{served.name}/1")
    assert "monitoring.profile.save" in [r.action for r in version_records]


def test_default_window_is_the_last_whole_one() -> None:
    now = datetime(2026, 3, 1, 10, 0, 5, tzinfo=UTC)
    assert window_bounds("1h", now=now) == (
        datetime(2026, 3, 1, 9, tzinfo=UTC),
        datetime(2026, 3, 1, 10, tzinfo=UTC),
    )
    assert window_bounds("30m", "2026-03-01T10:10Z")[0] == datetime(2026, 3, 1, 9, 40, tzinfo=UTC)


def test_empty_window_is_recorded_with_zero_rows(served_sqlite: Served) -> None:
    found = run_monitor(served_sqlite.ctx, served_sqlite.uri, window="1h", end=END)
    assert found.run.status is RunStatus.FINISHED
    assert (found.run.rows, found.report.empty, found.performance) == (0, True, None)
    assert by_key(found.points)[("rows", "")] == 0.0
    assert "drift_detected" not in {p.metric for p in found.points}


def test_one_class_in_the_window(served_sqlite: Served) -> None:
    window = reference_frame(200, seed=3)
    ids = served_sqlite.log(window)
    served_sqlite.label(ids, [0] * len(window))
    found = run_monitor(served_sqlite.ctx, served_sqlite.uri, window="1h", end=END)
    assert "roc_auc" not in {p.metric for p in found.points}
    assert found.performance is not None and "roc_auc" in found.performance.reasons
    assert by_key(found.points)[("accuracy", "")] == pytest.approx(
        float(np.mean(predicted(served_sqlite, window) == 0))
    )


def predicted(served: Served, frame: pd.DataFrame) -> np.ndarray:
    return np.asarray(served.model.predict(frame[list(FEATURES)]))


def test_missing_and_new_columns(served_sqlite: Served) -> None:
    window = reference_frame(100, seed=4).assign(extra=1.0)
    served_sqlite.log(window, inputs=("x1", "k", "extra"))
    found = run_monitor(served_sqlite.ctx, served_sqlite.uri, window="1h", end=END)
    quality = found.report.quality
    assert set(quality.missing_columns) == {"input.x2", "input.city"}
    assert quality.new_columns == ["input.extra"]
    assert by_key(found.points)[("schema_violations", "")] == 3
    assert by_key(found.points)[("drift_detected", "input.x1")] == 0.0


def test_all_missing_and_constant_columns(served_sqlite: Served) -> None:
    window = reference_frame(100, seed=5)
    served_sqlite.log(window.assign(x2=np.nan, k=2), inputs=("x1", "x2", "k"), outputs=False)
    found = run_monitor(served_sqlite.ctx, served_sqlite.uri, window="1h", end=END)
    quality = found.report.quality
    assert "input.x2" in quality.all_missing_columns and "input.k" in quality.constant_columns
    values = by_key(found.points)
    assert values[("missing_rate", "input.x2")] == 1.0
    assert ("drift_detected", "input.x2") not in values
    assert found.performance is None and found.run.details["performance"] == "none"


def test_unknown_request_ids_are_counted_and_the_latest_label_wins(served_sqlite: Served) -> None:
    served = served_sqlite
    window = reference_frame(100, seed=6)
    ids = served.log(window)
    truth = window["y"].tolist()
    served.label(ids, [1 - y for y in truth], received_at=END - timedelta(minutes=20))  # all wrong...
    served.label(ids, truth, received_at=END - timedelta(minutes=10))  # ...then corrected
    served.label(["ghost"], [1] * 10)
    found = run_monitor(served.ctx, served.uri, window="1h", end=END)
    details = found.run.details
    assert (details["labelled_rows"], details["labels_unmatched"]) == (100, 10)
    expected = float(np.mean(predicted(served, window) == np.array(truth)))
    assert by_key(found.points)[("accuracy", "")] == pytest.approx(expected)


def test_an_interrupted_run_is_recorded_and_a_rerun_gives_the_same_points(
    served_sqlite: Served, tmp_path: Path
) -> None:
    served = served_sqlite
    served.log(reference_frame(300, seed=7, shift=1.0))
    hour = next((tmp_path / "predictions" / f"model={served.name}" / "version=1").iterdir())
    broken = hour / "part-99999999T999999999999Z-broken.parquet"
    broken.write_bytes(b"not parquet at all")
    with pytest.raises(Exception):  # noqa: B017 - whatever Arrow raises on a broken file
        run_monitor(served.ctx, served.uri, window="1h", end=END)
    failed = results.list_runs(served.ctx, served.name)[0]
    assert failed.status is RunStatus.FAILED and failed.error
    assert results.points(served.ctx, served.name, START, END) == []

    broken.unlink()
    first = run_monitor(served.ctx, served.uri, window="1h", end=END)
    second = run_monitor(served.ctx, served.uri, window="1h", end=END)
    stored = results.points(served.ctx, served.name, START, END)
    assert by_key(stored) == by_key(first.points) == by_key(second.points)
    assert len(stored) == len(first.points)


def test_a_version_without_profile_fails_with_the_command_to_fix_it(
    backend: str, tmp_path: Path, model_dir: Path
) -> None:
    ctx, _ = open_context(backend, tmp_path, events=())
    try:
        bare = serve(ctx, model_dir, profile=False)
        with pytest.raises(NotFound, match="conveyor monitor profile"):
            run_monitor(ctx, bare.uri, window="1h", end=END)
        assert results.list_runs(ctx, bare.name)[0].status is RunStatus.FAILED
    finally:
        ctx.close()


def test_regressor_gets_mae_rmse_r2(tmp_path: Path) -> None:
    ctx, registry = open_context(f"sqlite:///{tmp_path / 'r.db'}", tmp_path, events=())
    frame = reference_frame(600, seed=8)
    frame["y"] = 2 * frame["x1"] + frame["x2"] + np.random.default_rng(0).normal(0, 0.1, 600)
    fitted = LinearRegression().fit(frame[["x1", "x2", "k"]], frame["y"])
    models.save(fitted, tmp_path / "reg", input_example=frame[["x1", "x2", "k"]].head())
    registry.create_model("price")
    stored = register_with_profile(ctx, "price", str(tmp_path / "reg"), frame, labels_column="y")
    assert (stored.record.task, stored.cbpe) == ("regression", None)
    assert load_profile(ctx, "price", 1).profile.columns["output.prediction"].role == "prediction"

    served = Served(ctx, "price", fitted)
    ids = served.log(frame.iloc[:200], inputs=FEATURES, outputs=False, regression=True)
    served.label(ids, frame["y"].tolist()[:200])
    found = run_monitor(ctx, "models:/price/1", window="1h", end=END)
    values = by_key(found.points)
    assert values[("mae", "")] < 0.2 and values[("r2", "")] > 0.95
    ctx.close()


@pytest.mark.slow
def test_a_dask_cluster_gives_the_same_points(served_sqlite: Served, tmp_path: Path) -> None:
    """One task per Parquet file on real worker processes; partials merged on the client."""
    from conveyor.testing.dask import start_dask_cluster

    served = served_sqlite
    for hour in range(3):  # three hour folders, one file each
        at = END - timedelta(hours=3 - hour) + timedelta(minutes=5)
        served.log(reference_frame(200, seed=10 + hour, shift=0.5 * hour), at=at, prefix=f"h{hour}-")
    local = run_monitor(served.ctx, served.uri, window="3h", end=END, evaluate_alerts=False)
    root = Path(__file__).resolve().parents[2]
    with start_dask_cluster(tmp_path / "dask", workers=2, cwd=root, env={"PYTHONPATH": str(root)}) as cluster:
        remote = run_monitor(
            served.ctx, served.uri, window="3h", end=END, dask_address=cluster.address, evaluate_alerts=False
        )
    assert remote.run.details["files"] == local.run.details["files"] == 3
    assert remote.run.rows == local.run.rows == 600
    expected = by_key(local.points)
    assert by_key(remote.points).keys() == expected.keys()
    for key, value in by_key(remote.points).items():
        assert value == pytest.approx(expected[key], rel=1e-6, abs=1e-9), key
