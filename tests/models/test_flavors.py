"""Each flavor on its real library: save, load, predict the same; pickle only on request."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conveyor import models
from conveyor.errors import ConveyorError, InvalidInput
from conveyor.models import PickleWarning

Data = tuple[pd.DataFrame, np.ndarray]


def round_trip(model: object, path: Path, example: object, **load_options: object) -> models.LoadedModel:
    models.save(model, path, input_example=example)
    return models.load(path, **load_options)  # type: ignore[arg-type]


def test_sklearn_pipeline(frame: Data, tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = frame
    pipeline = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    loaded = round_trip(pipeline, tmp_path / "m", X.head(3))
    assert loaded.manifest.flavor == "sklearn"
    assert loaded.manifest.flavor_fields["serialization_format"] == "skops"
    assert "scikit-learn==" in " ".join(loaded.manifest.pip_requirements)
    np.testing.assert_array_equal(loaded.predict(X), pipeline.predict(X))
    pd.testing.assert_frame_equal(loaded.input_example, X.head(3).reset_index(drop=True))


def test_sklearn_custom_type_needs_trust(frame: Data, tmp_path: Path) -> None:
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline

    X, y = frame
    pipeline = make_pipeline(Doubler(), LinearRegression()).fit(X, y)
    models.save(pipeline, tmp_path / "m")
    with pytest.raises(InvalidInput, match=r"Doubler.*trusted_types"):
        models.load(tmp_path / "m")
    name = f"{Doubler.__module__}.Doubler"
    loaded = models.load(tmp_path / "m", trusted_types=[name])
    np.testing.assert_allclose(loaded.predict(X), pipeline.predict(X))


def test_xgboost_wrapper_and_booster(frame: Data, tmp_path: Path) -> None:
    import xgboost

    X, y = frame
    classifier = xgboost.XGBClassifier(n_estimators=4, max_depth=2).fit(X, y)
    loaded = round_trip(classifier, tmp_path / "clf", X.head(2))
    assert type(loaded.raw) is xgboost.XGBClassifier
    assert loaded.manifest.flavor_fields == {
        "model_class": "xgboost.sklearn.XGBClassifier",
        "model_format": "ubj",
    }
    np.testing.assert_array_equal(loaded.predict(X), classifier.predict(X))

    booster = xgboost.train({"max_depth": 2}, xgboost.DMatrix(X, y), num_boost_round=3)
    loaded = round_trip(booster, tmp_path / "booster", X.head(2))
    np.testing.assert_allclose(loaded.predict(X), booster.predict(xgboost.DMatrix(X)))


def test_lightgbm_wrapper_and_booster(frame: Data, tmp_path: Path) -> None:
    import lightgbm

    X, y = frame
    classifier = lightgbm.LGBMClassifier(n_estimators=4, verbose=-1).fit(X, y)
    loaded = round_trip(classifier, tmp_path / "clf", X.head(2))
    assert type(loaded.raw) is lightgbm.LGBMClassifier
    np.testing.assert_array_equal(loaded.predict(X), classifier.predict(X))
    # The native text file is there for non-Python consumers, and is the same booster.
    native = lightgbm.Booster(model_file=str(tmp_path / "clf" / "model.txt"))
    np.testing.assert_allclose(native.predict(X), classifier.predict_proba(X)[:, 1])

    booster = lightgbm.train({"verbose": -1}, lightgbm.Dataset(X, y), num_boost_round=3)
    loaded = round_trip(booster, tmp_path / "booster", X.head(2))
    assert set(models.ModelManifest.__dataclass_fields__) >= {"files", "digest"}
    assert sorted(loaded.manifest.files) == ["input_example.parquet", "model.txt"]
    np.testing.assert_allclose(loaded.predict(X), booster.predict(X))


def test_onnx_model_proto(frame: Data, tmp_path: Path) -> None:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    X, y = frame
    features = X.to_numpy()
    fitted = LogisticRegression().fit(features, y)
    proto = to_onnx(fitted, features[:1].astype(np.float32), options={"zipmap": False})
    loaded = round_trip(proto, tmp_path / "m", features[:2])
    assert type(loaded.raw).__name__ == "InferenceSession"
    outputs = loaded.predict(features)
    np.testing.assert_array_equal(outputs["label"], fitted.predict(features))
    np.testing.assert_allclose(outputs["probabilities"], fitted.predict_proba(features), atol=1e-5)


class Doubler:
    """A custom transformer: not a scikit-learn type, so skops needs it trusted."""

    def fit(self, X: object, y: object = None) -> Doubler:
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        return X * 2


class Threshold:
    """A hand-written model: only the python_function flavor (pickle) stores it."""

    def __init__(self, cut: float) -> None:
        self.cut = cut

    def predict(self, data: pd.DataFrame) -> np.ndarray:
        return (data["age"] > self.cut).to_numpy()


def test_python_function_requires_opt_in_at_save(frame: Data, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"allow_pickle=True"):
        models.save(Threshold(40), tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_python_function_requires_opt_in_at_load(frame: Data, tmp_path: Path) -> None:
    X, _ = frame
    with pytest.warns(PickleWarning):
        models.save(Threshold(40), tmp_path / "m", input_example=X.head(2), allow_pickle=True)
    with pytest.raises(InvalidInput, match=r"loading a pickle runs code"):
        models.load(tmp_path / "m")
    with pytest.warns(PickleWarning):
        loaded = models.load(tmp_path / "m", allow_pickle=True)
    np.testing.assert_array_equal(loaded.predict(X), Threshold(40).predict(X))


def test_unknown_model_and_forced_flavor(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"No model flavor stores a builtins.object"):
        models.save(object(), tmp_path / "a")
    with pytest.raises(InvalidInput, match=r"Unknown model flavor 'keras'.*sklearn"):
        models.save(Threshold(1), tmp_path / "b", flavor="keras")


def test_save_refuses_a_non_empty_folder(frame: Data, tmp_path: Path) -> None:
    from sklearn.linear_model import LinearRegression

    X, y = frame
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "keep.txt").write_text("mine")
    with pytest.raises(InvalidInput, match=r"not an empty folder"):
        models.save(LinearRegression().fit(X, y), tmp_path / "m")
    assert (tmp_path / "m" / "keep.txt").read_text() == "mine"


class Unsupported:
    """A model of a framework whose package is not installed."""


class MissingLibraryFlavor(models.Flavor):
    name = "test-missing-library"
    framework = "conveyor-missing-package"
    requirements = ()

    def accepts(self, model: object) -> bool:
        return isinstance(model, Unsupported)

    def dump(self, model: object, folder: Path) -> dict[str, object]:
        import conveyor_missing_package  # noqa: F401

        return {}

    def load(self, folder: Path, fields: object, options: models.LoadOptions) -> object:
        raise AssertionError("never saved")


def test_missing_framework_package_gives_an_install_hint(tmp_path: Path) -> None:
    models.register_flavor(MissingLibraryFlavor(), clobber=True)
    with pytest.raises(
        ConveyorError, match=r"needs the Python package 'conveyor_missing_package'.*conveyor\[models\]"
    ):
        models.save(Unsupported(), tmp_path / "m")
    assert not (tmp_path / "m").exists()
