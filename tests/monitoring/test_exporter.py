"""Monitoring gauges: names, labels and values from points, and the tracking server's /metrics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from conveyor.artifacts import ArtifactStore
from conveyor.config import Settings
from conveyor.identity import IdentityService, RequestContext, Role
from conveyor.monitoring import analyze, build_profile, classification_metrics
from conveyor.monitoring.exporter import GAUGES, PERFORMANCE_METRICS, MonitoringCollector
from conveyor.monitoring.points import METRICS, MonitorPoint, points_from_report
from conveyor.server.app import create_app
from conveyor.store.sql.store import SqlStore
from conveyor.tracking.service import TrackingService
from tests.monitoring.frames import mixed_frame

HOUR_MS = 3_600_000
WINDOW_END = 1_714_560_000_000


def sample_points(window_end: int = WINDOW_END) -> tuple[list[MonitorPoint], object]:
    """Points of a drifted window with realized and estimated performance."""
    profile = build_profile([mixed_frame(3000, seed=1)], predictions="pred")
    report = analyze(profile, [mixed_frame(2000, seed=2, shift=1.0)])
    y = np.array([0, 1, 1, 0, 1, 1])
    realized = classification_metrics(y, np.array([0, 1, 0, 0, 1, 1]))
    common = {"model": "churn", "version": "3", "alias": "champion"}
    window = {"window_start": window_end - HOUR_MS, "window_end": window_end}
    points = points_from_report(report, **common, **window, performance=realized)
    estimated = [
        MonitorPoint(**common, **window, metric="accuracy", feature="", value=0.8, estimated=True),
    ]
    return points + estimated, report


def scrape(source: object) -> dict[str, list]:
    """Family name -> [(labels, value)] as Prometheus would read them."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(MonitoringCollector(source))
    text = generate_latest(registry).decode()
    return {
        family.name: [(s.labels, s.value) for s in family.samples]
        for family in text_string_to_metric_families(text)
    }


def one(samples: list, **labels: str) -> float:
    found = [value for got, value in samples if all(got.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (labels, samples)
    return found[0]


def test_every_point_metric_has_a_gauge() -> None:
    for metric in METRICS:
        assert metric in GAUGES or metric in PERFORMANCE_METRICS, metric
    assert all(spec.name.startswith("conveyor_monitoring_") for spec in GAUGES.values())


def test_gauges_carry_the_report_values_with_the_serving_labels() -> None:
    points, report = sample_points()
    families = scrape(lambda: points)
    version = {"model": "churn", "version": "3", "alias": "champion"}
    drift = report.drift
    assert one(families["conveyor_monitoring_share_drifted"], **version) == pytest.approx(drift.share_drifted)
    assert one(families["conveyor_monitoring_dataset_drift"], **version) == float(drift.dataset_drift)
    x = drift.column("x")
    score = families["conveyor_monitoring_drift_score"]
    assert one(score, **version, feature="x") == pytest.approx(x.statistic)
    assert one(families["conveyor_monitoring_drift_detected"], feature="x") == 1.0
    assert {labels["feature"] for labels, _ in score} == {
        c.column for c in (*drift.features, *drift.predictions)
    }
    quality = report.quality.column("y")
    assert one(families["conveyor_monitoring_missing_rate"], feature="y") == quality.missing_rate
    assert one(families["conveyor_monitoring_out_of_range_rate"], feature="y") == pytest.approx(
        quality.out_of_range_rate
    )
    assert one(families["conveyor_monitoring_rows"], **version) == report.rows
    assert one(families["conveyor_monitoring_schema_violations"], **version) == 0
    performance = families["conveyor_monitoring_performance"]
    assert one(performance, metric="accuracy", estimated="false") == pytest.approx(5 / 6)
    assert one(performance, metric="accuracy", estimated="true") == 0.8
    assert one(families["conveyor_monitoring_window_end_timestamp_seconds"], **version) == WINDOW_END / 1000
    assert families["conveyor_monitoring_collect_success"] == [({}, 1.0)]
    # Dataset-level gauges have no feature label; per-column ones always do.
    assert all("feature" not in labels for labels, _ in families["conveyor_monitoring_share_drifted"])


def test_the_latest_window_wins_and_unknown_metrics_are_left_out() -> None:
    old, _ = sample_points(WINDOW_END - HOUR_MS)
    new = [
        MonitorPoint("churn", "3", "champion", WINDOW_END - HOUR_MS, WINDOW_END, "share_drifted", "", 0.25),
        MonitorPoint("churn", "3", "champion", WINDOW_END - HOUR_MS, WINDOW_END, "made_up_metric", "", 1.0),
        MonitorPoint("churn", "4", "", WINDOW_END - HOUR_MS, WINDOW_END + HOUR_MS, "rows", "", 10.0),
    ]
    families = scrape(lambda: [*new, *old])
    assert one(families["conveyor_monitoring_share_drifted"], version="3") == 0.25
    assert not [name for name in families if "made_up" in name]
    ends = families["conveyor_monitoring_window_end_timestamp_seconds"]
    assert one(ends, version="3") == WINDOW_END / 1000
    assert one(ends, version="4", alias="") == (WINDOW_END + HOUR_MS) / 1000


def test_a_failing_source_is_reported_not_raised() -> None:
    def broken() -> list[MonitorPoint]:
        raise RuntimeError("database is down")

    assert scrape(broken) == {"conveyor_monitoring_collect_success": [({}, 0.0)]}


def test_registering_reads_nothing_and_describes_every_gauge() -> None:
    calls = []
    collector = MonitoringCollector(lambda: calls.append(1) or [])
    CollectorRegistry(auto_describe=True).register(collector)
    assert calls == []
    assert {family.name for family in collector.describe()} == {spec.name for spec in GAUGES.values()}


def test_collected_names_are_the_described_ones() -> None:
    points, _ = sample_points()
    described = {family.name for family in MonitoringCollector(list).describe()}
    collected = {family.name for family in MonitoringCollector(lambda: points).collect()}
    assert collected == described


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    store = SqlStore(f"sqlite:///{tmp_path / 'conveyor.db'}").open()
    yield store
    store.close()


def test_tracking_server_serves_metrics(store: SqlStore, tmp_path: Path) -> None:
    points, _ = sample_points()
    app = create_app(Settings(), service=TrackingService(store, ArtifactStore(str(tmp_path / "a"))))
    registry = CollectorRegistry(auto_describe=True)
    registry.register(MonitoringCollector(lambda: points))
    app.state.metrics_registry = registry
    with TestClient(app) as client:
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'conveyor_monitoring_share_drifted{alias="champion",model="churn",version="3"}' in response.text


def test_metrics_need_read_permission_with_auth(store: SqlStore, tmp_path: Path) -> None:
    identity, local = IdentityService.for_store(store), RequestContext.local()
    identity.create_user("prometheus", local, password="x" * 12)
    identity.grant("prometheus", Role.VIEWER, local)
    token = identity.issue_token("prometheus", local).secret
    service = TrackingService(store, ArtifactStore(str(tmp_path / "a")))
    with TestClient(create_app(Settings(auth=True), service=service)) as client:
        assert client.get("/metrics").status_code == 401
        response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert "conveyor_monitoring_collect_success" in response.text


def test_a_scrape_names_its_workspace_in_the_query_string(store: SqlStore, tmp_path: Path) -> None:
    """Prometheus sets ``params`` per job where it cannot set headers: ``/metrics?workspace=``."""
    identity, local = IdentityService.for_store(store), RequestContext.local()
    identity.create_workspace("team-a", local)
    identity.create_user("scraper", local)
    identity.grant("scraper", Role.VIEWER, local, "team-a")
    auth = {"Authorization": f"Bearer {identity.issue_token('scraper', local).secret}"}
    service = TrackingService(store, ArtifactStore(str(tmp_path / "a")))
    with TestClient(create_app(Settings(auth=True), service=service)) as client:
        assert client.get("/metrics", headers=auth).status_code == 403  # default: no role there
        assert client.get("/metrics", params={"workspace": "team-a"}, headers=auth).status_code == 200
        assert client.get("/metrics", params={"workspace": "../etc"}, headers=auth).status_code == 400
        # Only /metrics reads the parameter: elsewhere the workspace is the header's (default).
        searched = client.get(
            "/api/2.0/mlflow/experiments/search", params={"workspace": "team-a"}, headers=auth
        )
        assert searched.status_code == 403
