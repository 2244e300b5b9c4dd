"""A served version picks the cheapest input its model answers identically."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from conveyor import models
from conveyor.serving.served import PREDICT, PROBA, ServedModel, prepare
from conveyor.serving.validation import InputSpec, columns_of


def served(folder: Path) -> ServedModel:
    loaded = models.load(folder)
    spec = InputSpec.from_signature(loaded.signature, flavor=loaded.manifest.flavor)
    return prepare(ServedModel("m", "default", "1", None, loaded, spec))


def test_a_plain_estimator_takes_a_matrix_without_its_warning(
    model_dirs: dict[str, Path], training: tuple[pd.DataFrame, np.ndarray]
) -> None:
    model = served(model_dirs["logreg1"])
    assert model.input_form == "matrix"
    assert model.native is not model.loaded.raw and hasattr(model.loaded.raw, "feature_names_in_")
    frame = training[0].head(20)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outputs = model.predict(model.spec.validate(columns_of(frame)), proba=True)
    assert caught == []  # not even "X does not have valid feature names"
    np.testing.assert_array_equal(outputs[PREDICT], model.loaded.predict(frame))
    np.testing.assert_allclose(outputs[PROBA], model.loaded.raw.predict_proba(frame))
    assert model.classes == (0, 1)
    assert model.output_meta[PREDICT][0] == np.int64


def test_a_pipeline_that_selects_columns_by_name_keeps_its_dataframe(model_dirs: dict[str, Path]) -> None:
    model = served(model_dirs["pipeline"])
    assert model.input_form == "frame" and model.native is None


def test_models_that_do_not_vectorize_are_not_batched(model_dirs: dict[str, Path]) -> None:
    loaded = models.load(model_dirs["logreg1"])
    assert served(model_dirs["logreg1"]).vectorizes
    free = ServedModel("m", "default", "1", None, loaded, InputSpec.from_signature(None))
    assert not free.vectorizes


def test_xgboost_takes_nan_as_missing(tmp_path: Path, training: tuple[pd.DataFrame, np.ndarray]) -> None:
    import xgboost

    frame, labels = training
    folder = tmp_path / "xgb"
    models.save(
        xgboost.XGBClassifier(n_estimators=5, max_depth=2).fit(frame, labels),
        folder,
        input_example=frame.head(2),
    )
    model = served(folder)
    rows = frame.head(4).assign(income=[np.nan, 1.0, np.nan, 2.0])
    columns = model.spec.validate(columns_of(rows))  # NaN allowed: XGBoost treats it as missing
    np.testing.assert_array_equal(model.predict(columns)[PREDICT], model.loaded.predict(rows))
    assert model.vectorizes and model.classes == (0, 1)


def test_onnx_outputs_keep_their_names(tmp_path: Path, training: tuple[pd.DataFrame, np.ndarray]) -> None:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    frame, labels = training
    fitted = LogisticRegression().fit(frame.to_numpy(np.float32), labels)
    proto = to_onnx(fitted, frame.to_numpy(np.float32)[:1], options={"zipmap": False})
    folder = tmp_path / "onnx"
    models.save(proto, folder, input_example=frame.head(2).astype(np.float32))
    model = served(folder)
    assert model.input_form == "matrix"
    outputs = model.predict(model.spec.validate(columns_of(frame.head(5).astype(np.float32))))
    assert set(outputs) == {"label", "probabilities"}
    np.testing.assert_array_equal(outputs["label"], fitted.predict(frame.head(5).to_numpy(np.float32)))
    assert outputs["probabilities"].shape == (5, 2)
