"""The Open Inference Protocol, spoken by NVIDIA's own ``tritonclient``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from conveyor import models


@pytest.fixture
def client(churn_server: Any) -> Any:
    client = triton.InferenceServerClient(churn_server.url.removeprefix("http://"))
    yield client
    client.close()


ROWS = np.array([[30.0, 40.0, 10.0], [50.0, 60.0, 5.0], [45.0, 52.0, 30.0]])


def column_inputs(rows: np.ndarray, *, binary: bool) -> list[Any]:
    inputs = []
    for j, name in enumerate(["age", "income", "tenure"]):
        tensor = triton.InferInput(name, [len(rows)], "FP64")
        tensor.set_data_from_numpy(rows[:, j].copy(), binary_data=binary)
        inputs.append(tensor)
    return inputs


def expected(model_dir: Path, rows: np.ndarray, **extra: Any) -> np.ndarray:
    frame = pd.DataFrame(rows, columns=["age", "income", "tenure"]).assign(**extra)
    return models.load(model_dir).predict(frame)


def test_health_and_metadata(client: Any) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.get_server_metadata()["extensions"] == ["binary_tensor_data"]
    assert client.is_model_ready("churn") and client.is_model_ready("churn", "1")
    assert client.is_model_ready("churn", "champion")
    metadata = client.get_model_metadata("churn")
    assert metadata["versions"] == ["1"] and metadata["platform"] == "sklearn"
    assert [(i["name"], i["datatype"], i["shape"]) for i in metadata["inputs"]] == [
        ("age", "FP64", [-1]),
        ("income", "FP64", [-1]),
        ("tenure", "FP64", [-1]),
    ]
    assert {o["name"]: o["datatype"] for o in metadata["outputs"]} == {
        "predict": "INT64",
        "predict_proba": "FP64",
    }
    pipeline = client.get_model_metadata("pipeline")
    assert {i["name"]: i["datatype"] for i in pipeline["inputs"]}["plan"] == "BYTES"
    assert not client.is_model_ready("churn", "7")
    with pytest.raises(InferenceServerException, match="serves no version or alias '7'"):
        client.get_model_metadata("churn", "7")


@pytest.mark.parametrize("binary", [False, True])
def test_infer_columns(client: Any, model_dirs: dict[str, Path], binary: bool) -> None:
    result = client.infer(
        "churn",
        column_inputs(ROWS, binary=binary),
        parameters={"content_type": "pd"},
        outputs=[triton.InferRequestedOutput("predict", binary_data=binary)],
        request_id="req-1",
    )
    assert result.get_response()["id"] == "req-1"
    assert result.get_response()["model_version"] == "1"
    np.testing.assert_array_equal(result.as_numpy("predict"), expected(model_dirs["logreg1"], ROWS))


def test_default_outputs_come_back_as_binary_data(client: Any, model_dirs: dict[str, Path]) -> None:
    """Without ``outputs``, tritonclient asks for every output in binary (``binary_data_output``)."""
    result = client.infer("churn", column_inputs(ROWS, binary=True))
    assert result.get_output("predict")["parameters"]["binary_data_size"] == 3 * 8
    np.testing.assert_array_equal(result.as_numpy("predict"), expected(model_dirs["logreg1"], ROWS))


def test_probabilities_on_request(client: Any, model_dirs: dict[str, Path]) -> None:
    result = client.infer(
        "churn",
        column_inputs(ROWS, binary=False),
        outputs=[triton.InferRequestedOutput("predict_proba", binary_data=False)],
    )
    reference = models.load(model_dirs["logreg1"]).raw.predict_proba(
        pd.DataFrame(ROWS, columns=["age", "income", "tenure"])
    )
    np.testing.assert_allclose(result.as_numpy("predict_proba"), reference)
    assert result.as_numpy("predict") is None  # only what was asked for


@pytest.mark.parametrize("binary", [False, True])
def test_bytes_tensors_feed_text_columns(client: Any, model_dirs: dict[str, Path], binary: bool) -> None:
    plans = np.array(["gold", "basic", "gold"], dtype=object)
    inputs = column_inputs(ROWS, binary=binary)
    plan = triton.InferInput("plan", [3], "BYTES")
    plan.set_data_from_numpy(plans, binary_data=binary)
    result = client.infer(
        "pipeline", [*inputs, plan], outputs=[triton.InferRequestedOutput("predict", binary_data=binary)]
    )
    np.testing.assert_array_equal(
        result.as_numpy("predict"), expected(model_dirs["pipeline"], ROWS, plan=plans)
    )


def test_one_matrix_tensor_is_split_into_the_signature_columns(
    client: Any, model_dirs: dict[str, Path]
) -> None:
    matrix = triton.InferInput("input-0", list(ROWS.shape), "FP32")
    matrix.set_data_from_numpy(ROWS.astype(np.float32), binary_data=True)
    result = client.infer("churn", [matrix])
    np.testing.assert_array_equal(result.as_numpy("predict"), expected(model_dirs["logreg1"], ROWS))


def test_versions_and_aliases_are_addressable(client: Any, churn_server: Any) -> None:
    for version in ("1", "champion", "default"):
        result = client.infer("churn", column_inputs(ROWS, binary=True), model_version=version)
        assert result.get_response()["model_version"] == "1"
    with pytest.raises(InferenceServerException) as raised:
        client.infer("churn", column_inputs(ROWS, binary=True), model_version="challenger")
    assert raised.value.status() == "404"


def test_errors_reach_tritonclient_as_messages(client: Any) -> None:
    bad = triton.InferInput("age", [1], "BYTES")
    bad.set_data_from_numpy(np.array(["old"], dtype=object))
    with pytest.raises(InferenceServerException) as raised:
        client.infer("churn", [bad], parameters={"content_type": "pd"})
    assert raised.value.status() == "400"
    assert "age" in raised.value.message() and "income" in raised.value.message()
    with pytest.raises(InferenceServerException) as raised:
        client.infer("nope", column_inputs(ROWS, binary=False))
    assert raised.value.status() == "404"


def test_json_data_is_checked_against_its_datatype(churn_server: Any) -> None:
    def infer(tensor: dict[str, Any]) -> httpx.Response:
        others = [{"name": n, "datatype": "FP64", "shape": [1], "data": [1.0]} for n in ("income", "tenure")]
        return httpx.post(f"{churn_server.url}/v2/models/churn/infer", json={"inputs": [tensor, *others]})

    ok = infer({"name": "age", "datatype": "INT64", "shape": [1, 1], "data": [[30]]})
    assert ok.status_code == 200, ok.text
    for tensor, problem in [
        ({"name": "age", "datatype": "INT64", "shape": [1], "data": [30.5]}, "type"),
        ({"name": "age", "datatype": "FP64", "shape": [1], "data": ["30"]}, "type"),
        ({"name": "age", "datatype": "FP64", "shape": [2], "data": [30.0]}, "shape"),
        ({"name": "age", "datatype": "FP128", "shape": [1], "data": [30.0]}, "type"),
        ({"name": "age", "datatype": "FP64", "shape": [1]}, "format"),
    ]:
        response = infer(tensor)
        assert response.status_code == 400, tensor
        assert [(d["field"], d["problem"]) for d in response.json()["details"]] == [("age", problem)]
