"""MLflow 3 model logging: ``mlflow.sklearn.log_model`` / ``load_model`` through logged models."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import mlflow
import mlflow.sklearn
import numpy as np
import pytest
from mlflow.exceptions import MlflowException
from sklearn.linear_model import LogisticRegression

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fitted() -> tuple[LogisticRegression, np.ndarray]:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(60, 3))
    labels = (features[:, 0] + features[:, 1] > 0).astype(int)
    return LogisticRegression().fit(features, labels), features


def test_sklearn_round_trip_by_run_and_model_id(
    tracking: str, client: mlflow.MlflowClient, fitted: tuple[LogisticRegression, np.ndarray]
) -> None:
    model, features = fitted
    mlflow.set_experiment(f"models-{uuid.uuid4().hex[:10]}")
    with mlflow.start_run() as run:
        mlflow.log_param("C", model.C)
        mlflow.log_metric("accuracy", 0.9)
        info = mlflow.sklearn.log_model(
            model, name="model", input_example=features[:2], pip_requirements=["scikit-learn"]
        )

    logged = client.get_logged_model(info.model_id)
    assert logged.status.to_proto() == 2  # LOGGED_MODEL_READY
    assert logged.source_run_id == run.info.run_id
    assert logged.name == "model"
    assert logged.params["C"] == str(model.C)
    assert logged.artifact_location.endswith(f"/models/{info.model_id}/artifacts")

    expected = model.predict(features)
    by_run = mlflow.sklearn.load_model(f"runs:/{run.info.run_id}/model")
    assert (by_run.predict(features) == expected).all()
    by_id = mlflow.sklearn.load_model(f"models:/{info.model_id}")
    assert (by_id.predict(features) == expected).all()
    pyfunc = mlflow.pyfunc.load_model(info.model_uri)
    assert (pyfunc.predict(features) == expected).all()

    outputs = client.get_run(run.info.run_id).outputs.model_outputs
    assert [o.model_id for o in outputs] == [info.model_id]


def test_logged_model_tags_search_and_artifacts(
    client: mlflow.MlflowClient, experiment_id: str, http: httpx.Client, tmp_path: Path
) -> None:
    run = client.create_run(experiment_id)
    model = client.create_logged_model(
        experiment_id, name="clf", source_run_id=run.info.run_id, tags={"a": "1"}, params={"p": "x"}
    )
    assert model.status.to_proto() == 1  # LOGGED_MODEL_PENDING
    client.set_logged_model_tags(model.model_id, {"b": "2"})
    client.delete_logged_model_tag(model.model_id, "a")
    assert client.get_logged_model(model.model_id).tags == {"b": "2"}
    other = client.create_logged_model(experiment_id, name="other", model_type="agent")

    by_name = client.search_logged_models([experiment_id], filter_string="name = 'clf'")
    assert [m.model_id for m in by_name] == [model.model_id]
    by_type = client.search_logged_models([experiment_id], filter_string="model_type = 'agent'")
    assert [m.model_id for m in by_type] == [other.model_id]
    newest_first = client.search_logged_models([experiment_id])
    assert [m.model_id for m in newest_first] == [other.model_id, model.model_id]
    by_name_asc = client.search_logged_models(
        [experiment_id], order_by=[{"field_name": "name", "ascending": True}]
    )
    assert [m.name for m in by_name_asc] == ["clf", "other"]

    (tmp_path / "sub").mkdir()
    (tmp_path / "MLmodel").write_text("flavors: {}")
    (tmp_path / "sub" / "weights.bin").write_bytes(b"\x00" * 10)
    client.log_model_artifacts(model.model_id, str(tmp_path))
    assert [f.path for f in client.list_logged_model_artifacts(model.model_id)] == ["MLmodel", "sub"]
    listed = http.get(
        f"/api/2.0/mlflow/logged-models/{model.model_id}/artifacts/directories",
        params={"artifact_directory_path": "sub"},
    ).json()
    assert listed["root_uri"] == model.artifact_location
    assert listed["files"] == [{"path": "sub/weights.bin", "is_dir": False, "file_size": 10}]

    finalized = client.finalize_logged_model(model.model_id, "READY")
    assert finalized.status.to_proto() == 2
    client.delete_logged_model(other.model_id)
    with pytest.raises(MlflowException) as gone:
        client.get_logged_model(other.model_id)
    assert gone.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert [m.model_id for m in client.search_logged_models([experiment_id])] == [model.model_id]


def test_log_model_history_tag(client: mlflow.MlflowClient, experiment_id: str, http: httpx.Client) -> None:
    run = client.create_run(experiment_id)
    model_json = {
        "artifact_path": "legacy",
        "flavors": {"python_function": {}},
        "utc_time_created": "2024-01-01 00:00:00",
        "run_id": run.info.run_id,
    }
    for _ in range(2):
        response = http.post(
            "/api/2.0/mlflow/runs/log-model",
            json={"run_id": run.info.run_id, "model_json": json.dumps(model_json)},
        )
        assert response.status_code == 200, response.text
    history = json.loads(client.get_run(run.info.run_id).data.tags["mlflow.log-model.history"])
    assert history == [model_json, model_json]

    incomplete = http.post(
        "/api/2.0/mlflow/runs/log-model",
        json={"run_id": run.info.run_id, "model_json": json.dumps({"artifact_path": "x"})},
    )
    assert incomplete.status_code == 400
    assert "missing mandatory fields" in incomplete.json()["message"]


def test_sklearn_autolog(
    tracking: str, client: mlflow.MlflowClient, fitted: tuple[LogisticRegression, np.ndarray]
) -> None:
    """Autologging mixes every endpoint: batches, tags, dataset inputs, a logged model, outputs."""
    _, features = fitted
    labels = (features[:, 0] > 0).astype(int)
    mlflow.set_experiment(f"autolog-{uuid.uuid4().hex[:10]}")
    mlflow.sklearn.autolog()
    try:
        with mlflow.start_run() as run:
            LogisticRegression(C=0.5).fit(features, labels)
    finally:
        mlflow.sklearn.autolog(disable=True)
    stored = client.get_run(run.info.run_id)
    assert stored.data.params["C"] == "0.5"
    assert "training_accuracy_score" in stored.data.metrics
    assert stored.data.tags["estimator_name"] == "LogisticRegression"
    assert len(stored.inputs.dataset_inputs) == 1
    [output] = stored.outputs.model_outputs
    model = client.get_logged_model(output.model_id)
    assert model.status.to_proto() == 2
    assert (mlflow.sklearn.load_model(f"models:/{model.model_id}").predict(features) == labels).mean() > 0.8
