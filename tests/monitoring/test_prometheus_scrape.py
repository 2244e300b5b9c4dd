"""A real Prometheus scrapes a running Conveyor server and sees the drift gauges it exports.

Monitor points are written through the monitoring store (as a monitor run would), a
``conveyor server`` process serves them on ``/metrics``, and a Prometheus process
(Debian's package, installed if missing) scrapes it every second; the assertions go
through Prometheus's own query API.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from conveyor.artifacts import ArtifactStore
from conveyor.monitoring import analyze, build_profile, classification_metrics
from conveyor.monitoring.points import MonitorPoint, points_from_report
from conveyor.monitoring.window import WindowReport
from conveyor.registry import RegistryService
from conveyor.store.sql.monitoring import SqlMonitorStore
from conveyor.store.sql.store import SqlStore
from conveyor.testing.processes import stop_process
from conveyor.testing.prometheus import PrometheusError, PrometheusHandle, find_or_install, start_prometheus
from conveyor.testing.servers import start_server
from tests.monitoring.frames import mixed_frame

pytestmark = pytest.mark.slow

WINDOW_END = 1_714_560_000_000
WINDOW_START = WINDOW_END - 3_600_000
VERSION = {"model": "churn", "version": "3", "alias": "champion"}


@pytest.fixture(scope="module")
def prometheus_available() -> None:
    try:
        find_or_install("prometheus")
    except PrometheusError as exc:
        pytest.skip(f"Prometheus is not installed and cannot be installed here: {exc}")


def write_points(home: Path) -> tuple[WindowReport, list[MonitorPoint]]:
    """A drifted window of churn v3 @champion, stored as a monitor run stores it."""
    profile = build_profile([mixed_frame(3000, seed=1)], predictions="pred")
    report = analyze(profile, [mixed_frame(2000, seed=2, shift=1.0)])
    y = np.array([0, 1, 1, 0, 1, 1])
    performance = classification_metrics(y, np.array([0, 1, 0, 0, 1, 1]))
    window = {"window_start": WINDOW_START, "window_end": WINDOW_END}
    points = points_from_report(report, **VERSION, **window, performance=performance)
    store = SqlStore(f"sqlite:///{home / 'conveyor.db'}").open()
    try:
        RegistryService(store, ArtifactStore(str(home / "artifacts")), events=()).create_model("churn")
        records = SqlMonitorStore(store)
        run = records.start_run(
            "churn", WINDOW_START, WINDOW_END, version="3", alias="champion", created_by="test"
        )
        records.write_points(
            run.run_id, model="churn", version="3", **window, points=[p.to_dict() for p in points]
        )
    finally:
        store.close()
    return report, points


@pytest.fixture
def scraped(prometheus_available: None, tmp_path: Path) -> Iterator[tuple[PrometheusHandle, WindowReport]]:
    home = tmp_path / "conveyor"
    home.mkdir()
    report, _ = write_points(home)
    database = f"sqlite:///{home / 'conveyor.db'}"
    url, server = start_server(home, env={"CONVEYOR_DATABASE_URL": database})
    try:
        target = url.removeprefix("http://")
        prometheus = start_prometheus(tmp_path / "prometheus", {"conveyor-tracking": [target]})
        try:
            yield prometheus, report
        finally:
            prometheus.stop()
    finally:
        stop_process(server)


def value(series: dict) -> float:
    return float(series["value"][1])


def test_drift_metrics_arrive_in_prometheus_with_their_labels(
    scraped: tuple[PrometheusHandle, WindowReport],
) -> None:
    started = time.monotonic()
    prometheus, report = scraped
    (share,) = prometheus.wait_for("conveyor_monitoring_share_drifted")
    assert share["metric"] == {
        "__name__": "conveyor_monitoring_share_drifted",
        **VERSION,
        "job": "conveyor-tracking",
        "instance": share["metric"]["instance"],
    }
    assert value(share) == pytest.approx(report.drift.share_drifted)
    (dataset,) = prometheus.query('conveyor_monitoring_dataset_drift{model="churn"}')
    assert value(dataset) == float(report.drift.dataset_drift)

    scores = prometheus.query('conveyor_monitoring_drift_score{model="churn", version="3"}')
    by_feature = {s["metric"]["feature"]: value(s) for s in scores}
    drift = report.drift
    assert set(by_feature) == {c.column for c in (*drift.features, *drift.predictions)}
    assert by_feature["x"] == pytest.approx(drift.column("x").statistic)
    drifted = prometheus.query("conveyor_monitoring_drift_detected == 1")
    assert {s["metric"]["feature"] for s in drifted} == set(drift.drifted_columns())

    (accuracy,) = prometheus.query('conveyor_monitoring_performance{metric="accuracy"}')
    assert accuracy["metric"]["estimated"] == "false" and value(accuracy) == pytest.approx(5 / 6)
    (end,) = prometheus.query("conveyor_monitoring_window_end_timestamp_seconds")
    assert value(end) == WINDOW_END / 1000
    (success,) = prometheus.query("conveyor_monitoring_collect_success")
    assert value(success) == 1.0
    assert [t["health"] for t in prometheus.targets()] == ["up"]
    print(f"gauges queryable in Prometheus after {time.monotonic() - started:.2f} s")
