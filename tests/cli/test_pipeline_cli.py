"""``conveyor pipeline``: run, inspect, explain, resume; Ctrl-C and a killed engine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conveyor.cli import app
from conveyor.config import Settings
from conveyor.pipelines.runner import open_records, resume
from conveyor.store.sql.pipeline_records import RunState, StepState

FLOWS = str(Path(__file__).resolve().parents[1] / "pipelines" / "pipeline_flows.py")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in [k for k in os.environ if k.startswith("CONVEYOR_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CONVEYOR_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def run_json(*args: str) -> dict:
    code, output = invoke("pipeline", "run", *args, "--json")
    assert output.lstrip().startswith("{"), output
    data = json.loads(output)
    data["exit_code"] = code
    return data


def test_run_with_params_then_list_show_and_logs(home: Path) -> None:
    data = run_json(f"{FLOWS}:fan", "--param", "n=4")

    assert data["exit_code"] == 0
    assert data["run"]["status"] == "SUCCEEDED" and data["run"]["params"] == {"n": 4}
    run_id = data["run"]["id"]
    assert [s["node_id"] for s in data["steps"]] == ["numbers", "inc", "total"]

    code, listing = invoke("pipeline", "runs", "--json")
    assert code == 0 and [r["id"] for r in json.loads(listing)["runs"]] == [run_id]

    code, shown = invoke("pipeline", "show", run_id[:8])
    assert code == 0 and "SUCCEEDED" in shown and "total" in shown

    code, logs = invoke("pipeline", "logs", run_id, "total")
    assert code == 0 and "summing 4 numbers" in logs
    assert "input xs: 4 values" in logs and "out.json (json, 2 bytes, sha256 " in logs


def test_the_human_view_shows_progress_and_a_summary(home: Path) -> None:
    from conveyor.cli.pipeline import _Progress
    from conveyor.pipelines.engine import StepEvent

    code, output = invoke("pipeline", "run", f"{FLOWS}:chain", "-p", "n=2")
    assert code == 0
    assert "chain run" in output and "SUCCEEDED" in output and "3 steps, 0 reused from the cache" in output

    progress = _Progress(None)
    progress.event(StepEvent("inc", StepState.RUNNING, 1, 3, 10))
    progress.event(StepEvent("first", StepState.CACHED, 0, 1, 1, 5))
    from rich.console import Console

    console = Console(width=100, record=True)
    console.print(progress._render())
    text = console.export_text()
    assert "1 cached" in text and "1 running" in text and "3/10" in text


def test_a_second_run_is_cached_and_why_rerun_says_so(home: Path) -> None:
    first = run_json(f"{FLOWS}:chain", "-p", "n=2")
    second = run_json(f"{FLOWS}:chain", "-p", "n=2")

    assert {s["status"] for s in second["steps"]} == {"CACHED"}
    code, output = invoke("pipeline", "why-rerun", second["run"]["id"], "inc")
    assert code == 0
    assert output.strip() == f"inc did not run: its outputs were reused from run {first['run']['id']}"

    third = run_json(f"{FLOWS}:frames", "-p", "rows=4")
    fourth = run_json(f"{FLOWS}:frames", "-p", "rows=6")
    assert third["exit_code"] == fourth["exit_code"] == 0
    code, output = invoke("pipeline", "why-rerun", fourth["run"]["id"], "make_frame")
    assert output.startswith("parameter 'rows' changed")


def test_bad_parameters_are_refused_with_exit_1(home: Path) -> None:
    code, output = invoke("pipeline", "run", f"{FLOWS}:chain", "--param", "m=1")
    assert code == 1 and "has no parameter 'm'" in output and "n (int, default 5)" in output

    code, output = invoke("pipeline", "run", f"{FLOWS}:chain", "--param", "n=three")
    assert code == 1 and "cannot read 'three' as int" in output

    code, output = invoke("pipeline", "run", f"{FLOWS}:chain", "--param", "n")
    assert code == 1 and "--param takes NAME=VALUE" in output

    code, output = invoke("pipeline", "run", f"{FLOWS}:retrying")
    assert code == 1 and "needs a value for parameter 'folder'" in output

    code, output = invoke("pipeline", "run", "nowhere.py")
    assert code == 1 and "No pipeline file 'nowhere.py'" in output


def test_a_failed_run_exits_1_and_resume_finishes_it(home: Path, tmp_path: Path) -> None:
    flags = tmp_path / "flags"
    flags.mkdir()
    (flags / "closed").touch()
    failed = run_json(f"{FLOWS}:resumable", "-p", f"folder={flags}")
    assert failed["exit_code"] == 1 and failed["run"]["status"] == "FAILED"
    assert "gate: RuntimeError: gate closed" in failed["run"]["error"]

    (flags / "closed").unlink()
    code, output = invoke("pipeline", "resume", failed["run"]["id"], "--json")
    resumed = json.loads(output)
    assert code == 0 and resumed["run"]["status"] == "SUCCEEDED"
    assert resumed["run"]["resumed_from"] == failed["run"]["id"]
    ran = {s["node_id"] for s in resumed["steps"] if s["status"] == "SUCCEEDED"}
    assert ran == {"gate", "inc-2"}


def _start(home: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env["CONVEYOR_HOME"] = str(home)
    return subprocess.Popen(
        [sys.executable, "-m", "conveyor", "pipeline", "run", *args, "-q"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _wait_for_running(home: Path, node_id: str, process: subprocess.Popen[bytes]) -> str:
    records = open_records(Settings(home=home))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        runs = records.list_runs() if (home / "conveyor.db").exists() else []
        if runs:
            steps = {s.node_id: s.status for s in records.steps(runs[0].id)}
            if steps.get(node_id) is StepState.RUNNING:
                return runs[0].id
        time.sleep(0.2)
    raise AssertionError(f"step {node_id} never started")


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["local", "process"])
def test_ctrl_c_cancels_the_run_and_leaves_the_record_consistent(home: Path, executor: str) -> None:
    process = _start(home, f"{FLOWS}:slow", "--executor", executor)
    run_id = _wait_for_running(home, "sleepy", process)

    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 130, stderr
    assert b"Cancelled" in stderr
    records = open_records(Settings(home=home))
    assert records.get_run(run_id).status is RunState.CANCELLED
    steps = {s.node_id: s.status for s in records.steps(run_id)}
    assert steps == {"sleepy": StepState.CANCELLED, "inc": StepState.SKIPPED}


@pytest.mark.slow
def test_a_killed_engine_leaves_a_run_that_resume_completes(home: Path, tmp_path: Path) -> None:
    flags = tmp_path / "flags"
    flags.mkdir()
    process = _start(home, f"{FLOWS}:slow", "-p", "seconds=3")
    run_id = _wait_for_running(home, "sleepy", process)

    process.kill()
    process.communicate(timeout=30)

    settings = Settings(home=home)
    records = open_records(settings)
    assert records.get_run(run_id).status is RunState.RUNNING  # nobody was left to record the end
    resumed = resume(run_id, settings=settings)
    assert resumed.ok and resumed.output("inc") == 2
