"""The prediction log wired into serving, metrics, feedback, docs and the access log."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest

from conveyor.registry import RegistryService
from conveyor.serving.predlog import read_predictions

BODY = {
    "dataframe_records": [
        {"age": 30.0, "income": 40.0, "tenure": 10.0},
        {"age": 50.0, "income": 60.0, "tenure": 5.0},
    ]
}


def samples(server: Any, metric: str) -> dict[tuple[str, ...], float]:
    family = getattr(server.runtime.metrics, metric)
    return {
        tuple(sorted(s.labels.items())): s.value
        for f in family.collect()
        for s in f.samples
        if s.name.endswith("_total")
    }


def logged(root: Path, model: str) -> pa.Table:
    return pa.Table.from_batches(list(read_predictions(str(root), model)))


def test_requests_and_their_shadow_copies_are_logged_with_probabilities(
    serve: Any, churn: str, tmp_path: Path
) -> None:
    root = tmp_path / "predictions"
    server = serve(
        {
            "models": [
                {
                    "name": "churn",
                    "uri": "models:/churn@champion",
                    "shadow": {"name": "next", "uri": "models:/churn/2"},
                }
            ],
            "prediction_log": {"enabled": True, "root_url": str(root), "flush_interval_s": 0.05},
        }
    )
    ids = [f"log-{i}" for i in range(3)]
    for rid in ids:
        response = httpx.post(f"{server.url}/invocations", json=BODY, headers={"X-Request-ID": rid})
        assert response.status_code == 200
        assert "predict_proba" not in response.text  # computed for the log, not returned
    deadline = time.monotonic() + 10
    while (
        sum(v for k, v in samples(server, "prediction_log_rows").items() if ("outcome", "written") in k) < 12
    ):
        assert time.monotonic() < deadline, samples(server, "prediction_log_rows")
        time.sleep(0.05)
    table = logged(root, "churn").to_pylist()
    primary = [r for r in table if r["variant"] == "default"]
    shadow = [r for r in table if r["variant"] == "next"]
    assert sorted({r["request_id"] for r in primary}) == ids and len(primary) == 6
    assert len(shadow) == 6 and {r["version"] for r in shadow} == {"2"}
    row = primary[0]
    assert row["alias"] == "champion" and row["input.age"] in (30.0, 50.0)
    assert row["output.prediction"] in (0, 1)
    assert row["output.proba_0"] + row["output.proba_1"] == pytest.approx(1.0)


def test_an_unwritable_log_drops_and_counts_but_serving_goes_on(
    serve: Any, churn: str, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the log's folder should be")
    server = serve(
        {
            "models": [{"name": "churn", "uri": "models:/churn@champion"}],
            "prediction_log": {
                "enabled": True,
                "root_url": str(blocker / "predictions"),
                "flush_interval_s": 0.05,
            },
        }
    )
    for _ in range(5):
        assert httpx.post(f"{server.url}/invocations", json=BODY).status_code == 200
    deadline = time.monotonic() + 10
    while not any(
        ("outcome", "dropped") in k and v >= 10 for k, v in samples(server, "prediction_log_rows").items()
    ):
        assert time.monotonic() < deadline, samples(server, "prediction_log_rows")
        time.sleep(0.05)


def test_metrics_follow_one_naming_scheme(churn_server: Any) -> None:
    httpx.post(f"{churn_server.url}/invocations", json=BODY)
    text = httpx.get(f"{churn_server.url}/metrics").text
    for name in (
        "conveyor_serving_requests_total",
        "conveyor_serving_request_duration_seconds_bucket",
        "conveyor_serving_queue_duration_seconds_bucket",
        "conveyor_serving_batch_size_bucket",
        "conveyor_serving_in_flight",
        "conveyor_serving_model_load_seconds",
        "conveyor_serving_model_ready",
    ):
        assert f"\n{name}{{" in text, name
    assert (
        'conveyor_serving_requests_total{alias="champion",code="200",model="churn",protocol="mlflow",'
        'variant="default",version="1"}'
    ) in text


def test_feedback_is_stored_for_served_models(churn_server: Any) -> None:
    ok = httpx.post(
        f"{churn_server.url}/feedback", json={"model": "churn", "labels": [{"request_id": "r1", "label": 1}]}
    )
    assert ok.status_code == 200 and ok.json()["accepted"] == 1
    unknown = httpx.post(
        f"{churn_server.url}/feedback", json={"model": "nope", "labels": [{"request_id": "r", "label": 1}]}
    )
    assert unknown.status_code == 404
    bad = httpx.post(
        f"{churn_server.url}/feedback", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert bad.status_code == 400 and bad.json()["details"]


def test_openapi_lists_each_model_with_its_signature(churn_server: Any) -> None:
    document = httpx.get(f"{churn_server.url}/openapi.json").json()
    invocations = document["paths"]["/models/pipeline/invocations"]["post"]["requestBody"]["content"][
        "application/json"
    ]
    record = invocations["schema"]["properties"]["dataframe_records"]["items"]
    assert record["properties"]["plan"] == {"type": "string"} and record["required"] == [
        "age",
        "income",
        "tenure",
        "plan",
    ]
    assert invocations["example"]["dataframe_records"][0]["plan"] in ("gold", "basic")
    oip = document["paths"]["/v2/models/churn/infer"]["post"]["requestBody"]["content"]["application/json"]
    assert {
        t["properties"]["name"]["const"] for t in oip["schema"]["properties"]["inputs"]["items"]["oneOf"]
    } == {
        "age",
        "income",
        "tenure",
    }
    # The example is a valid request.
    response = httpx.post(f"{churn_server.url}/v2/models/churn/infer", json=oip["example"])
    assert response.status_code == 200, response.text
    assert httpx.get(f"{churn_server.url}/docs").status_code == 200


def test_access_log_lines_are_json(churn_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="conveyor.serving.access"):
        httpx.post(f"{churn_server.url}/invocations", json=BODY, headers={"X-Request-ID": "access-1"})
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "conveyor.serving.access"]
    line = next(line for line in lines if line["request_id"] == "access-1")
    assert line["status"] == 200 and line["method"] == "POST" and line["path"] == "/invocations"
    assert line["version"] == "1" and line["variant"] == "default" and line["duration_ms"] > 0


def test_readiness_waits_for_every_model(
    serve: Any, registry: RegistryService, model_dirs: dict[str, Path]
) -> None:
    server = serve(
        {
            "models": [
                {"name": "churn", "uri": str(model_dirs["logreg1"])},
                {"name": "later", "uri": "models:/later@champion"},
            ],
            "poll_interval_s": 0.05,
        },
        ready=False,
    )
    assert httpx.get(f"{server.url}/v2/health/live").status_code == 200
    assert httpx.get(f"{server.url}/v2/health/ready").status_code == 503
    assert httpx.get(f"{server.url}/ping").status_code == 503
    response = httpx.post(f"{server.url}/models/later/invocations", json=BODY)
    assert response.status_code == 503 and "still loading" in response.json()["error"]
    registry.create_model("later")
    registry.create_version("later", str(model_dirs["logreg2"]))
    registry.set_alias("later", "champion", 1)
    deadline = time.monotonic() + 10
    while httpx.get(f"{server.url}/v2/health/ready").status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert httpx.post(f"{server.url}/models/later/invocations", json=BODY).status_code == 200
