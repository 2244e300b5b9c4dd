"""A real Conveyor server process per test module, driven by the official MLflow client.

Nothing here mocks MLflow: the client speaks HTTP to the server exactly as it would to
``mlflow server``, so a wire-format drift fails these tests. Retries are switched off so
a server error surfaces at once instead of after minutes of back-off.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import mlflow
import pytest

from conveyor.testing.processes import stop_process
from conveyor.testing.servers import start_server

CLIENT_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
}


@dataclass(frozen=True)
class Server:
    url: str
    home: Path

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.home.resolve() / 'conveyor.db'}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server per module, with its own home folder (SQLite file and artifact root)."""
    home = tmp_path_factory.mktemp("mlflow-compat")
    url, process = start_server(home)
    try:
        yield Server(url, home)
    finally:
        stop_process(process)


@pytest.fixture(scope="module")
def tracking(server: Server) -> Iterator[str]:
    """Point MLflow's fluent API and ``MlflowClient()`` at the server for the whole module."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**CLIENT_ENV, "MLFLOW_TRACKING_URI": server.url}.items():
            patch.setenv(name, value)
        mlflow.set_tracking_uri(server.url)
        yield server.url
        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]


@pytest.fixture
def client(tracking: str) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking)


@pytest.fixture
def experiment_id(client: mlflow.MlflowClient) -> str:
    """A fresh experiment per test, so tests never see each other's runs."""
    return client.create_experiment(f"exp-{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="module")
def http(server: Server) -> Iterator[httpx.Client]:
    """Raw HTTP, for requests the MLflow client would never send."""
    with httpx.Client(base_url=server.url, timeout=30) as session:
        yield session
