"""The official MLflow client against a live server started with authentication on.

MLflow sends ``MLFLOW_TRACKING_TOKEN`` as a bearer token and
``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` as basic auth; both must work unchanged, and
refusals must reach the client as ``RestException`` with MLflow's error codes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import mlflow
import pytest
from mlflow.exceptions import RestException

from conveyor.config import Settings
from conveyor.errors import PermissionDenied
from conveyor.identity import IdentityService, RequestContext, Role
from conveyor.store.rest import RestStore
from conveyor.store.sql.store import SqlStore
from conveyor.testing.processes import stop_process
from conveyor.testing.servers import start_server
from conveyor.tracking.client import Client

pytestmark = pytest.mark.slow

CLIENT_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
_CREDENTIAL_VARIABLES = ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


@dataclass(frozen=True)
class AuthServer:
    url: str
    viewer_token: str
    contributor_token: str


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    """Principals are created on the database first, as an operator would, then the server starts."""
    home = tmp_path_factory.mktemp("auth-server")
    store = SqlStore(f"sqlite:///{home / 'conveyor.db'}").open()
    identity, local = IdentityService.for_store(store), RequestContext.local()
    tokens = {}
    for name, role in [("vic", Role.VIEWER), ("cora", Role.CONTRIBUTOR)]:
        identity.create_user(name, local, password=f"password-of-{name}")
        identity.grant(name, role, local)
        tokens[name] = identity.issue_token(name, local).secret
    store.close()
    url, process = start_server(home, env={"CONVEYOR_AUTH": "true"})
    try:
        yield AuthServer(url, tokens["vic"], tokens["cora"])
    finally:
        stop_process(process)


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A clean slate of MLflow credential variables; each test sets the ones it needs."""
    for name, value in CLIENT_ENV.items():
        monkeypatch.setenv(name, value)
    for name in _CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_no_credentials_is_unauthenticated(server: AuthServer, credentials: pytest.MonkeyPatch) -> None:
    with pytest.raises(RestException) as caught:
        mlflow.MlflowClient(server.url).search_experiments()
    assert caught.value.error_code == "UNAUTHENTICATED"


def test_viewer_token_searches_but_cannot_create(server: AuthServer, credentials: pytest.MonkeyPatch) -> None:
    credentials.setenv("MLFLOW_TRACKING_TOKEN", server.viewer_token)
    client = mlflow.MlflowClient(server.url)
    assert [e.name for e in client.search_experiments()] == ["Default"]
    with pytest.raises(RestException) as caught:
        client.create_experiment(f"exp-{uuid.uuid4().hex[:8]}")
    assert caught.value.error_code == "PERMISSION_DENIED"
    assert "'write' permission" in caught.value.message


def test_contributor_token_logs_a_run(server: AuthServer, credentials: pytest.MonkeyPatch) -> None:
    credentials.setenv("MLFLOW_TRACKING_TOKEN", server.contributor_token)
    client = mlflow.MlflowClient(server.url)
    experiment_id = client.create_experiment(f"exp-{uuid.uuid4().hex[:8]}")
    run = client.create_run(experiment_id)
    client.log_metric(run.info.run_id, "loss", 0.5)
    assert client.get_run(run.info.run_id).data.metrics == {"loss": 0.5}


def test_basic_auth_with_user_and_password(server: AuthServer, credentials: pytest.MonkeyPatch) -> None:
    credentials.setenv("MLFLOW_TRACKING_USERNAME", "cora")
    credentials.setenv("MLFLOW_TRACKING_PASSWORD", "password-of-cora")
    client = mlflow.MlflowClient(server.url)
    assert client.create_experiment(f"exp-{uuid.uuid4().hex[:8]}")
    credentials.setenv("MLFLOW_TRACKING_PASSWORD", "wrong password")
    with pytest.raises(RestException) as caught:
        client.search_experiments()
    assert caught.value.error_code == "UNAUTHENTICATED"


def test_conveyor_rest_store_sends_its_token(server: AuthServer) -> None:
    viewer = RestStore(server.url, token=server.viewer_token, max_retries=0)
    try:
        assert viewer.get_experiment("0").name == "Default"
        with pytest.raises(PermissionDenied, match="'write' permission"):
            viewer.create_experiment(f"exp-{uuid.uuid4().hex[:8]}")
    finally:
        viewer.close()


def test_tracking_client_takes_the_token_from_settings_or_mlflow(
    server: AuthServer, credentials: pytest.MonkeyPatch
) -> None:
    viewer = Client(server.url, settings=Settings(tracking_token=server.viewer_token))
    assert viewer.get_experiment("0").name == "Default"
    viewer.close()
    credentials.setenv("MLFLOW_TRACKING_TOKEN", server.contributor_token)
    contributor = Client(server.url, settings=Settings())
    assert contributor.create_experiment(f"exp-{uuid.uuid4().hex[:8]}")
    contributor.close()
