"""Raw HTTP against the MLflow routes: bad input gets MLflow's status, error code and message."""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from .conftest import Server

pytestmark = pytest.mark.slow

API = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"


def _error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error_code"] == code, body
    return str(body["message"])


@pytest.fixture(scope="module")
def new_run(http: httpx.Client) -> Callable[[], tuple[str, str]]:
    experiment = http.post(f"{API}/experiments/create", json={"name": f"errors-{uuid.uuid4().hex[:10]}"})
    experiment_id = experiment.json()["experiment_id"]

    def make() -> tuple[str, str]:
        created = http.post(f"{API}/runs/create", json={"experiment_id": experiment_id})
        return experiment_id, created.json()["run"]["info"]["run_id"]

    return make


def _metric(run_id: Any, **overrides: Any) -> dict[str, Any]:
    return {"run_id": run_id, "key": "m", "value": 1.0, "timestamp": int(time.time() * 1000), **overrides}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{not json", "Malformed JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"text"', "must be a JSON object"),
    ],
)
def test_malformed_bodies_are_400(http: httpx.Client, body: bytes, expected: str) -> None:
    response = http.post(f"{API}/runs/log-metric", content=body, headers={"Content-Type": "application/json"})
    assert expected in _error(response, 400, "INVALID_PARAMETER_VALUE")


def test_missing_and_mistyped_fields(http: httpx.Client, new_run: Callable[[], tuple[str, str]]) -> None:
    _, run_id = new_run()
    cases = [
        ({"key": "m", "value": 1, "timestamp": 1}, "Missing value for required parameter 'run_id'"),
        (_metric(31), "Invalid value 31 for parameter 'run_id' supplied"),
        ({"run_id": run_id, "value": 1, "timestamp": 1}, "Missing value for required parameter 'key'"),
        ({"run_id": run_id, "key": "m", "timestamp": 1}, "Missing value for required parameter 'value'"),
        ({"run_id": run_id, "key": "m", "value": 1}, "Missing value for required parameter 'timestamp'"),
        (_metric(run_id, value="abc"), "Invalid value \"abc\" for parameter 'value' supplied"),
        (_metric(run_id, value=True), "Invalid value true for parameter 'value' supplied"),
        (_metric(run_id, timestamp="soon"), "Invalid value \"soon\" for parameter 'timestamp' supplied"),
        (_metric(run_id, step=1.5), "Invalid value 1.5 for parameter 'step' supplied"),
    ]
    for body, expected in cases:
        message = _error(http.post(f"{API}/runs/log-metric", json=body), 400, "INVALID_PARAMETER_VALUE")
        assert expected in message, (body, message)

    no_name = http.post(f"{API}/experiments/create", json={})
    assert "Missing value for required parameter 'name'" in _error(no_name, 400, "INVALID_PARAMETER_VALUE")
    no_id = http.get(f"{API}/experiments/get")
    assert "Missing value for required parameter 'experiment_id'" in _error(
        no_id, 400, "INVALID_PARAMETER_VALUE"
    )
    bad_tags = http.post(f"{API}/runs/log-batch", json={"run_id": run_id, "tags": {"a": "b"}})
    assert "parameter 'tags'" in _error(bad_tags, 400, "INVALID_PARAMETER_VALUE")


def test_protobuf_json_spellings_are_accepted(
    http: httpx.Client, new_run: Callable[[], tuple[str, str]]
) -> None:
    """int64 as strings, doubles as "NaN"/"Infinity", enums by number: what protobuf's JSON allows."""
    _, run_id = new_run()
    for value in ("NaN", "Infinity", "-Infinity", "2.5", 3):
        response = http.post(
            f"{API}/runs/log-metric", json=_metric(run_id, value=value, step="7", timestamp="42")
        )
        assert response.status_code == 200, response.text
    history = http.get(f"{API}/metrics/get-history", params={"run_id": run_id, "metric_key": "m"}).json()
    values = sorted(str(m["value"]) for m in history["metrics"])
    assert values == sorted(["NaN", "Infinity", "-Infinity", "2.5", "3.0"])
    assert {m["step"] for m in history["metrics"]} == {7}
    finished = http.post(f"{API}/runs/update", json={"run_id": run_id, "status": 3, "end_time": "99"})
    assert finished.json()["run_info"]["status"] == "FINISHED"
    assert finished.json()["run_info"]["end_time"] == 99


def test_over_long_keys_and_values(http: httpx.Client, new_run: Callable[[], tuple[str, str]]) -> None:
    _, run_id = new_run()
    long_key = http.post(f"{API}/runs/log-metric", json=_metric(run_id, key="k" * 251))
    assert "at most 250" in _error(long_key, 400, "INVALID_PARAMETER_VALUE")
    bad_key = http.post(f"{API}/runs/set-tag", json={"run_id": run_id, "key": "../escape", "value": "x"})
    _error(bad_key, 400, "INVALID_PARAMETER_VALUE")
    long_param = http.post(
        f"{API}/runs/log-parameter", json={"run_id": run_id, "key": "p", "value": "v" * 6001}
    )
    assert "at most 6000" in _error(long_param, 400, "INVALID_PARAMETER_VALUE")


def test_batch_limits(http: httpx.Client, new_run: Callable[[], tuple[str, str]]) -> None:
    _, run_id = new_run()
    now = int(time.time() * 1000)
    metrics = [{"key": f"m{i}", "value": i, "timestamp": now, "step": 0} for i in range(1001)]
    too_many = http.post(f"{API}/runs/log-batch", json={"run_id": run_id, "metrics": metrics})
    assert "at most 1000 metrics" in _error(too_many, 400, "INVALID_PARAMETER_VALUE")
    params = [{"key": f"p{i}", "value": "v"} for i in range(101)]
    too_many_params = http.post(f"{API}/runs/log-batch", json={"run_id": run_id, "params": params})
    assert "at most 100 params" in _error(too_many_params, 400, "INVALID_PARAMETER_VALUE")
    huge = [{"key": f"t{i}", "value": "x" * 7000} for i in range(150)]
    too_big = http.post(f"{API}/runs/log-batch", json={"run_id": run_id, "tags": huge})
    assert "at most 1 MB" in _error(too_big, 400, "INVALID_PARAMETER_VALUE")
    assert http.get(f"{API}/runs/get", params={"run_id": run_id}).json()["run"]["data"]["metrics"] == []


def test_param_changes_and_deleted_runs(http: httpx.Client, new_run: Callable[[], tuple[str, str]]) -> None:
    _, run_id = new_run()
    param = {"run_id": run_id, "key": "alpha", "value": "1"}
    assert http.post(f"{API}/runs/log-parameter", json=param).status_code == 200
    assert http.post(f"{API}/runs/log-parameter", json=param).status_code == 200  # same value: fine
    changed = http.post(f"{API}/runs/log-parameter", json={**param, "value": "2"})
    assert "Changing param values is not allowed" in _error(changed, 400, "INVALID_PARAMETER_VALUE")

    assert http.post(f"{API}/runs/delete", json={"run_id": run_id}).status_code == 200
    to_deleted = http.post(f"{API}/runs/log-metric", json=_metric(run_id))
    assert to_deleted.status_code == 400
    assert "must be in the 'active' state" in to_deleted.json()["message"]
    tag_on_deleted = http.post(f"{API}/runs/set-tag", json={"run_id": run_id, "key": "k", "value": "v"})
    assert tag_on_deleted.status_code == 400


def test_not_found_and_conflicts(http: httpx.Client) -> None:
    missing_run = http.get(f"{API}/runs/get", params={"run_id": "f" * 32})
    _error(missing_run, 404, "RESOURCE_DOES_NOT_EXIST")
    missing_experiment = http.get(
        f"{API}/experiments/get-by-name", params={"experiment_name": "no-such-thing"}
    )
    _error(missing_experiment, 404, "RESOURCE_DOES_NOT_EXIST")
    name = f"dup-{uuid.uuid4().hex[:8]}"
    assert http.post(f"{API}/experiments/create", json={"name": name}).status_code == 200
    _error(http.post(f"{API}/experiments/create", json={"name": name}), 400, "RESOURCE_ALREADY_EXISTS")
    _error(http.get(f"{API}/no-such-endpoint"), 404, "ENDPOINT_NOT_FOUND")
    _error(http.get(f"{API}/logged-models/m-{'0' * 32}"), 404, "RESOURCE_DOES_NOT_EXIST")


def test_search_runs_max_results_limit(http: httpx.Client, new_run: Callable[[], tuple[str, str]]) -> None:
    experiment_id, _ = new_run()
    too_many = http.post(
        f"{API}/runs/search", json={"experiment_ids": [experiment_id], "max_results": 123456789}
    )
    assert "Invalid value 123456789 for parameter 'max_results' supplied" in _error(
        too_many, 400, "INVALID_PARAMETER_VALUE"
    )
    at_limit = http.post(f"{API}/runs/search", json={"experiment_ids": [experiment_id], "max_results": 50000})
    assert at_limit.status_code == 200
    bad_filter = http.post(
        f"{API}/runs/search", json={"experiment_ids": [experiment_id], "filter": "metrics.x >"}
    )
    _error(bad_filter, 400, "INVALID_PARAMETER_VALUE")


def test_path_traversal_is_refused(http: httpx.Client, new_run: Callable[[], tuple[str, str]]) -> None:
    experiment_id, run_id = new_run()
    for path in ("../../etc", "/etc/passwd", "a/../../b", "%2e%2e/secret"):
        listed = http.get(f"{API}/artifacts/list", params={"run_id": run_id, "path": path})
        assert _error(listed, 400, "INVALID_PARAMETER_VALUE") == "Invalid path", path
    proxied = http.get(ARTIFACTS, params={"path": "../outside"})
    assert _error(proxied, 400, "INVALID_PARAMETER_VALUE") == "Invalid path"
    for raw in (f"{ARTIFACTS}/{experiment_id}/%2E%2E/%2E%2E/x", f"{ARTIFACTS}/{experiment_id}/..%2F..%2Fx"):
        upload = http.put(raw, content=b"nope")
        assert _error(upload, 400, "INVALID_PARAMETER_VALUE") == "Invalid path", raw


def test_download_headers_and_integrity(
    http: httpx.Client, new_run: Callable[[], tuple[str, str]], server: Server
) -> None:
    experiment_id, run_id = new_run()
    base = f"{ARTIFACTS}/{experiment_id}/{run_id}/artifacts"
    for name, payload, mime in (
        ("page.html", b"<script>alert(1)</script>", "text/html"),
        ("data.json", b'{"a": 1}', "text/plain"),
        ("MLmodel", b"flavors: {}", "text/plain"),
        ("blob.weird-ext", b"\x00\x01", "application/octet-stream"),
    ):
        assert (
            http.put(f"{base}/{name}", content=payload, headers={"Content-Type": "image/png"}).status_code
            == 200
        )
        got = http.get(f"{base}/{name}")
        assert got.status_code == 200
        assert got.content == payload
        assert got.headers["content-type"] == mime
        assert got.headers["content-disposition"] == f"attachment; filename={name}"
        assert got.headers["x-content-type-options"] == "nosniff"

    listed = http.get(ARTIFACTS, params={"path": f"{experiment_id}/{run_id}/artifacts"}).json()
    assert {f["path"] for f in listed["files"]} == {"page.html", "data.json", "MLmodel", "blob.weird-ext"}

    stored = next(server.home.glob(f"**/{run_id}/artifacts/page.html"))
    stored.write_bytes(b"tampered bytes")
    _error(http.get(f"{base}/page.html"), 500, "DATA_LOSS")

    assert http.delete(f"{base}/data.json").status_code == 200
    _error(http.get(f"{base}/data.json"), 404, "RESOURCE_DOES_NOT_EXIST")


def test_get_with_repeated_query_keys(http: httpx.Client, new_run: Callable[[], tuple[str, str]]) -> None:
    _, first = new_run()
    _, second = new_run()
    now = int(time.time() * 1000)
    for run_id in (first, second):
        points = [{"key": "loss", "value": s, "timestamp": now, "step": s} for s in range(10)]
        assert (
            http.post(f"{API}/runs/log-batch", json={"run_id": run_id, "metrics": points}).status_code == 200
        )
    response = http.get(
        f"{API}/metrics/get-history-bulk-interval",
        params=[("run_ids", first), ("run_ids", second), ("metric_key", "loss"), ("max_results", "4")],
    )
    assert response.status_code == 200, response.text
    metrics = response.json()["metrics"]
    assert {m["run_id"] for m in metrics} == {first, second}
    steps = sorted({m["step"] for m in metrics})
    assert len(steps) == 4
    assert steps[0] == 0
    assert steps[-1] == 9


def test_ajax_prefix_and_openapi(http: httpx.Client) -> None:
    assert http.post("/ajax-api/2.0/mlflow/experiments/search", json={"max_results": 1}).status_code == 200
    assert http.get("/api/3.0/mlflow/server-info").json()["multipart_uploads_enabled"] is False
    schema = http.get("/openapi.json").json()
    create = schema["paths"]["/api/2.0/mlflow/runs/create"]["post"]
    assert create["summary"] == "Create a run"
    assert "experiment_id" in json.dumps(create["requestBody"])
    assert not any(path.startswith("/ajax-api") for path in schema["paths"])


def test_interrupted_upload_is_not_stored(
    http: httpx.Client, new_run: Callable[[], tuple[str, str]], server: Server
) -> None:
    """A client that disconnects mid-body must not leave a truncated file behind as if complete."""
    experiment_id, run_id = new_run()
    path = f"{ARTIFACTS}/{experiment_id}/{run_id}/artifacts/partial.bin"
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as raw:
        head = f"PUT {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {10 << 20}\r\n\r\n"
        raw.sendall(head.encode() + b"x" * (3 << 20))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        listed = http.get(f"{API}/artifacts/list", params={"run_id": run_id}).json()
        assert "partial.bin" not in {f["path"] for f in listed.get("files", [])}
        time.sleep(0.5)
    _error(http.get(path), 404, "RESOURCE_DOES_NOT_EXIST")


def test_large_upload_round_trip(http: httpx.Client, new_run: Callable[[], tuple[str, str]]) -> None:
    experiment_id, run_id = new_run()
    payload = os.urandom(9 << 20)  # several pipe chunks, not a multiple of the chunk size
    path = f"{ARTIFACTS}/{experiment_id}/{run_id}/artifacts/big.bin"
    assert (
        http.put(
            path, content=iter([payload[i : i + 65536] for i in range(0, len(payload), 65536)])
        ).status_code
        == 200
    )
    got = http.get(path)
    assert got.headers["content-length"] == str(len(payload))
    assert got.content == payload


def test_search_experiments_by_get_with_repeated_keys(http: httpx.Client) -> None:
    prefix = f"get-search-{uuid.uuid4().hex[:8]}"
    for suffix in ("b", "a", "c"):
        http.post(f"{API}/experiments/create", json={"name": f"{prefix}-{suffix}"})
    response = http.get(
        f"{API}/experiments/search",
        params=[("filter", f"name LIKE '{prefix}%'"), ("order_by", "name DESC"), ("max_results", "2")],
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert [e["name"] for e in body["experiments"]] == [f"{prefix}-c", f"{prefix}-b"]
    assert body["next_page_token"]
