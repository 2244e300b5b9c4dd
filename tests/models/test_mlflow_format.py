"""Model directories written by the official mlflow client load with conveyor.models.load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conveyor import models
from conveyor.errors import InvalidInput
from conveyor.models import PickleWarning

Data = tuple[pd.DataFrame, np.ndarray]

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:mlflow")
#: Explicit requirements: MLflow's inference imports the model in a subprocess (seconds).
NO_INFERENCE = ["scikit-learn"]


def test_sklearn_skops_with_signature(frame: Data, tmp_path: Path) -> None:
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    X, y = frame
    fitted = LogisticRegression().fit(X, y)
    mlflow.sklearn.save_model(
        fitted, tmp_path / "m", signature=infer_signature(X, fitted.predict(X)), pip_requirements=NO_INFERENCE
    )
    loaded = models.load(tmp_path / "m")
    assert loaded.manifest.flavor_fields["source_format"] == "mlflow"
    assert loaded.signature is not None
    assert [(f.name, f.dtype) for f in loaded.signature.inputs.fields] == [
        ("age", "float64"),
        ("income", "float64"),
    ]
    np.testing.assert_array_equal(loaded.predict(X), fitted.predict(X))
    with pytest.raises(InvalidInput, match=r"missing the required column 'income'"):
        loaded.predict(X[["age"]])


def test_sklearn_cloudpickle_needs_opt_in(frame: Data, tmp_path: Path) -> None:
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    X, y = frame
    fitted = LogisticRegression().fit(X, y)
    mlflow.sklearn.save_model(
        fitted, tmp_path / "m", serialization_format="cloudpickle", pip_requirements=NO_INFERENCE
    )
    with pytest.raises(InvalidInput, match=r"cloudpickle.*loading a pickle runs code"):
        models.load(tmp_path / "m")
    with pytest.warns(PickleWarning):
        loaded = models.load(tmp_path / "m", allow_pickle=True)
    np.testing.assert_array_equal(loaded.predict(X), fitted.predict(X))


def test_xgboost(frame: Data, tmp_path: Path) -> None:
    import mlflow.xgboost
    import xgboost

    X, y = frame
    fitted = xgboost.XGBClassifier(n_estimators=3, max_depth=2).fit(X, y)
    mlflow.xgboost.save_model(fitted, tmp_path / "m", pip_requirements=NO_INFERENCE)
    loaded = models.load(tmp_path / "m")
    assert type(loaded.raw) is xgboost.XGBClassifier
    np.testing.assert_array_equal(loaded.predict(X), fitted.predict(X))
    assert len(loaded.manifest.digest) == 64
