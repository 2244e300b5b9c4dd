"""Start and stop the two servers under test, each on a free port with its own fresh folder.

Both run as subprocesses in their own process group, so stopping one also stops the
helper processes it spawned (MLflow starts a job runner and several queue consumers).
Their output goes to a log file in the server's folder, never to a pipe that could fill.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from conveyor.testing.processes import free_port

VENV_BIN = Path(sys.executable).parent


@dataclass
class Server:
    name: str
    url: str
    home: Path
    process: subprocess.Popen[bytes]
    command: list[str]
    log_path: Path

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _wait_for_health(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"{server.name} server exited with code {server.process.returncode} before answering "
                f"/health; last log lines:\n{server.log_tail()}"
            )
        try:
            if httpx.get(f"{server.url}/health", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{server.name} server at {server.url} did not answer within {timeout:.0f} s")


def _launch(name: str, home: Path, command: list[str], env: dict[str, str], port: int) -> Server:
    log_path = home / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=home,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Server(name, f"http://127.0.0.1:{port}", home, process, command, log_path)


def stop(server: Server) -> None:
    """Terminate the server's process group, then kill whatever is left of it."""
    if server.process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.process.wait(timeout=15)
    # Helpers of the group may outlive the leader; the group id is the leader's pid.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(server.process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.process.wait(timeout=5)


def start_mlflow(home: Path, timeout: float = 120.0) -> Server:
    """MLflow in its best configuration for this workload: SQLite, proxied artifacts, one worker."""
    port = free_port()
    command = [
        str(VENV_BIN / "mlflow"),
        "server",
        "--backend-store-uri",
        f"sqlite:///{home / 'mlflow.db'}",
        "--artifacts-destination",
        str(home / "mlartifacts"),
        "--serve-artifacts",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    # Its background job runner (GenAI jobs, a handful of queue consumers) does nothing for
    # tracking and would compete for the CPUs with the server under test.
    server = _launch("MLflow", home, command, {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}, port)
    try:
        _wait_for_health(server, timeout)
    except BaseException:
        stop(server)
        raise
    return server


def start_conveyor(home: Path, timeout: float = 60.0) -> Server:
    """Conveyor through ``conveyor server`` when that CLI exists, else uvicorn on the app factory."""
    port = free_port()
    cli = VENV_BIN / "conveyor"
    attempts = []
    if cli.exists():
        attempts.append([str(cli), "server", "--port", str(port), "--home", str(home)])
    attempts.append(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "conveyor.server.app:app_from_environment",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
    )
    errors = []
    for command in attempts:
        server = _launch("Conveyor", home, command, {"CONVEYOR_HOME": str(home)}, port)
        try:
            _wait_for_health(server, timeout)
        except RuntimeError as exc:
            stop(server)
            errors.append(f"{' '.join(command[:3])}: {exc}")
            continue
        except BaseException:
            stop(server)
            raise
        return server
    raise RuntimeError("Conveyor server did not start:\n" + "\n".join(errors))


def fresh_dir(root: Path, name: str) -> Path:
    """A new, empty folder for one server (the caller removes ``root`` at the end)."""
    path = root / name
    path.mkdir(parents=True)
    return path


def start_stub(home: Path, timeout: float = 30.0) -> Server:
    """The canned-response stub of ``stub.py``, for the client-only floor."""
    port = free_port()
    command = [sys.executable, str(Path(__file__).with_name("stub.py")), str(port)]
    server = _launch("stub", home, command, {}, port)
    try:
        _wait_for_health(server, timeout)
    except BaseException:
        stop(server)
        raise
    return server
