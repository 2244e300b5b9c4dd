"""The ``conveyor`` command, driven in-process against a scratch ``CONVEYOR_HOME``.

Listings are read through ``--json``, as a script would; human tables are only checked
for the values they must show.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner, Result

from conveyor.cli import _ConveyorGroup, app
from conveyor.cli.gc import parse_duration
from conveyor.errors import RunNotFound
from conveyor.store.sql.migrations import head_revision
from conveyor.tracking.client import Client

UNKNOWN_RUN = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Conveyor home, and no settings leaking in from the developer's shell."""
    for name in ("CONVEYOR_TRACKING_URI", "CONVEYOR_DATABASE_URL", "CONVEYOR_ARTIFACT_ROOT"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "home"
    monkeypatch.setenv("CONVEYOR_HOME", str(path))
    return path


@pytest.fixture
def client(home: Path) -> Iterator[Client]:
    home.mkdir(parents=True, exist_ok=True)
    c = Client()
    yield c
    c.close()


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def ok(*args: str) -> Result:
    result = invoke(*args)
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
    return result


def ok_json(*args: str) -> Any:
    return json.loads(ok(*args, "--json").stdout)


def make_run(client: Client, experiment_id: str, name: str, x: float, p: str) -> str:
    run = client.create_run(experiment_id, run_name=name)
    client.log_params(run.info.run_id, {"p": p})
    client.log_metric(run.info.run_id, "x", x)
    client.set_terminated(run.info.run_id)
    return run.info.run_id


# -- the command itself ---------------------------------------------------------------------


def test_version() -> None:
    from conveyor import __version__

    assert ok("--version").stdout.strip() == f"conveyor {__version__}"


def test_help_lists_commands_and_exit_codes() -> None:
    text = ok("--help").stdout
    for command in ("server", "experiments", "runs", "db", "gc"):
        assert command in text
    assert "Exit status" in text


def test_import_and_help_load_no_heavy_modules() -> None:
    """``conveyor --help`` must answer without loading database drivers, pandas or web stacks."""
    script = textwrap.dedent(
        """
        import json, sys
        sys.argv = ["conveyor", "--help"]
        import conveyor.cli
        try:
            conveyor.cli.main()
        except SystemExit:
            pass
        heavy = {"sqlalchemy", "pandas", "numpy", "fastapi", "starlette", "uvicorn", "adlfs",
                 "httpx", "psycopg", "alembic"}
        print(json.dumps(sorted(heavy & {name.split(".")[0] for name in sys.modules})))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_conveyor_errors_exit_1_with_headline_and_others_exit_2_with_traceback() -> None:
    tiny = typer.Typer(cls=_ConveyorGroup)

    @tiny.command()
    def missing() -> None:
        raise RunNotFound(f"Run with id={UNKNOWN_RUN} not found")

    @tiny.command()
    def broken() -> None:
        raise RuntimeError("boom")

    known = CliRunner().invoke(tiny, ["missing"])
    assert known.exit_code == 1
    assert "Run not found" in known.stderr and UNKNOWN_RUN in known.stderr
    assert "Traceback" not in known.stderr

    unknown = CliRunner().invoke(tiny, ["broken"])
    assert unknown.exit_code == 2
    assert "Internal error" in unknown.stderr
    assert "Traceback" in unknown.stderr and "RuntimeError: boom" in unknown.stderr


def test_usage_errors_stay_usage_errors() -> None:
    result = invoke("runs", "list", "--max-results", "0")
    assert result.exit_code == 2
    assert "Internal error" not in result.stderr


def test_bad_configuration_is_reported_not_crashed(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_AUTO_UPGRADE", "sometimes")
    result = invoke("experiments", "list")
    assert result.exit_code == 1
    assert "CONVEYOR_AUTO_UPGRADE" in result.stderr


# -- experiments ----------------------------------------------------------------------------


def test_experiments_create_list_delete(home: Path) -> None:
    created = ok_json("experiments", "create", "churn")
    listed = ok_json("experiments", "list")["experiments"]
    assert {e["name"] for e in listed} == {"Default", "churn"}
    assert "churn" in ok("experiments", "list").stdout

    ok("experiments", "delete", created["experiment_id"])
    assert [e["name"] for e in ok_json("experiments", "list")["experiments"]] == ["Default"]
    deleted = ok_json("experiments", "list", "--view", "deleted")["experiments"]
    assert [(e["name"], e["lifecycle_stage"]) for e in deleted] == [("churn", "deleted")]
    assert len(ok_json("experiments", "list", "--view", "all")["experiments"]) == 2


def test_duplicate_experiment_name_is_a_conveyor_error(home: Path) -> None:
    ok("experiments", "create", "churn")
    result = invoke("experiments", "create", "churn")
    assert result.exit_code == 1
    assert "Already exists" in result.stderr


# -- runs -----------------------------------------------------------------------------------


def test_runs_list_filter_with_or(client: Client) -> None:
    experiment_id = client.create_experiment("search")
    ids = {
        name: make_run(client, experiment_id, name, x, p)
        for name, x, p in [
            ("a", 2.0, "a"),
            ("b", 0.5, "b"),
            ("c", 0.1, "c"),
        ]
    }
    runs = ok_json("runs", "list", "--filter", 'metrics.x > 1 OR params.p = "b"')["runs"]
    assert {r["run_id"] for r in runs} == {ids["a"], ids["b"]}

    ordered = ok_json("runs", "list", "-e", experiment_id, "--order-by", "metrics.x DESC")["runs"]
    assert [r["run_name"] for r in ordered] == ["a", "b", "c"]
    assert ordered[0]["metrics"]["x"]["value"] == 2.0
    assert ordered[0]["params"] == {"p": "a"}

    top = ok_json("runs", "list", "--order-by", "metrics.x ASC", "--max-results", "1")["runs"]
    assert [r["run_name"] for r in top] == ["c"]
    table = ok("runs", "list", "--max-results", "2").stdout
    assert "Showing 2 of 3 runs" in table


def test_runs_list_defaults_to_every_experiment(client: Client) -> None:
    first = make_run(client, client.create_experiment("one"), "r1", 1.0, "a")
    second = make_run(client, client.create_experiment("two"), "r2", 1.0, "a")
    assert {r["run_id"] for r in ok_json("runs", "list")["runs"]} == {first, second}


def test_runs_show(client: Client, tmp_path: Path) -> None:
    run = client.create_run("0", run_name="shown", tags={"team": "risk"})
    run_id = run.info.run_id
    client.log_params(run_id, {"C": 0.5})
    for step in range(3):
        client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
    client.log_metric(run_id, "odd", float("nan"))
    client.log_input(run_id, pd.DataFrame({"a": [1, 2, 3]}), name="train", context="training")
    client.set_terminated(run_id)

    shown = ok_json("runs", "show", run_id)
    assert shown["run_name"] == "shown" and shown["status"] == "FINISHED"
    assert shown["params"] == {"C": "0.5"}
    assert shown["metrics"]["loss"]["step"] == 2
    assert shown["metrics"]["loss"]["value"] == pytest.approx(1 / 3)
    assert shown["metrics"]["odd"]["value"] == "NaN"  # strict JSON: no bare NaN
    assert shown["tags"]["team"] == "risk"
    [logged] = shown["inputs"]
    assert logged["dataset"]["name"] == "train" and len(logged["dataset"]["digest"]) == 64
    assert logged["tags"] == {"mlflow.data.context": "training"}

    text = ok("runs", "show", run_id).stdout
    for value in ("shown", "loss", "team", "train", "training"):
        assert value in text


def test_bad_filter_exits_1_with_message(client: Client) -> None:
    result = invoke("runs", "list", "--filter", "metrics.x >> 1")
    assert result.exit_code == 1
    assert "Invalid input" in result.stderr
    assert "metrics.x >> 1" in result.stderr
    assert result.stdout == ""


def test_unknown_run_exits_1_with_message(home: Path) -> None:
    for args in (["runs", "show", UNKNOWN_RUN], ["runs", "delete", UNKNOWN_RUN]):
        result = invoke(*args)
        assert result.exit_code == 1
        assert "Run not found" in result.stderr
        assert UNKNOWN_RUN in result.stderr
        assert "Traceback" not in result.stderr


def test_runs_delete_is_soft(client: Client) -> None:
    run_id = make_run(client, "0", "doomed", 1.0, "a")
    ok("runs", "delete", run_id)
    assert ok_json("runs", "list")["runs"] == []
    assert [r["run_id"] for r in ok_json("runs", "list", "--view", "deleted")["runs"]] == [run_id]
    assert ok_json("runs", "show", run_id)["lifecycle_stage"] == "deleted"


def test_explicit_database_uri_beats_home(client: Client, tmp_path: Path) -> None:
    make_run(client, "0", "in-home", 1.0, "a")
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert ok_json("runs", "list", "--tracking-uri", other)["runs"] == []
    assert len(ok_json("runs", "list")["runs"]) == 1


def test_against_a_live_server(home: Path, live_server: str) -> None:
    name = f"over-http-{home.parent.name}"
    created = ok_json("experiments", "create", name, "--tracking-uri", live_server)
    listed = ok_json("experiments", "list", "--tracking-uri", live_server)["experiments"]
    assert created["experiment_id"] in {e["experiment_id"] for e in listed}
    result = invoke("runs", "show", UNKNOWN_RUN, "--tracking-uri", live_server)
    assert result.exit_code == 1 and "Run not found" in result.stderr


# -- db -------------------------------------------------------------------------------------


def test_db_upgrade_fresh_then_current(home: Path) -> None:
    head = head_revision()
    assert ok_json("db", "current") == {
        "database_url": f"sqlite:///{(home / 'conveyor.db').resolve()}",
        "current": None,
        "head": head,
        "up_to_date": False,
    }
    upgraded = ok_json("db", "upgrade")
    assert (upgraded["from"], upgraded["to"], upgraded["changed"]) == (None, head, True)
    assert ok_json("db", "current")["up_to_date"] is True

    again = ok_json("db", "upgrade")
    assert (again["from"], again["to"], again["changed"]) == (head, head, False)
    assert "nothing to do" in ok("db", "upgrade").stdout
    assert "up to date" in ok("db", "current").stdout


def test_db_upgrade_reports_from_and_to(home: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    text = ok("db", "upgrade", "--tracking-uri", url).stdout
    assert "(empty database)" in text and head_revision() in text


def test_db_commands_refuse_a_server_uri(home: Path) -> None:
    result = invoke("db", "upgrade", "--tracking-uri", "http://127.0.0.1:9")
    assert result.exit_code == 1
    assert "works on the database itself" in result.stderr


# -- gc -------------------------------------------------------------------------------------


def test_gc_removes_deleted_run_and_its_artifacts(client: Client, home: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.txt"
    report.write_text("bytes to reclaim\n")
    doomed = make_run(client, "0", "doomed", 1.0, "a")
    kept = make_run(client, "0", "kept", 2.0, "b")
    for run_id in (doomed, kept):
        client.log_artifact(run_id, report, "reports")

    def files(run_id: str) -> list[Path]:
        return [p for p in (home / "artifacts").rglob("*") if run_id in str(p) and p.is_file()]

    assert len(files(doomed)) == 1

    ok("runs", "delete", doomed)
    assert ok_json("gc", "--older-than", "7d") == {
        "removed": [],
        "removed_logged_models": [],
    }  # deleted just now

    removed = ok_json("gc")["removed"]
    assert removed == [{"run_id": doomed, "experiment_id": "0", "run_name": "doomed", "artifact_files": 1}]
    assert files(doomed) == []
    assert len(files(kept)) == 1
    assert invoke("runs", "show", doomed).exit_code == 1
    assert ok_json("runs", "show", kept)["run_name"] == "kept"
    assert "Nothing to remove" in ok("gc").stdout


def test_gc_table_output(client: Client) -> None:
    run_id = make_run(client, "0", "doomed", 1.0, "a")
    client.delete_run(run_id)
    text = ok("gc").stdout
    assert "Removed 1 run(s)" in text and run_id in text


def test_gc_rejects_bad_duration(home: Path) -> None:
    result = invoke("gc", "--older-than", "7x")
    assert result.exit_code == 1
    assert "Invalid duration '7x'" in result.stderr


@pytest.mark.parametrize(
    ("text", "ms"),
    [("90s", 90_000), ("30m", 1_800_000), ("12h", 43_200_000), ("7d", 604_800_000), ("1d12h", 129_600_000)],
)
def test_parse_duration(text: str, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.slow
def test_gc_through_a_server(home: Path, tmp_path: Path) -> None:
    """With a server URL, gc asks that server, which alone reaches its artifact root."""
    from conveyor.testing.processes import stop_process
    from conveyor.testing.servers import start_server

    server_home = tmp_path / "server-home"
    server_home.mkdir()
    url, process = start_server(server_home)
    try:
        remote = Client(url)
        try:
            report = tmp_path / "report.txt"
            report.write_text("remote bytes\n")
            doomed = make_run(remote, "0", "doomed", 1.0, "a")
            remote.log_artifact(doomed, report)
            remote.delete_run(doomed)
        finally:
            remote.close()
        assert any((server_home / "artifacts").rglob("report.txt"))

        removed = ok_json("gc", "--tracking-uri", url)["removed"]
        assert removed == [
            {"run_id": doomed, "experiment_id": "0", "run_name": "doomed", "artifact_files": 1}
        ]
        assert not any((server_home / "artifacts").rglob("report.txt"))
        assert invoke("runs", "show", doomed, "--tracking-uri", url).exit_code == 1
    finally:
        stop_process(process)
