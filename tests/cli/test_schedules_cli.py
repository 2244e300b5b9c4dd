"""``conveyor pipeline schedule``, ``pipeline schedules …``, ``scheduler`` and ``server --scheduler``.

The commands run in-process against a scratch ``CONVEYOR_HOME``, mounted on a small app
the way ``conveyor.cli`` mounts them; listings are read through ``--json``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from conveyor.cli import _ConveyorGroup
from conveyor.cli.schedules import register, scheduler
from conveyor.pipelines.schedules import LOG_FOLDER
from conveyor.store.sql.schedules import open_schedule_store
from conveyor.testing.processes import free_port, stop_process

#: 2024-01-01 00:00:00 UTC: a schedule created "then" has been due ever since.
LONG_AGO = 1_704_067_200_000


def build_app() -> typer.Typer:
    app = typer.Typer(cls=_ConveyorGroup)
    pipeline_app = typer.Typer()
    register(pipeline_app)
    app.add_typer(pipeline_app, name="pipeline")
    app.command("scheduler")(scheduler)
    return app


APP = build_app()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Conveyor home, and no settings leaking in from the developer's shell."""
    for name in ("CONVEYOR_TRACKING_URI", "CONVEYOR_DATABASE_URL", "CONVEYOR_ARTIFACT_ROOT"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "home"
    monkeypatch.setenv("CONVEYOR_HOME", str(path))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "churn.py").write_text("# a pipeline file\n")
    return path


def invoke(*args: str) -> Result:
    return CliRunner().invoke(APP, list(args))


def ok(*args: str) -> Result:
    result = invoke(*args)
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
    return result


def listed() -> list[dict[str, Any]]:
    schedules: list[dict[str, Any]] = json.loads(ok("pipeline", "schedules", "list", "--json").stdout)[
        "schedules"
    ]
    return schedules


def failure(*args: str) -> str:
    result = invoke(*args)
    assert result.exit_code == 1, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
    return result.stderr


def test_schedule_a_file_and_list_it(home: Path, tmp_path: Path) -> None:
    created = json.loads(
        ok(
            "pipeline",
            "schedule",
            "churn.py",
            "--cron",
            "0 3 * * *",
            "--param",
            "lr=0.1",
            "-p",
            "note=a=b",
            "--timezone",
            "Europe/Paris",
            "--json",
        ).stdout
    )
    assert created["name"] == "churn"  # the file's stem
    assert created["target"] == str(tmp_path / "churn.py")  # absolute: the scheduler may run elsewhere
    assert created["params"] == {"lr": "0.1", "note": "a=b"}
    assert (created["cron"], created["timezone"], created["executor"], created["enabled"]) == (
        "0 3 * * *",
        "Europe/Paris",
        "local",
        True,
    )
    assert listed() == [created]
    table = ok("pipeline", "schedules", "list").stdout
    assert "churn" in table
    assert "active" in table


def test_the_default_name_is_the_pipelines_and_the_human_output_says_when(home: Path) -> None:
    out = ok("pipeline", "schedule", "churn.py:weekly", "--cron", "@weekly", "--executor", "process").stdout
    assert out.startswith("Scheduled weekly (id ")
    assert "@weekly in UTC; next run " in out
    ok("pipeline", "schedule", "pkg.flows:nightly", "--cron", "0 1 * * *", "--name", "nightly-eu")
    assert [(s["name"], s["target"]) for s in listed()] == [
        ("nightly-eu", "pkg.flows:nightly"),
        ("weekly", f"{Path('churn.py').resolve()}:weekly"),
    ]


def test_an_invalid_cron_is_quoted_with_an_example(home: Path) -> None:
    err = failure("pipeline", "schedule", "churn.py", "--cron", "0 3 * *")
    assert "Invalid input" in err
    assert "Invalid cron expression '0 3 * *'" in err
    assert "'0 3 * * *'" in err
    assert listed() == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("missing.py",), "No pipeline file 'missing.py'"),
        (("churn.py", "--param", "lr"), "Invalid --param 'lr': write KEY=VALUE"),
        (("churn.py", "--param", "a=1", "--param", "a=2"), "--param a is given twice"),
        (("churn.py", "--timezone", "Nowhere/City"), "Unknown time zone 'Nowhere/City'"),
        (("churn.py", "--tracking-uri", "http://tracking:5000"), "works on the database itself"),
    ],
)
def test_bad_options_are_refused(home: Path, args: tuple[str, ...], message: str) -> None:
    assert message in failure("pipeline", "schedule", *args, "--cron", "0 3 * * *")


def test_a_taken_name_is_refused(home: Path) -> None:
    ok("pipeline", "schedule", "churn.py", "--cron", "0 3 * * *")
    assert "A schedule named 'churn' already exists" in failure(
        "pipeline", "schedule", "churn.py", "--cron", "0 4 * * *"
    )


def test_pause_resume_and_delete(home: Path) -> None:
    ok("pipeline", "schedule", "churn.py", "--cron", "0 3 * * *")
    schedule_id = listed()[0]["schedule_id"]
    assert ok("pipeline", "schedules", "pause", "churn").stdout == "Paused schedule churn\n"
    assert listed()[0]["enabled"] is False
    assert "paused" in ok("pipeline", "schedules", "list").stdout
    assert ok("pipeline", "schedules", "resume", schedule_id).stdout.startswith(
        "Resumed schedule churn; next run"
    )
    assert listed()[0]["enabled"] is True
    assert (
        ok("pipeline", "schedules", "delete", "churn").stdout
        == f"Deleted schedule churn (id {schedule_id})\n"
    )
    assert listed() == []
    err = failure("pipeline", "schedules", "delete", "churn")
    assert "Not found" in err
    assert "`conveyor pipeline schedules list`" in err


def make_due(home: Path, target: str) -> str:
    """A schedule created long ago, so it is due now; returns its id."""
    schedules = open_schedule_store(f"sqlite:///{home / 'conveyor.db'}")
    created = schedules.create("churn", target, "0 3 * * *", params={"lr": "0.1"}, now=LONG_AGO)
    schedules.close()
    return created.schedule_id


def test_scheduler_once_with_nothing_due(home: Path) -> None:
    assert ok("scheduler", "--once").stdout == "No schedule is due.\n"


PIPELINE = """
from conveyor import pipeline, step


@step
def scale(x: int, factor: float) -> float:
    return x * factor


@pipeline
def churn(lr: float = 0.5):
    scale(3, lr)
"""


def test_scheduler_once_runs_the_pipeline_and_waits_for_it(home: Path, tmp_path: Path) -> None:
    """End to end: the scheduled run is a real `conveyor pipeline run` of a real pipeline."""
    (tmp_path / "flow.py").write_text(PIPELINE)
    schedule_id = make_due(home, f"{tmp_path / 'flow.py'}:churn")
    out = ok("scheduler", "--once").stdout
    assert "started churn (pid " in out
    assert "churn: exited with status 0" in out
    [log] = (home / LOG_FOLDER).iterdir()
    command, *output = log.read_text().splitlines()
    assert " -m conveyor pipeline run " in command
    assert command.endswith(f"--param lr=0.1 --executor local --schedule-id {schedule_id}")
    assert any("SUCCEEDED" in line for line in output)
    assert ok("scheduler", "--once").stdout == "No schedule is due.\n"
    from conveyor.config import Settings
    from conveyor.pipelines.runner import open_records

    [run] = open_records(Settings(home=home)).list_runs("churn")
    assert run.schedule_id == schedule_id and run.status.value == "SUCCEEDED"
    listed = json.loads(ok("pipeline", "schedules", "list", "--json").stdout)
    assert listed["schedules"][0]["last_run_id"] == run.id


def test_server_with_scheduler_fires_due_schedules(home: Path, tmp_path: Path) -> None:
    """The real `conveyor server --scheduler` process: a due schedule's run is launched at start."""
    home.mkdir(parents=True)
    make_due(home, str(tmp_path / "churn.py"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    server = subprocess.Popen(
        [sys.executable, "-m", "conveyor.cli", "server", "--scheduler", "--port", str(free_port())],
        env={**env, "CONVEYOR_HOME": str(home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while not (home / LOG_FOLDER).is_dir() or not any((home / LOG_FOLDER).iterdir()):
            assert server.poll() is None, server.communicate()[0].decode()
            assert time.monotonic() < deadline, "the server's scheduler launched nothing within 30 s"
            time.sleep(0.05)
        server.send_signal(signal.SIGINT)
        output = server.communicate(timeout=20)[0].decode()
    finally:
        stop_process(server)
    assert "scheduler: pipeline schedules fire from this process" in output
    [log] = (home / LOG_FOLDER).iterdir()
    assert log.name.startswith("churn-")
