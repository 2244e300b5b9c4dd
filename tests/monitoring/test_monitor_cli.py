"""``conveyor monitor``: profile from Parquet, run, show, alerts, and a schedule whose pipeline runs."""

# The fixtures come from monitor_fixtures by import, which pyflakes reads as redefinitions.
# ruff: noqa: F811

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from conveyor.cli import app
from conveyor.config import Settings
from conveyor.monitoring import results
from conveyor.monitoring.pipeline import TARGET
from conveyor.pipelines import run_pipeline
from tests.monitoring.monitor_fixtures import (  # noqa: F401 - fixtures by name
    END,
    Served,
    model_dir,
    open_context,
    reference_frame,
    serve,
)

runner = CliRunner()


@pytest.fixture
def cli_served(tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    """An unprofiled champion in a local store the CLI reaches through the environment."""
    url = f"sqlite:///{tmp_path / 'conveyor.db'}"
    for key, value in {
        "CONVEYOR_HOME": str(tmp_path / "home"),
        "CONVEYOR_DATABASE_URL": url,
        "CONVEYOR_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("CONVEYOR_TRACKING_URI", raising=False)
    ctx, _ = open_context(url, tmp_path, events=())
    yield serve(ctx, model_dir, profile=False)
    ctx.close()


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_profile_run_show_and_alerts(cli_served: Served, tmp_path: Path) -> None:
    served, logs = cli_served, str(tmp_path / "predictions")
    reference = tmp_path / "reference.parquet"
    pq.write_table(
        pa.Table.from_pandas(reference_frame(3000, seed=1), preserve_index=False),
        reference,
        row_group_size=700,
    )
    profiled = json.loads(
        invoke(
            "monitor",
            "profile",
            f"models:/{served.name}/1",
            "--data",
            str(reference),
            "--predictions-from-model",
            "--labels-column",
            "y",
            "--json",
        )
    )
    assert (profiled["rows"], profiled["task"], profiled["cbpe"]) == (3000, "classification", True)

    rule = json.loads(
        invoke(
            "monitor",
            "alerts",
            "add",
            served.name,
            "--metric",
            "drift_detected",
            "--op",
            "==",
            "--threshold",
            "1",
            "--feature",
            "input.x1",
            "--severity",
            "critical",
            "--json",
        )
    )
    assert rule["condition"] == "drift_detected[input.x1] == 1"
    served.log(reference_frame(300, seed=2, shift=2.0))
    ran = json.loads(
        invoke(
            "monitor",
            "run",
            served.uri,
            "--window",
            "1h",
            "--end",
            END.isoformat(),
            "--log-root",
            logs,
            "--json",
        )
    )
    assert ran["run"]["status"] == "FINISHED" and ran["run"]["rows"] == 300
    assert [a["state"] for a in ran["alerts"]] == ["OPEN"]

    shown = json.loads(
        invoke("monitor", "show", served.name, "--last", "3650d", "--metric", "rows", "--json")
    )
    assert [p["value"] for p in shown["points"]] == [300.0]
    table = invoke("monitor", "show", served.name, "--last", "3650d")
    assert "share_drifted" in table and "per-column points not shown" in table
    assert "FINISHED" in invoke("monitor", "runs", served.name)

    opened = json.loads(invoke("monitor", "alerts", "list", served.name, "--open", "--json"))["alerts"]
    assert [(a["feature"], a["severity"]) for a in opened] == [("input.x1", "critical")]
    rules = json.loads(invoke("monitor", "alerts", "rules", "--json"))["rules"]
    assert [r["rule_id"] for r in rules] == [rule["rule_id"]]
    listing = invoke("monitor", "alerts", "rules")
    assert "drift_detected[input.x1] == 1" in listing
    invoke("monitor", "alerts", "remove", rule["rule_id"])
    assert json.loads(invoke("monitor", "alerts", "list", "--open", "--json")) == {"alerts": []}

    missing = runner.invoke(
        app, ["monitor", "alerts", "add", served.name, "--metric", "nope", "--op", ">", "--threshold", "1"]
    )
    assert missing.exit_code == 1 and "Unknown monitor metric" in missing.output


def test_schedule_stores_a_pipeline_schedule_whose_run_monitors(cli_served: Served, tmp_path: Path) -> None:
    served, logs = cli_served, str(tmp_path / "predictions")
    reference = tmp_path / "reference.parquet"
    pq.write_table(pa.Table.from_pandas(reference_frame(1000, seed=1), preserve_index=False), reference)
    invoke(
        "monitor", "profile", f"models:/{served.name}/1", "--data", str(reference), "--predictions-from-model"
    )
    created = json.loads(
        invoke(
            "monitor",
            "schedule",
            served.uri,
            "--window",
            "1h",
            "--cron",
            "0 * * * *",
            "--log-root",
            logs,
            "--json",
        )
    )
    assert created["target"] == TARGET
    assert created["params"] == {"uri": served.uri, "window": "1h", "log_root": logs}
    assert created["name"] == f"monitor-{served.name}-champion-1h"
    assert created["name"] in invoke("pipeline", "schedules", "list")

    served.log(reference_frame(100, seed=3))
    params = {**created["params"], "end": END.isoformat()}
    outcome = run_pipeline(TARGET, params, settings=Settings())
    outcome.raise_for_status()
    summary = outcome.output("monitor_window")
    assert (summary["model"], summary["rows"]) == (served.name, 100)
    assert results.get_run(served.ctx, summary["run_id"]).status.value == "FINISHED"
