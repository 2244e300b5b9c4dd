"""Two teams on one live server with ``--auth``, each through the official ``mlflow`` client.

The client names its workspace with ``MLFLOW_WORKSPACE`` (sent as ``X-MLFLOW-WORKSPACE``
once the server's ``server-info`` says workspaces are enabled). A member of one team never
reads or changes the other's experiments, runs, artifacts or models: they are "not found";
asking for the other workspace outright is refused with the missing permission named.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import mlflow
import pytest
from mlflow.exceptions import MlflowException, RestException

from conveyor.identity import IdentityService, RequestContext, Role
from conveyor.store.sql.store import SqlStore
from conveyor.testing.processes import stop_process
from conveyor.testing.servers import start_server

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class TeamServer:
    url: str
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TeamServer]:
    home = tmp_path_factory.mktemp("teams")
    store = SqlStore(f"sqlite:///{home / 'conveyor.db'}").open()
    identity, local = IdentityService.for_store(store), RequestContext.local()
    tokens = {}
    for user, workspace in [("alice", "team-a"), ("bob", "team-b")]:
        identity.create_workspace(workspace, local)
        identity.create_user(user, local)
        identity.grant(user, Role.CONTRIBUTOR, local, workspace)
        tokens[user] = identity.issue_token(user, local).secret
    store.close()
    url, process = start_server(home, env={"CONVEYOR_AUTH": "true"})
    try:
        yield TeamServer(url, tokens)
    finally:
        stop_process(process)


@pytest.fixture
def as_member(server: TeamServer, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")

    def switch(user: str, workspace: str) -> mlflow.MlflowClient:
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", server.tokens[user])
        monkeypatch.setenv("MLFLOW_WORKSPACE", workspace)
        return mlflow.MlflowClient(server.url)

    return switch


def _code(exc: pytest.ExceptionInfo[MlflowException]) -> str:
    return exc.value.error_code


def test_a_team_never_sees_another_teams_objects(as_member, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    suffix = uuid.uuid4().hex[:8]
    alice = as_member("alice", "team-a")
    experiment_id = alice.create_experiment(f"churn-{suffix}")
    run = alice.create_run(experiment_id)
    alice.log_metric(run.info.run_id, "auc", 0.91)
    (tmp_path / "notes.txt").write_text("team a only")
    alice.log_artifact(run.info.run_id, str(tmp_path / "notes.txt"))
    alice.create_registered_model(f"churn-{suffix}")

    bob = as_member("bob", "team-b")
    assert f"churn-{suffix}" not in [e.name for e in bob.search_experiments()]
    assert bob.search_runs([experiment_id]) == []
    assert bob.search_registered_models(f"name = 'churn-{suffix}'") == []
    for attempt in (
        lambda: bob.get_experiment(experiment_id),
        lambda: bob.get_run(run.info.run_id),
        lambda: bob.log_metric(run.info.run_id, "auc", 0.1),
        lambda: bob.get_registered_model(f"churn-{suffix}"),
    ):
        with pytest.raises(RestException) as caught:
            attempt()
        assert _code(caught) == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException):
        bob.download_artifacts(run.info.run_id, "notes.txt", str(tmp_path / "stolen"))
    assert not (tmp_path / "stolen" / "notes.txt").exists()

    alice = as_member("alice", "team-a")
    assert [m.value for m in alice.get_metric_history(run.info.run_id, "auc")] == [0.91]
    local = alice.download_artifacts(run.info.run_id, "notes.txt", str(tmp_path / "mine"))
    assert Path(local).read_text() == "team a only"


def test_asking_for_another_teams_workspace_names_the_missing_permission(as_member) -> None:  # type: ignore[no-untyped-def]
    bob = as_member("bob", "team-a")
    with pytest.raises(RestException) as caught:
        bob.search_experiments()
    assert _code(caught) == "PERMISSION_DENIED"
    assert "'read' permission in workspace 'team-a'" in str(caught.value)


def test_an_invalid_workspace_header_is_a_bad_request(server: TeamServer) -> None:
    response = httpx.get(
        f"{server.url}/api/2.0/mlflow/experiments/search",
        headers={"Authorization": f"Bearer {server.tokens['alice']}", "X-Conveyor-Workspace": "../etc"},
    )
    assert response.status_code == 400
    assert "Invalid name '../etc'" in response.json()["message"]
