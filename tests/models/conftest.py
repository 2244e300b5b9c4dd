"""Small training data shared by the model tests: fast to fit, enough to tell models apart."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(scope="session")
def frame() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(7)
    features = pd.DataFrame({"age": rng.normal(40, 10, 80), "income": rng.normal(50, 15, 80)})
    labels = ((features["age"] + features["income"]) > 90).astype(np.int64).to_numpy()
    return features, labels
