"""Conveyor's own REST API at the HTTP level: its OpenAPI document and its error answers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from conveyor.artifacts import ArtifactStore
from conveyor.server.app import create_app
from conveyor.store import open_store
from conveyor.tracking.service import TrackingService

API = "/api/conveyor/v1"


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    home: Path = tmp_path_factory.mktemp("native")
    store = open_store(f"sqlite:///{home / 'conveyor.db'}")
    app = create_app(service=TrackingService(store, ArtifactStore(str(home / "artifacts"))))
    with TestClient(app) as client:
        yield client
    store.close()


def test_openapi_describes_the_native_api(http: TestClient) -> None:
    paths = http.get("/openapi.json").json()["paths"]
    for path in (f"{API}/runs", f"{API}/runs/{{run_id}}/batch", f"{API}/runs/search", f"{API}/experiments"):
        assert path in paths, path
    assert paths[f"{API}/runs/search"]["post"]["summary"].startswith("Search runs")


def test_health_and_version(http: TestClient) -> None:
    assert http.get("/health").text == "OK"
    assert http.get("/version").text


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code", "message"),
    [
        ("POST", f"{API}/experiments", b"{not json", 400, "INVALID_PARAMETER_VALUE", "Malformed JSON"),
        ("POST", f"{API}/experiments", b"[1, 2]", 400, "INVALID_PARAMETER_VALUE", "JSON object"),
        ("POST", f"{API}/experiments", b"{}", 400, "INVALID_PARAMETER_VALUE", "'name'"),
        ("POST", f"{API}/experiments", b'{"name": 5}', 400, "INVALID_PARAMETER_VALUE", "'name'"),
        ("GET", f"{API}/experiments/424242", None, 404, "RESOURCE_DOES_NOT_EXIST", "424242"),
        ("GET", f"{API}/runs/{'f' * 32}", None, 404, "RESOURCE_DOES_NOT_EXIST", "f" * 32),
        (
            "POST",
            f"{API}/runs/search",
            b'{"filter": "metrics.x >>> 1"}',
            400,
            "INVALID_PARAMETER_VALUE",
            "filter",
        ),
        ("GET", "/api/2.0/mlflow/no-such-endpoint", None, 404, "ENDPOINT_NOT_FOUND", ""),
    ],
)
def test_bad_requests_get_precise_errors(
    http: TestClient, method: str, path: str, body: bytes | None, status: int, code: str, message: str
) -> None:
    response = http.request(method, path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status
    assert response.json()["error_code"] == code
    assert message in response.json()["message"]
