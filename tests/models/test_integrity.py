"""The manifest proves the directory: altered, extra or missing files and edits are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conveyor import models
from conveyor.errors import IntegrityError
from conveyor.models import MANIFEST_NAME

Data = tuple[pd.DataFrame, np.ndarray]


@pytest.fixture
def saved(frame: Data, tmp_path: Path) -> Path:
    from sklearn.linear_model import LinearRegression

    X, y = frame
    models.save(LinearRegression().fit(X, y), tmp_path / "m", input_example=X.head(2))
    return tmp_path / "m"


def test_manifest_records_every_file_and_a_digest(saved: Path) -> None:
    import hashlib

    manifest = yaml.safe_load((saved / MANIFEST_NAME).read_text())
    assert set(manifest["files"]) == {"model.skops", "input_example.parquet"}
    for name, entry in manifest["files"].items():
        data = (saved / name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    assert len(manifest["digest"]) == 64
    assert manifest["python_version"].count(".") == 2
    assert manifest["framework"]["name"] == "scikit-learn"
    assert models.load(saved).manifest.digest == manifest["digest"]


def test_tampered_file_is_refused_before_loading(saved: Path) -> None:
    with open(saved / "model.skops", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(IntegrityError, match=r"'model.skops'.*does not match its manifest"):
        models.load(saved)


def test_extra_file_is_refused(saved: Path) -> None:
    (saved / "sub").mkdir()
    (saved / "sub" / "payload.pkl").write_bytes(b"x")
    with pytest.raises(IntegrityError, match=r"does not list: \['sub/payload.pkl'\]"):
        models.load(saved)


def test_missing_file_is_refused(saved: Path) -> None:
    (saved / "input_example.parquet").unlink()
    with pytest.raises(IntegrityError, match=r"missing files.*input_example.parquet"):
        models.load(saved)


def test_edited_manifest_metadata_is_refused(saved: Path) -> None:
    manifest = yaml.safe_load((saved / MANIFEST_NAME).read_text())
    manifest["signature"]["inputs"]["fields"][0]["optional"] = True
    (saved / MANIFEST_NAME).write_text(yaml.safe_dump(manifest))
    with pytest.raises(IntegrityError, match=r"edited after saving"):
        models.load(saved)


def test_registry_digest_mismatch_is_refused(saved: Path) -> None:
    """A resolver (the registry, later) pins the digest recorded at registration."""

    def resolver(request: models.ResolveRequest) -> models.ResolvedModel:
        return models.ResolvedModel(saved, expected_digest="0" * 64)

    models.register_resolver("pinned", resolver, clobber=True)
    with pytest.raises(IntegrityError, match=r"expected 0000"):
        models.load("pinned:churn")
