"""Same model, same digest: saving identical models twice must give identical bytes.

The digest is how a registry recognises a model it already holds, so neither the save
time nor anything a library varies from dump to dump (zip entry times, ``id()``-based
names in skops files) may reach it. A different model must still get another digest.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conveyor import models

Data = tuple[pd.DataFrame, np.ndarray]
#: Fits a model on the shared frame; ``variant`` picks one of two different models.
Fit = Callable[[Data, int], object]


def _sklearn(data: Data, variant: int) -> object:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=1.0 + variant)).fit(*data)


def _xgboost(data: Data, variant: int) -> object:
    import xgboost

    return xgboost.XGBClassifier(n_estimators=3 + variant, max_depth=2).fit(*data)


def _lightgbm(data: Data, variant: int) -> object:
    import lightgbm

    return lightgbm.LGBMClassifier(n_estimators=3 + variant, verbose=-1).fit(*data)


def _onnx(data: Data, variant: int) -> object:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    features = data[0].to_numpy()
    fitted = LogisticRegression(C=1.0 + variant).fit(features, data[1])
    return to_onnx(fitted, features[:1].astype(np.float32), options={"zipmap": False})


@pytest.mark.parametrize("fit", [_sklearn, _xgboost, _lightgbm, _onnx], ids=lambda f: f.__name__[1:])
def test_same_model_same_digest_other_model_other_digest(fit: Fit, frame: Data, tmp_path: Path) -> None:
    model = fit(frame, 0)
    first = models.save(model, tmp_path / "first", input_example=frame[0].head(2))
    again = models.save(model, tmp_path / "again", input_example=frame[0].head(2))
    refit = models.save(fit(frame, 0), tmp_path / "refit", input_example=frame[0].head(2))
    other = models.save(fit(frame, 1), tmp_path / "other", input_example=frame[0].head(2))
    assert first.digest == again.digest == refit.digest
    assert first.manifest.files == refit.manifest.files
    assert other.digest != first.digest


def test_created_is_recorded_but_not_digested(frame: Data, tmp_path: Path) -> None:
    from dataclasses import replace

    from conveyor.models._manifest import compute_digest

    info = models.save(_sklearn(frame, 0), tmp_path / "m")
    later = replace(info.manifest, created="2099-01-01T00:00:00Z")
    assert info.manifest.created
    assert compute_digest(later.files, later.digested_metadata()) == info.digest


def test_skops_file_is_canonical_and_loads(frame: Data, tmp_path: Path) -> None:
    import zipfile

    model = _sklearn(frame, 0)
    models.save(model, tmp_path / "m")
    with zipfile.ZipFile(tmp_path / "m" / "model.skops") as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    loaded = models.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict(frame[0]), model.predict(frame[0]))  # type: ignore[attr-defined]


def test_format_1_manifest_still_verifies_with_created_digested(frame: Data, tmp_path: Path) -> None:
    from dataclasses import replace

    from conveyor.models._manifest import MANIFEST_NAME, compute_digest

    info = models.save(_sklearn(frame, 0), tmp_path / "m")
    old = replace(info.manifest, format_version=1)
    old = replace(old, digest=compute_digest(old.files, old.metadata()))
    (tmp_path / "m" / MANIFEST_NAME).write_text(old.to_yaml(), encoding="utf-8")
    assert models.load(tmp_path / "m").manifest.digest == old.digest != info.digest
