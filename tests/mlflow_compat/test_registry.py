"""The MLflow model registry API, driven by the official ``mlflow`` client against a live server."""

from __future__ import annotations

import uuid

import httpx
import mlflow
import mlflow.sklearn
import numpy as np
import pytest
from mlflow.entities.model_registry.model_version_status import ModelVersionStatus
from mlflow.exceptions import MlflowException, RestException
from sklearn.linear_model import LogisticRegression

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fitted() -> tuple[LogisticRegression, np.ndarray]:
    rng = np.random.default_rng(1)
    features = rng.normal(size=(40, 3))
    labels = (features[:, 0] > 0).astype(int)
    return LogisticRegression().fit(features, labels), features


@pytest.fixture(scope="module")
def logged(tracking: str, fitted: tuple[LogisticRegression, np.ndarray]) -> mlflow.models.model.ModelInfo:
    """One scikit-learn model logged through the server, for the tests that register it."""
    mlflow.set_experiment(f"registry-{uuid.uuid4().hex[:10]}")
    with mlflow.start_run():
        return mlflow.sklearn.log_model(fitted[0], name="model", pip_requirements=["scikit-learn"])


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_registered_model_lifecycle(client: mlflow.MlflowClient) -> None:
    name = _name("lifecycle")
    created = client.create_registered_model(name, tags={"team": "risk"}, description="first")
    assert created.name == name
    assert created.tags == {"team": "risk"}
    assert created.creation_timestamp > 0
    with pytest.raises(RestException) as caught:
        client.create_registered_model(name)
    assert caught.value.error_code == "RESOURCE_ALREADY_EXISTS"

    client.update_registered_model(name, description="second")
    client.set_registered_model_tag(name, "stage", "dev")
    client.delete_registered_model_tag(name, "team")
    got = client.get_registered_model(name)
    assert (got.description, got.tags) == ("second", {"stage": "dev"})

    client.rename_registered_model(name, name + "-new")
    assert client.get_registered_model(name + "-new").description == "second"
    with pytest.raises(RestException) as caught:
        client.get_registered_model(name)
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    client.delete_registered_model(name + "-new")
    assert not client.search_registered_models(f"name = '{name}-new'")


def test_register_logged_model_alias_and_load(
    client: mlflow.MlflowClient,
    logged: mlflow.models.model.ModelInfo,
    fitted: tuple[LogisticRegression, np.ndarray],
) -> None:
    name = _name("churn")
    version = mlflow.register_model(logged.model_uri, name)
    assert version.version == "1"
    assert version.source == f"models:/{logged.model_id}"
    assert version.run_id == logged.run_id
    assert version.status == ModelVersionStatus.to_string(ModelVersionStatus.READY)

    client.set_registered_model_alias(name, "challenger", version.version)
    by_alias = client.get_model_version_by_alias(name, "challenger")
    assert (by_alias.version, by_alias.aliases) == ("1", ["challenger"])
    assert client.get_registered_model(name).aliases == {"challenger": "1"}

    model, features = fitted
    loaded = mlflow.sklearn.load_model(f"models:/{name}@challenger")
    assert (loaded.predict(features) == model.predict(features)).all()
    pyfunc = mlflow.pyfunc.load_model(f"models:/{name}/1")
    assert (pyfunc.predict(features) == model.predict(features)).all()

    client.delete_registered_model_alias(name, "challenger")
    with pytest.raises(RestException) as caught:
        client.get_model_version_by_alias(name, "challenger")
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_protected_alias_needs_an_approval(
    client: mlflow.MlflowClient, logged: mlflow.models.model.ModelInfo
) -> None:
    """``champion`` is protected by default: the MLflow client cannot move it past approvals."""
    name = _name("protected")
    client.create_registered_model(name)
    client.create_model_version(name, f"models:/{logged.model_id}")
    with pytest.raises(RestException) as caught:
        client.set_registered_model_alias(name, "champion", "1")
    assert caught.value.error_code == "PERMISSION_DENIED"
    assert "request-promotion" in caught.value.message
    assert client.get_registered_model(name).aliases == {}


def test_register_by_run_path_and_log_model_with_name(
    tracking: str, client: mlflow.MlflowClient, fitted: tuple[LogisticRegression, np.ndarray]
) -> None:
    name = _name("by-run")
    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(
            fitted[0], name="model", registered_model_name=name, pip_requirements=["scikit-learn"]
        )
    second = mlflow.register_model(f"runs:/{run.info.run_id}/model", name)
    assert second.version == "2"
    assert [v.version for v in client.search_model_versions(f"name='{name}'")] == ["2", "1"]


@pytest.mark.filterwarnings("ignore:.*is deprecated since 2.9.0:FutureWarning")
def test_versions_search_stages_tags_and_download_uri(
    client: mlflow.MlflowClient, logged: mlflow.models.model.ModelInfo
) -> None:
    name = _name("versions")
    client.create_registered_model(name)
    first = client.create_model_version(name, f"models:/{logged.model_id}", run_id=logged.run_id)
    second = client.create_model_version(
        name, f"models:/{logged.model_id}", tags={"validated": "yes"}, description="candidate"
    )
    assert (first.version, second.version) == ("1", "2")

    found = client.search_model_versions(f"name='{name}' AND tags.validated = 'yes'")
    assert [(v.version, v.description) for v in found] == [("2", "candidate")]
    assert [m.name for m in client.search_registered_models(f"name LIKE '{name[:-3]}%'")] == [name]

    moved = client.transition_model_version_stage(name, "2", "Production", archive_existing_versions=True)
    assert moved.current_stage == "Production"
    latest = client.get_latest_versions(name, stages=["Production"])
    assert [v.version for v in latest] == ["2"]

    client.set_model_version_tag(name, "1", "note", "baseline")
    client.delete_model_version_tag(name, "2", "validated")
    client.update_model_version(name, "1", description="first one")
    got = client.get_model_version(name, "1")
    assert (got.tags, got.description) == ({"note": "baseline"}, "first one")

    uri = client.get_model_version_download_uri(name, "1")
    assert uri.startswith("mlflow-artifacts:/") and logged.model_id in uri

    client.delete_model_version(name, "1")
    with pytest.raises(RestException) as caught:
        client.get_model_version(name, "1")
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert client.create_model_version(name, f"models:/{logged.model_id}").version == "3"


def test_search_pagination(client: mlflow.MlflowClient, logged: mlflow.models.model.ModelInfo) -> None:
    name = _name("pages")
    client.create_registered_model(name)
    for _ in range(3):
        client.create_model_version(name, f"models:/{logged.model_id}")
    page = client.search_model_versions(f"name = '{name}'", max_results=2)
    assert [v.version for v in page] == ["3", "2"]
    rest = client.search_model_versions(f"name = '{name}'", max_results=2, page_token=page.token)
    assert [v.version for v in rest] == ["1"] and not rest.token


def test_bad_input_is_refused_with_mlflow_codes(
    client: mlflow.MlflowClient, logged: mlflow.models.model.ModelInfo, tmp_path: object
) -> None:
    name = _name("refused")
    client.create_registered_model(name)
    client.create_model_version(name, f"models:/{logged.model_id}")
    for reserved in ("latest", "v1"):
        with pytest.raises(MlflowException) as caught:
            client.set_registered_model_alias(name, reserved, "1")
        assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(RestException) as caught:
        client.create_model_version(name, str(tmp_path))
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(RestException) as caught:
        client.create_model_version(_name("missing"), f"models:/{logged.model_id}")
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_wire_format_and_preview_prefix(
    http: httpx.Client, client: mlflow.MlflowClient, logged: mlflow.models.model.ModelInfo
) -> None:
    name = _name("wire")
    client.create_registered_model(name)
    client.create_model_version(name, f"models:/{logged.model_id}")
    client.set_registered_model_alias(name, "challenger", "1")

    body = http.get("/api/2.0/mlflow/registered-models/get", params={"name": name}).json()
    model = body["registered_model"]
    assert isinstance(model["creation_timestamp"], int)
    assert model["aliases"] == [{"alias": "challenger", "version": "1"}]
    assert [v["version"] for v in model["latest_versions"]] == ["1"]
    assert model["latest_versions"][0]["model_id"] == logged.model_id

    for prefix in ("/ajax-api/2.0/mlflow", "/api/2.0/preview/mlflow"):
        answer = http.get(f"{prefix}/registered-models/alias", params={"name": name, "alias": "challenger"})
        assert answer.json()["model_version"]["aliases"] == ["challenger"]

    deleted = http.request(
        "DELETE", "/api/2.0/mlflow/registered-models/alias", json={"name": name, "alias": "challenger"}
    )
    assert (deleted.status_code, deleted.json()) == (200, {})
    missing = http.get("/api/2.0/mlflow/model-versions/get", params={"name": name, "version": "9"})
    assert missing.status_code == 404
    assert missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
