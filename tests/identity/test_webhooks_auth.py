"""Who may manage webhooks: the official ``mlflow`` client against a live server with ``--auth``.

Webhooks send registry data to any URL and receive every workspace's events, so every
method needs ``admin`` in ``default``: the edge refuses anyone without ``admin`` in the
request's workspace, the router an admin of another workspace only.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import mlflow
import pytest
from mlflow.exceptions import RestException

from conveyor.identity import IdentityService, Permission, RequestContext, Role
from conveyor.server.auth import required_permission
from conveyor.store.sql.store import SqlStore
from conveyor.testing.processes import stop_process
from conveyor.testing.servers import start_server

pytestmark = pytest.mark.slow

SECRET = "webhook-secret-0123456789"


@dataclass(frozen=True)
class AuthServer:
    url: str
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    home = tmp_path_factory.mktemp("webhooks-auth")
    store = SqlStore(f"sqlite:///{home / 'conveyor.db'}").open()
    identity, local = IdentityService.for_store(store), RequestContext.local()
    identity.create_workspace("team-a", local)
    tokens = {}
    for name, role, workspace in [
        ("ada", Role.ADMIN, "default"),
        ("vic", Role.VIEWER, "default"),
        ("cora", Role.CONTRIBUTOR, "default"),
        ("tess", Role.ADMIN, "team-a"),
    ]:
        identity.create_user(name, local)
        identity.grant(name, role, local, workspace)
        tokens[name] = identity.issue_token(name, local).secret
    store.close()
    url, process = start_server(home, env={"CONVEYOR_AUTH": "true"})
    try:
        yield AuthServer(url, tokens)
    finally:
        stop_process(process)


@pytest.fixture
def as_user(server: AuthServer, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_WORKSPACE"):
        monkeypatch.delenv(name, raising=False)

    def switch(user: str | None, workspace: str | None = None) -> mlflow.MlflowClient:
        if user is None:
            monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
        else:
            monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", server.tokens[user])
        if workspace is not None:
            monkeypatch.setenv("MLFLOW_WORKSPACE", workspace)
        return mlflow.MlflowClient(server.url)

    return switch


@pytest.mark.parametrize("prefix", ["/api/2.0/mlflow/webhooks", "/ajax-api/2.0/mlflow/webhooks"])
@pytest.mark.parametrize("method", ["GET", "POST", "PATCH", "DELETE"])
def test_every_webhook_route_needs_admin(prefix: str, method: str) -> None:
    for path in (prefix, f"{prefix}/0123abcd", f"{prefix}/0123abcd/test"):
        assert required_permission(method, path) == Permission.ADMIN


def test_only_an_admin_of_default_manages_webhooks(as_user) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RestException) as caught:
        as_user(None).list_webhooks()
    assert caught.value.error_code == "UNAUTHENTICATED"
    for user in ("vic", "cora"):
        with pytest.raises(RestException) as caught:
            as_user(user).list_webhooks()
        assert caught.value.error_code == "PERMISSION_DENIED"
        assert "'admin' permission in workspace 'default'" in caught.value.message

    admin = as_user("ada")
    created = admin.create_webhook(
        f"deploy-{uuid.uuid4().hex[:6]}", "http://ci/hook", ["model_version.created"], secret=SECRET
    )
    assert [w.webhook_id for w in admin.list_webhooks()] == [created.webhook_id]
    with pytest.raises(RestException) as caught:
        as_user("cora").delete_webhook(created.webhook_id)
    assert caught.value.error_code == "PERMISSION_DENIED"
    as_user("ada").delete_webhook(created.webhook_id)  # the client reads the token per request


def test_an_admin_of_another_workspace_may_not(as_user) -> None:  # type: ignore[no-untyped-def]
    """Tess passes the edge in team-a, where she is admin; the router wants default's admin."""
    with pytest.raises(RestException) as caught:
        as_user("tess", "team-a").create_webhook(
            "exfiltrate", "http://elsewhere/hook", ["model_version.created"], secret=SECRET
        )
    assert caught.value.error_code == "PERMISSION_DENIED"
    assert "Webhooks are server-wide" in caught.value.message
    assert "workspace 'default'" in caught.value.message
    assert as_user("ada", "default").list_webhooks() == []
