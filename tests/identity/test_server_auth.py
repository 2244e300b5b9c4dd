"""The server with authentication on, in process: 401, 403, roles per route, identity admin API."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from conveyor.artifacts import ArtifactStore
from conveyor.config import Settings
from conveyor.identity import IdentityService, RequestContext, Role
from conveyor.server.app import create_app
from conveyor.server.auth import exposure_warning, is_loopback, required_permission
from conveyor.store.sql.store import SqlStore
from conveyor.tracking.service import TrackingService

API = "/api/conveyor/v1"
IDENTITY = f"{API}/identity"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """An app with auth on, and a bearer header per role."""
    home: Path = tmp_path_factory.mktemp("auth")
    store = SqlStore(f"sqlite:///{home / 'conveyor.db'}").open()
    identity, local = IdentityService.for_store(store), RequestContext.local()
    headers = {}
    for name, role in [("vic", Role.VIEWER), ("cora", Role.CONTRIBUTOR), ("ada", Role.ADMIN)]:
        identity.create_user(name, local, password="password-of-" + name)
        identity.grant(name, role, local)
        headers[name] = f"Bearer {identity.issue_token(name, local).secret}"
    service = TrackingService(store, ArtifactStore(str(home / "artifacts")))
    with TestClient(create_app(Settings(auth=True), service=service)) as client:
        yield client, headers
    store.close()


def test_probes_stay_open(setup: tuple[TestClient, dict[str, str]]) -> None:
    client, _ = setup
    assert client.get("/health").text == "OK"
    assert client.get("/version").status_code == 200


@pytest.mark.parametrize("path", [f"{API}/experiments/0", "/api/2.0/mlflow/experiments/get?experiment_id=0"])
def test_no_credentials_is_401_with_a_challenge(setup: tuple[TestClient, dict[str, str]], path: str) -> None:
    client, _ = setup
    response = client.get(path)
    assert response.status_code == 401
    assert response.json()["error_code"] == "UNAUTHENTICATED"
    assert response.headers.get_list("www-authenticate") == [
        'Bearer realm="conveyor"',
        'Basic realm="conveyor"',
    ]


def test_viewer_reads_but_may_not_write(setup: tuple[TestClient, dict[str, str]]) -> None:
    client, headers = setup
    viewer = {"Authorization": headers["vic"]}
    assert client.post("/api/2.0/mlflow/experiments/search", json={}, headers=viewer).status_code == 200
    response = client.post("/api/2.0/mlflow/experiments/create", json={"name": "x"}, headers=viewer)
    assert response.status_code == 403
    assert response.json()["error_code"] == "PERMISSION_DENIED"
    assert "'write' permission" in response.json()["message"]


def test_contributor_writes_and_basic_auth_works(setup: tuple[TestClient, dict[str, str]]) -> None:
    client, headers = setup
    response = client.post(
        f"{API}/experiments", json={"name": "by-cora"}, headers={"Authorization": headers["cora"]}
    )
    assert response.status_code == 200, response.text
    basic = "Basic " + base64.b64encode(b"cora:password-of-cora").decode()
    assert (
        client.get(f"{API}/experiments/by-name?name=by-cora", headers={"Authorization": basic}).status_code
        == 200
    )


def test_identity_api_is_for_admins(setup: tuple[TestClient, dict[str, str]]) -> None:
    client, headers = setup
    cora, ada = {"Authorization": headers["cora"]}, {"Authorization": headers["ada"]}
    assert client.get(f"{IDENTITY}/principals", headers=cora).status_code == 403
    assert client.get(f"{IDENTITY}/whoami", headers=cora).json()["roles"] == {"default": ["contributor"]}

    created = client.post(f"{IDENTITY}/service-accounts", json={"name": "trainer"}, headers=ada)
    assert created.json()["kind"] == "service"
    grant = {"principal": "trainer", "role": "contributor"}
    assert client.post(f"{IDENTITY}/role-bindings", json=grant, headers=ada).json()["role"] == "contributor"
    issued = client.post(
        f"{IDENTITY}/principals/trainer/tokens", json={"expires_in_days": 1}, headers=ada
    ).json()
    trainer = {"Authorization": f"Bearer {issued['secret']}"}
    assert client.post(f"{API}/experiments", json={"name": "by-trainer"}, headers=trainer).status_code == 200

    listed = client.get(f"{IDENTITY}/tokens", params={"principal": "trainer"}, headers=ada).json()["tokens"]
    assert [t["token_id"] for t in listed] == [issued["token"]["token_id"]]
    assert issued["secret"] not in str(listed)
    client.post(f"{IDENTITY}/tokens/{issued['token']['token_id']}/revoke", headers=ada)
    assert client.get(f"{API}/experiments/0", headers=trainer).status_code == 401


def test_identity_api_is_absent_without_auth(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'c.db'}").open()
    app = create_app(Settings(auth=False), service=TrackingService(store, ArtifactStore(str(tmp_path / "a"))))
    with TestClient(app) as client:
        assert client.get(f"{IDENTITY}/principals").status_code == 404
        assert client.get(f"{API}/experiments/0").status_code == 200
    store.close()


@pytest.mark.parametrize(
    ("method", "path", "permission"),
    [
        ("GET", "/api/2.0/mlflow/runs/get", "read"),
        ("POST", "/api/2.0/mlflow/runs/search", "read"),
        ("POST", "/ajax-api/2.0/mlflow/logged-models/search", "read"),
        ("POST", f"{API}/runs/count", "read"),
        ("POST", "/api/2.0/mlflow/runs/log-batch", "write"),
        ("DELETE", "/api/2.0/mlflow/experiments/delete", "write"),
        ("GET", f"{IDENTITY}/principals", "admin"),
        ("GET", f"{IDENTITY}/whoami", None),
        ("POST", "/api/2.0/mlflow/registered-models/alias", ("write", "deploy")),
        ("DELETE", "/ajax-api/2.0/mlflow/registered-models/alias", ("write", "deploy")),
        ("GET", "/api/2.0/mlflow/registered-models/alias", "read"),
    ],
)
def test_route_permissions(method: str, path: str, permission: str | tuple[str, ...] | None) -> None:
    assert required_permission(method, path) == permission


def test_exposure_warning() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert exposure_warning("127.0.0.1", auth=False) is None
    assert exposure_warning("0.0.0.0", auth=True) is None
    warning = exposure_warning("0.0.0.0", auth=False)
    assert warning is not None and "without authentication" in warning and "--auth" in warning
