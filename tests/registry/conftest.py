"""A registry on SQLite or PostgreSQL, configured through the environment like a user's.

The environment matters: ``conveyor.models.load("models:/…")`` opens the registry from
the settings when no client is given, so the fixture sets ``CONVEYOR_DATABASE_URL`` and
``CONVEYOR_ARTIFACT_ROOT`` for the backend under test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from conveyor import models
from conveyor.config import Settings
from conveyor.registry import RegistryService


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def registry(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RegistryService]:
    monkeypatch.delenv("CONVEYOR_TRACKING_URI", raising=False)
    monkeypatch.setenv("CONVEYOR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CONVEYOR_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    if request.param == "postgres":
        monkeypatch.setenv("CONVEYOR_DATABASE_URL", request.getfixturevalue("postgres_url"))
    else:
        monkeypatch.setenv("CONVEYOR_DATABASE_URL", f"sqlite:///{tmp_path / 'registry.db'}")
    service = RegistryService.from_settings(Settings())
    yield service
    service.store.close()


@pytest.fixture
def name() -> str:
    """A model name of this test's own (the PostgreSQL database is shared by the session)."""
    return f"churn-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A small saved scikit-learn model."""
    return save_model(tmp_path / "model", seed=0)


def save_model(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(40, 3))
    labels = (features[:, 0] > 0).astype(np.int64)
    models.save(LogisticRegression(C=1.0 + seed).fit(features, labels), path)
    return path
