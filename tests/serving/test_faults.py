"""Bad input and faults: each gets its status, a field-level body, and never a traceback."""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

import httpx
import pytest

COLUMNS = ["age", "income", "tenure"]


def oip(rows: dict[str, list[Any]], datatype: str = "FP64") -> dict[str, Any]:
    return {
        "parameters": {"content_type": "pd"},
        "inputs": [
            {"name": name, "datatype": datatype, "shape": [len(values)], "data": values}
            for name, values in rows.items()
        ],
    }


def both(server: Any, rows: dict[str, list[Any]], model: str = "churn") -> list[httpx.Response]:
    """The same rows through both protocols."""
    records = [dict(zip(rows, values, strict=True)) for values in zip(*rows.values(), strict=True)]
    return [
        httpx.post(f"{server.url}/v2/models/{model}/infer", json=oip(rows)),
        httpx.post(f"{server.url}/models/{model}/invocations", json={"dataframe_records": records}),
    ]


def details(response: httpx.Response) -> set[tuple[str, str]]:
    return {(d["field"], d["problem"]) for d in response.json()["details"]}


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ({"age": [30.0], "income": [40.0]}, {("tenure", "missing")}),
        ({"age": [30.0], "income": [40.0], "tenure": [1.0], "colour": [2.0]}, {("colour", "unknown")}),
        ({"age": [30.0], "income": [None], "tenure": [1.0]}, {("income", "nan")}),
    ],
    ids=["missing", "unknown", "nan"],
)
def test_the_same_field_errors_on_both_protocols(churn_server: Any, rows: Any, expected: set[Any]) -> None:
    for response in both(churn_server, rows):
        assert response.status_code == 400, response.text
        assert details(response) == expected
        assert "Traceback" not in response.text


def test_mistyped_columns(churn_server: Any) -> None:
    response = httpx.post(
        f"{churn_server.url}/invocations",
        json={"dataframe_records": [{"age": "thirty", "income": 40.0, "tenure": True}]},
    )
    assert response.status_code == 400
    assert details(response) == {("age", "type"), ("tenure", "type")}
    tensor = oip({"age": ["thirty"], "income": [40.0], "tenure": [1.0]}, datatype="BYTES")
    response = httpx.post(f"{churn_server.url}/v2/models/churn/infer", json=tensor)
    assert ("age", "type") in details(response)


def test_empty_batch(churn_server: Any) -> None:
    for response in both(churn_server, {name: [] for name in COLUMNS}):
        assert response.status_code == 400
        assert details(response) == {("", "empty")}


def test_validation_failures_are_counted_per_feature(churn_server: Any) -> None:
    both(churn_server, {"age": [30.0], "income": [None], "tenure": [1.0]})
    samples = {
        (s.labels["feature"], s.labels["problem"]): s.value
        for family in churn_server.runtime.metrics.validation_failures.collect()
        for s in family.samples
        if s.name.endswith("_total") and s.labels["model"] == "churn"
    }
    assert samples[("income", "nan")] >= 2


@pytest.mark.parametrize("path", ["/invocations", "/v2/models/churn/infer"])
def test_malformed_json(churn_server: Any, path: str) -> None:
    response = httpx.post(
        f"{churn_server.url}{path}", content=b'{"inputs": [', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert details(response) == {("", "format")}
    assert "malformed JSON" in response.json()["error"]


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/invocations", "text/plain"),
        ("/invocations", "application/json; charset=latin-1"),
        ("/invocations", "application/json; format=pandas-split"),
        ("/v2/models/churn/infer", "application/xml"),
    ],
)
def test_unsupported_content_type(churn_server: Any, path: str, content_type: str) -> None:
    response = httpx.post(f"{churn_server.url}{path}", content=b"{}", headers={"Content-Type": content_type})
    assert response.status_code == 415
    assert response.json()["error"]


def test_huge_bodies_are_refused(churn_server: Any) -> None:
    """``tiny`` takes 2 KiB: refused by Content-Length, and while streaming without one."""
    big = {"inputs": [[1.0, 2.0, 3.0]] * 200}
    response = httpx.post(f"{churn_server.url}/models/tiny/invocations", json=big)
    assert response.status_code == 413

    def chunks() -> Any:
        for _ in range(100):
            yield b" " * 100

    streamed = httpx.post(
        f"{churn_server.url}/models/tiny/invocations",
        content=chunks(),
        headers={"Content-Type": "application/json"},
    )
    assert streamed.status_code == 413
    assert "limit of 2048 bytes" in streamed.json()["error"]


def test_unknown_model_or_version(churn_server: Any) -> None:
    rows = {name: [1.0] for name in COLUMNS}
    for response in (
        httpx.post(f"{churn_server.url}/v2/models/nope/infer", json=oip(rows)),
        httpx.post(f"{churn_server.url}/models/nope/invocations", json={"inputs": [[1.0, 2.0, 3.0]]}),
        httpx.post(f"{churn_server.url}/v2/models/churn/versions/99/infer", json=oip(rows)),
        httpx.get(f"{churn_server.url}/v2/models/nope"),
        httpx.post(
            f"{churn_server.url}/invocations",
            json={"inputs": [[1.0, 2.0, 3.0]]},
            headers={"X-Conveyor-Variant": "canary"},
        ),
    ):
        assert response.status_code == 404
        assert response.json()["error"]


def test_predict_raising_is_a_500_without_the_traceback(
    churn_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="conveyor.serving"):
        response = httpx.post(
            f"{churn_server.url}/models/exploding/invocations",
            json={"dataframe_records": [{"age": -1.0, "income": 1.0, "tenure": 1.0}]},
            headers={"X-Request-ID": "trace-me-42"},
        )
    assert response.status_code == 500
    assert response.headers["X-Request-ID"] == "trace-me-42"
    assert response.json()["request_id"] == "trace-me-42" and "trace-me-42" in response.json()["error"]
    assert "secret internal detail" not in response.text and "Traceback" not in response.text
    logged = [r for r in caplog.records if "trace-me-42" in r.getMessage()]
    assert logged and logged[0].exc_info is not None
    assert "secret internal detail" in str(logged[0].exc_info[1])
    fine = httpx.post(
        f"{churn_server.url}/models/exploding/invocations",
        json={"dataframe_records": [{"age": 2.0, "income": 1.0, "tenure": 1.0}]},
    )
    assert fine.json() == {"predictions": [4.0]}


def test_timeout_is_a_504(churn_server: Any) -> None:
    started = time.monotonic()
    response = httpx.post(f"{churn_server.url}/models/slow/invocations", json={"inputs": [[1.0, 2.0, 3.0]]})
    assert response.status_code == 504
    assert time.monotonic() - started < 0.45  # answered at the 0.2 s timeout, not after the 0.5 s predict


def test_request_ids_are_propagated_or_made(churn_server: Any) -> None:
    given = httpx.get(f"{churn_server.url}/v2/health/live", headers={"X-Request-ID": "abc-123"})
    assert given.headers["X-Request-ID"] == "abc-123"
    made = httpx.get(f"{churn_server.url}/v2/health/live").headers["X-Request-ID"]
    assert len(made) == 32


def raw_request(server: Any, head: bytes, body: bytes) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(head + body)


def test_clients_that_disconnect_mid_request_do_not_hurt_the_server(churn_server: Any) -> None:
    # Half a body, then gone.
    raw_request(
        churn_server,
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 500\r\n\r\n",
        b'{"inputs": [[1.0, 2.0',
    )
    # A whole request, then gone while the model is still predicting.
    body = b'{"inputs": [[1.0, 2.0, 3.0]]}'
    for _ in range(3):
        raw_request(
            churn_server,
            b"POST /models/slow/invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode(),
            body,
        )
    time.sleep(0.1)
    response = httpx.post(f"{churn_server.url}/invocations", json={"inputs": [[30.0, 40.0, 10.0]]})
    assert response.status_code == 200
    assert httpx.get(f"{churn_server.url}/v2/health/ready").status_code == 200
