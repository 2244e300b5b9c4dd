"""``conveyor registry`` against a scratch ``CONVEYOR_HOME``, read back through ``--json``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from conveyor.cli import app
from tests.registry.conftest import save_model


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("CONVEYOR_TRACKING_URI", "CONVEYOR_DATABASE_URL", "CONVEYOR_ARTIFACT_ROOT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CONVEYOR_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def ok(*args: str) -> dict:
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_register_alias_and_history(home: Path, tmp_path: Path) -> None:
    model = save_model(tmp_path / "m", seed=0)
    assert ok("registry", "create", "churn")["name"] == "churn"
    assert ok("registry", "register", "churn", str(model))["version"] == 1
    assert ok("registry", "register", "churn", str(model))["version"] == 2
    first = ok("registry", "alias", "set", "churn", "best", "1", "--reason", "baseline")
    ok("registry", "alias", "set", "churn", "best", "2", "--reason", "better")
    assert ok("registry", "show", "churn")["aliases"] == {"best": 2}
    versions = ok("registry", "versions", "churn")["model_versions"]
    assert [(v["version"], v["aliases"]) for v in versions] == [(2, ["best"]), (1, [])]
    assert [m["name"] for m in ok("registry", "list")["registered_models"]] == ["churn"]

    events = ok("registry", "history", "churn", "--alias", "best")["events"]
    assert [(e["old_version"], e["new_version"], e["reason"]) for e in events] == [
        (None, 1, "baseline"),
        (1, 2, "better"),
    ]
    moment = datetime.fromtimestamp(first["time"] / 1000, UTC).isoformat(timespec="milliseconds")
    [then] = ok("registry", "history", "churn", "--alias", "best", "--at", moment)["events"]
    assert then["new_version"] == 1
    assert ok("registry", "history", "churn", "--alias", "best", "--at", "2000-01-01T00:00Z")["events"] == []

    removed = ok("registry", "alias", "delete", "churn", "best")
    assert removed["new_version"] is None
    table = cli("registry", "history", "churn")
    assert table.exit_code == 0 and "v1 → v2" in table.stdout


def test_errors_exit_1_with_a_headline(home: Path) -> None:
    ok("registry", "create", "churn")
    reserved = cli("registry", "alias", "set", "churn", "latest", "1")
    assert reserved.exit_code == 1
    assert "'latest' alias name (case insensitive) is reserved." in reserved.output
    naive = cli("registry", "history", "churn", "--alias", "best", "--at", "2026-03-01T10:00")
    assert naive.exit_code == 1 and "no time zone" in naive.output
    missing = cli("registry", "show", "nope")
    assert missing.exit_code == 1 and "not found" in missing.output
