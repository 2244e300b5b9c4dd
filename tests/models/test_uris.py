"""Model URIs: runs:/ through log_model on a local store; models:/ until a registry plugs in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conveyor import models
from conveyor.config import Settings
from conveyor.errors import IntegrityError, InvalidInput, NotFound
from conveyor.models import _uris
from conveyor.tracking.client import Client

Data = tuple[pd.DataFrame, np.ndarray]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    client = Client(settings=Settings(home=tmp_path / "home"))
    yield client
    client.close()


def test_log_model_then_load_by_runs_uri(client: Client, frame: Data) -> None:
    from sklearn.linear_model import LogisticRegression

    X, y = frame
    run_id = client.create_run("0").info.run_id
    fitted = LogisticRegression().fit(X, y)
    info = models.log_model(fitted, "models/churn", run_id=run_id, client=client, input_example=X.head(2))
    assert info.uri == f"runs:/{run_id}/models/churn"
    assert info.run_id == run_id
    listed = {f.path for f in client.list_artifacts(run_id, "models/churn")}
    assert listed == {"conveyor-model.yaml", "model.skops", "input_example.parquet"}
    loaded = models.load(info.uri, client=client)
    assert loaded.manifest.digest == info.digest
    np.testing.assert_array_equal(loaded.predict(X), fitted.predict(X))


def test_runs_uri_verifies_the_stored_bytes(client: Client, frame: Data, tmp_path: Path) -> None:
    from sklearn.linear_model import LinearRegression

    X, y = frame
    run_id = client.create_run("0").info.run_id
    models.log_model(LinearRegression().fit(X, y), "model", run_id=run_id, client=client)
    stored = next((tmp_path / "home" / "artifacts").rglob("model.skops"))
    stored.write_bytes(stored.read_bytes()[:-1] + b"!")
    with pytest.raises(IntegrityError, match=r"model.skops"):
        models.load(f"runs:/{run_id}/model", client=client)


def test_log_model_needs_a_run(client: Client) -> None:
    with pytest.raises(InvalidInput, match=r"needs run_id"):
        models.log_model(object(), "model", client=client)


def test_malformed_and_missing_uris(client: Client, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"runs:/<32-hex run id>/<artifact path>"):
        models.load("runs:/abc", client=client)
    with pytest.raises(NotFound):
        models.load(f"runs:/{'0' * 32}/model", client=client)
    with pytest.raises(NotFound, match=r"neither conveyor-model.yaml nor an MLflow MLmodel"):
        models.load(tmp_path)
    with pytest.raises(InvalidInput, match=r"Registered schemes are: file, .*models, .*runs"):
        models.load("gopher://host/model")


@pytest.mark.parametrize(
    ("uri", "which"), [("models:/churn/3", "version 3"), ("models:/churn@champion", "alias 'champion'")]
)
def test_models_uri_waits_for_a_registry(uri: str, which: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Importing conveyor.registry (other tests do) replaces the placeholder for the process.
    monkeypatch.setitem(_uris._resolvers, "models", _uris._resolve_registry)
    with pytest.raises(InvalidInput, match=f"model 'churn', {which}.*no model registry configured"):
        models.load(uri)


def test_models_uri_parsing() -> None:
    assert models.parse_models_uri("models:/churn/12") == ("churn", "12", None)
    assert models.parse_models_uri("models:/churn@prod") == ("churn", None, "prod")
    with pytest.raises(InvalidInput, match=r"Expected models:/<name>/<version>"):
        models.parse_models_uri("models:/churn")


def test_register_resolver_refuses_silent_replacement() -> None:
    with pytest.raises(InvalidInput, match=r"registered already; pass clobber=True"):
        models.register_resolver("runs", lambda request: models.ResolvedModel(request.scratch))


def test_file_uri(frame: Data, tmp_path: Path) -> None:
    from sklearn.linear_model import LinearRegression

    X, y = frame
    info = models.save(LinearRegression().fit(X, y), tmp_path / "m")
    assert models.load(f"file://{tmp_path / 'm'}").manifest.digest == info.digest
