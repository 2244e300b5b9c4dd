"""Reading results back: point upserts, the latest window, time ranges, and the REST API with auth."""

# The fixtures come from monitor_fixtures by import, which pyflakes reads as redefinitions.
# ruff: noqa: F811

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from conveyor.config import Settings
from conveyor.errors import InvalidInput
from conveyor.identity import IdentityService, Permission, RequestContext, Role
from conveyor.monitoring import results
from conveyor.monitoring.jobs import run_monitor
from conveyor.monitoring.points import MonitorPoint
from conveyor.server.app import create_app
from conveyor.server.auth import required_permission
from conveyor.server.monitoring_api import MONITORING_PREFIX
from conveyor.store.actor import AuditActor, acting_as
from conveyor.tracking.service import TrackingService
from tests.monitoring.monitor_fixtures import (  # noqa: F401 - fixtures by name
    END,
    START,
    Served,
    backend,
    model_dir,
    open_context,
    reference_frame,
    serve,
)

HOUR = 3_600_000


def window_points(model: str, end: int, **values: float) -> list[dict[str, object]]:
    return [
        MonitorPoint(model, "1", "champion", end - HOUR, end, m, "", v).to_dict() for m, v in values.items()
    ]


def test_a_rewritten_window_replaces_its_points_and_latest_is_the_last_window(
    backend: str, tmp_path: Path
) -> None:
    ctx, registry = open_context(backend, tmp_path, events=())
    try:
        model = f"points-{uuid.uuid4().hex[:8]}"
        registry.create_model(model)
        records = ctx.records
        one, two = 10 * HOUR, 11 * HOUR
        run = records.start_run(model, one - HOUR, one, version="1", alias="champion", created_by="t")

        def write(end: int, points: list[dict[str, object]]) -> int:
            return records.write_points(
                run.run_id, model=model, version="1", window_start=end - HOUR, window_end=end, points=points
            )

        assert write(one, window_points(model, one, rows=10, share_drifted=0.5, f1=float("nan"))) == 2
        assert write(one, window_points(model, one, rows=12)) == 1  # the re-run replaces the window
        write(two, window_points(model, two, rows=20, share_drifted=0.25))
        history = results.points(ctx, model, 0, two)
        assert [(p.window_end, p.metric, p.value) for p in history] == [
            (one, "rows", 12.0),
            (two, "rows", 20.0),
            (two, "share_drifted", 0.25),
        ]
        assert [p.metric for p in results.points(ctx, model, one, two, "rows")] == ["rows"]
        latest = results.latest_points(ctx, model)
        assert {(p.window_end, p.metric) for p in latest} == {(two, "rows"), (two, "share_drifted")}
        assert {p.model for p in results.latest_points(ctx.store)} >= {model}

        with pytest.raises(InvalidInput, match="not of this window"):
            write(two, window_points(model, one, rows=1))
    finally:
        ctx.close()


@dataclass(frozen=True)
class Api:
    client: TestClient
    served: Served
    headers: dict[str, dict[str, str]]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[Api]:
    """A server with auth on a store holding one monitored model in the default workspace."""
    home = tmp_path_factory.mktemp("monitoring-api")
    ctx, registry = open_context(f"sqlite:///{home / 'conveyor.db'}", home, events=())
    identity, local = IdentityService.for_store(ctx.store), RequestContext.local()
    headers = {}
    for name, role, workspace in [
        ("vic", Role.VIEWER, "default"),
        ("cora", Role.CONTRIBUTOR, "default"),
        ("alice", Role.CONTRIBUTOR, "team-a"),
    ]:
        if workspace not in identity.list_workspaces():
            identity.create_workspace(workspace, local)
        identity.create_user(name, local)
        identity.grant(name, role, local, workspace)
        headers[name] = {
            "Authorization": f"Bearer {identity.issue_token(name, local).secret}",
            "X-Conveyor-Workspace": workspace,
        }
    with acting_as(AuditActor("setup", "user", None, "default")):
        served = serve(ctx, model_dir)
        served.log(reference_frame(200, seed=40, shift=1.0))
        run_monitor(ctx, served.uri, window="1h", end=END)
    app = create_app(Settings(auth=True), service=TrackingService(ctx.store, registry.artifacts))
    with TestClient(app) as client:
        yield Api(client, served, headers)
    ctx.close()


def test_rest_reads_points_runs_and_profiles(api: Api) -> None:
    name, viewer = api.served.name, api.headers["vic"]
    latest = api.client.get(f"{MONITORING_PREFIX}/points/latest", params={"model": name}, headers=viewer)
    assert latest.status_code == 200, latest.text
    rows = [p for p in latest.json()["points"] if p["metric"] == "rows"]
    assert [(p["value"], p["window_end"]) for p in rows] == [(200.0, int(END.timestamp() * 1000))]

    since = START.isoformat()
    ranged = api.client.get(
        f"{MONITORING_PREFIX}/points",
        params={"model": name, "since": since, "metric": "rows"},
        headers=viewer,
    ).json()["points"]
    assert [p["value"] for p in ranged] == [200.0]
    missing = api.client.get(f"{MONITORING_PREFIX}/points", params={"model": name}, headers=viewer)
    assert missing.status_code == 400 and "since" in missing.json()["message"]

    runs = api.client.get(f"{MONITORING_PREFIX}/runs", params={"model": name}, headers=viewer).json()["runs"]
    assert [r["status"] for r in runs] == ["FINISHED"]
    one = api.client.get(f"{MONITORING_PREFIX}/runs/{runs[0]['run_id']}", headers=viewer).json()
    assert one["rows"] == 200
    profile = api.client.get(f"{MONITORING_PREFIX}/profiles/{name}/1", headers=viewer).json()
    assert profile["path"] == f"registry/{name}/versions/1/profile.json" and profile["cbpe"] is True


def test_rest_rules_need_write_and_workspaces_see_only_their_models(api: Api) -> None:
    name, url = api.served.name, f"{MONITORING_PREFIX}/rules"
    body = {"model": name, "metric": "share_drifted", "op": ">", "threshold": 0.3, "severity": "critical"}
    refused = api.client.post(url, json=body, headers=api.headers["vic"])
    assert refused.status_code == 403
    created = api.client.post(url, json=body, headers=api.headers["cora"])
    assert created.status_code == 200, created.text
    rule = created.json()
    assert (rule["condition"], rule["created_by"]) == ("share_drifted > 0.3", "cora")
    bad = api.client.post(url, json={**body, "threshold": "high"}, headers=api.headers["cora"])
    assert bad.status_code == 400 and "threshold" in bad.json()["message"]
    listed = api.client.get(url, params={"model": name}, headers=api.headers["vic"]).json()["rules"]
    assert [r["rule_id"] for r in listed] == [rule["rule_id"]]
    alerts = api.client.get(f"{MONITORING_PREFIX}/alerts", params={"open": True}, headers=api.headers["vic"])
    assert alerts.status_code == 200 and alerts.json() == {"alerts": []}

    other = api.headers["alice"]
    assert api.client.get(f"{MONITORING_PREFIX}/points/latest", headers=other).json() == {"points": []}
    assert api.client.get(url, headers=other).json() == {"rules": []}
    assert api.client.post(url, json=body, headers=other).status_code == 404
    assert api.client.delete(f"{url}/{rule['rule_id']}", headers=other).status_code == 404

    removed = api.client.delete(f"{url}/{rule['rule_id']}", headers=api.headers["cora"])
    assert removed.status_code == 200 and removed.json()["rule_id"] == rule["rule_id"]


def test_reads_need_read_and_rule_changes_need_write() -> None:
    assert required_permission("GET", f"{MONITORING_PREFIX}/points/latest") is Permission.READ
    assert required_permission("POST", f"{MONITORING_PREFIX}/rules") is Permission.WRITE
    assert required_permission("DELETE", f"{MONITORING_PREFIX}/rules/abc") is Permission.WRITE


def test_results_need_the_sql_store() -> None:
    with pytest.raises(InvalidInput, match="SQL metadata store"):
        results.latest_points(object())  # type: ignore[arg-type]
