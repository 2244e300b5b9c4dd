"""MLflow's scoring protocol, with the payloads MLflow documents and MLflow's own client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from mlflow.pyfunc.scoring_server.client import ScoringServerClient

from conveyor import models
from conveyor._version import __version__

FRAME = pd.DataFrame({"age": [30.0, 50.0, 45.0], "income": [40.0, 60.0, 52.0], "tenure": [10.0, 5.0, 30.0]})


@pytest.fixture(scope="module")
def expected(model_dirs: dict[str, Path]) -> list[int]:
    return models.load(model_dirs["logreg1"]).predict(FRAME).tolist()


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_split": FRAME.to_dict(orient="split")},
        {
            "dataframe_split": {
                "columns": ["tenure", "age", "income"],
                "data": FRAME[["tenure", "age", "income"]].values.tolist(),
            }
        },
        {"dataframe_records": FRAME.to_dict(orient="records")},
        {"instances": FRAME.to_dict(orient="records")},
        {"instances": FRAME.values.tolist()},
        {"inputs": FRAME.to_dict(orient="list")},
        {"inputs": FRAME.values.tolist(), "params": {}},
    ],
    ids=[
        "split",
        "split-reordered",
        "records",
        "instances-records",
        "instances-rows",
        "inputs-columns",
        "inputs-rows",
    ],
)
def test_json_formats(churn_server: Any, expected: list[int], body: dict[str, Any]) -> None:
    response = httpx.post(f"{churn_server.url}/invocations", json=body)
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": expected}


@pytest.mark.parametrize("content_type", ["text/csv", "application/csv", "text/csv; charset=utf-8"])
def test_csv(churn_server: Any, expected: list[int], content_type: str) -> None:
    response = httpx.post(
        f"{churn_server.url}/invocations",
        content=FRAME.to_csv(index=False),
        headers={"Content-Type": content_type},
    )
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == expected


def test_mlflows_own_client(churn_server: Any, expected: list[int]) -> None:
    host, port = churn_server.url.removeprefix("http://").split(":")
    client = ScoringServerClient(host, port)
    client.wait_server_ready(timeout=5)
    assert client.get_version() == __version__
    predictions = client.invoke(FRAME).get_predictions()
    assert predictions.iloc[:, 0].tolist() == expected


def test_named_models_versions_and_text_columns(churn_server: Any, model_dirs: dict[str, Path]) -> None:
    plans = FRAME.assign(plan=["gold", "basic", "gold"])
    response = httpx.post(
        f"{churn_server.url}/models/pipeline/invocations",
        json={"dataframe_records": plans.to_dict(orient="records")},
    )
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == models.load(model_dirs["pipeline"]).predict(plans).tolist()
    versioned = httpx.post(
        f"{churn_server.url}/models/churn/versions/champion/invocations",
        json={"dataframe_split": FRAME.to_dict(orient="split")},
    )
    assert versioned.status_code == 200 and versioned.headers["X-Conveyor-Model-Version"] == "1"


def test_health_routes(churn_server: Any) -> None:
    for path in ("/ping", "/health"):
        response = httpx.get(f"{churn_server.url}{path}")
        assert response.status_code == 200 and response.json() == {"ready": True}
    assert httpx.get(f"{churn_server.url}/version").text == __version__


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        ({"data": [[1, 2, 3]]}, "", "format"),  # no known key
        ({"dataframe_split": {"data": [[1.0, 2.0, 3.0]]}, "instances": [[1.0, 2.0, 3.0]]}, "", "format"),
        ({"inputs": [[1.0, 2.0, 3.0]], "params": {"threshold": 0.3}}, "params.threshold", "unknown"),
        ({"inputs": [[1.0, 2.0, 3.0]], "extra": 1}, "extra", "unknown"),
        ({"dataframe_split": {"columns": ["age", "income", "tenure"], "data": [[1.0, 2.0]]}}, "", "shape"),
        ({"dataframe_records": [1, 2]}, "", "format"),
        ([{"age": 1}], "", "format"),  # a bare list: MLflow 1.x's format
    ],
)
def test_malformed_bodies(churn_server: Any, body: Any, field: str, problem: str) -> None:
    response = httpx.post(f"{churn_server.url}/invocations", json=body)
    assert response.status_code == 400
    details = response.json()["details"]
    assert (field, problem) in [(d["field"], d["problem"]) for d in details]
    # MLflow's own error shape as well, for its clients.
    assert response.json()["error_code"] == "BAD_REQUEST" and response.json()["message"]


def test_predictions_are_json_numbers_one_per_row(churn_server: Any) -> None:
    response = httpx.post(f"{churn_server.url}/invocations", json={"instances": [[1.0, 2.0, 3.0]]})
    assert response.headers["Content-Type"] == "application/json"
    predictions = response.json()["predictions"]
    assert len(predictions) == 1 and isinstance(predictions[0], int)
