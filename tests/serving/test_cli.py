"""``conveyor serve``: checks before starting, and a real multi-worker server process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from conveyor.cli import app
from conveyor.config import Settings
from conveyor.testing.processes import free_port, log_tail, stop_process


def environment(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env.update(
        CONVEYOR_HOME=str(settings.home),
        CONVEYOR_DATABASE_URL=settings.resolved_database_url(),
        CONVEYOR_ARTIFACT_ROOT=settings.resolved_artifact_root(),
    )
    return env


def test_mistakes_fail_before_the_server_starts(
    settings: Settings, churn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in environment(settings).items():
        if key.startswith("CONVEYOR_"):
            monkeypatch.setenv(key, value)
    runner = CliRunner()
    unknown = runner.invoke(app, ["serve", "models:/churn@nobody"])
    assert unknown.exit_code == 1 and "nobody" in unknown.stderr
    missing = runner.invoke(app, ["serve", str(tmp_path / "no-such-model")])
    assert missing.exit_code == 1 and "no model folder" in missing.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  - name: churn\n    uri: models:/churn/1\n    batching: {max_batch_size: 0}\n")
    invalid = runner.invoke(app, ["serve", "--config", str(bad)])
    assert invalid.exit_code == 1 and "models[0].batching.max_batch_size" in invalid.stderr
    both = runner.invoke(app, ["serve", "models:/churn/1", "--config", str(bad)])
    assert both.exit_code == 1 and "not both" in both.stderr


@pytest.mark.slow
def test_two_workers_serve_and_shut_down_gracefully(
    settings: Settings, churn: str, model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    config = tmp_path / "deployment.yaml"
    config.write_text(
        "models:\n"
        "  - {name: churn, uri: 'models:/churn@champion'}\n"
        f"  - {{name: slow, uri: '{model_dirs['slow']}', allow_pickle: true}}\n"
    )
    port = free_port()
    stdout, stderr = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "conveyor",
                "serve",
                "--config",
                str(config),
                "--port",
                str(port),
                "--workers",
                "2",
            ],
            env=environment(settings),
            stdout=out,
            stderr=err,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process, stderr)
        response = httpx.post(
            f"{url}/invocations", json={"inputs": [[30.0, 40.0, 10.0]]}, headers={"X-Request-ID": "cli-1"}
        )
        assert response.status_code == 200 and response.headers["X-Conveyor-Model-Version"] == "1"
        in_flight: dict[str, Any] = {}
        slow = threading.Thread(
            target=lambda: in_flight.update(
                response=httpx.post(
                    f"{url}/models/slow/invocations", json={"inputs": [[1.0, 2.0, 3.0]]}, timeout=10
                )
            )
        )
        slow.start()
        time.sleep(0.2)  # the slow model is predicting
        process.send_signal(signal.SIGTERM)
        slow.join(10)
        assert in_flight["response"].status_code == 200
        assert in_flight["response"].json() == {"predictions": [6.0]}
        assert process.wait(15) == 0
    finally:
        stop_process(process)
    lines = [json.loads(line) for line in stdout.read_text().splitlines() if line.startswith("{")]
    access = next(line for line in lines if line["request_id"] == "cli-1")
    assert access["status"] == 200 and access["path"] == "/invocations" and access["version"] == "1"


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"conveyor serve exited with {process.returncode}: {log_tail(log)}")
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"conveyor serve was not ready within {timeout} s: {log_tail(log)}")
