"""Synthetic mixed-type data for the monitoring tests, reproducible by seed."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

Frame = Callable[..., pd.DataFrame]


def mixed_frame(rows: int, *, seed: int = 0, shift: float = 0.0) -> pd.DataFrame:
    """Numerical, few-valued, categorical, boolean and datetime columns plus a prediction.

    ``shift`` moves the numerical mean by that many standard deviations and tilts the
    categorical distribution, so drift can be planted.
    """
    rng = np.random.default_rng(seed)
    weights = np.array([0.3, 0.25, 0.2, 0.15, 0.1]) + shift * np.array([-0.1, -0.05, 0.0, 0.05, 0.1])
    return pd.DataFrame(
        {
            "x": rng.normal(shift, 1.0, rows),
            "y": rng.gamma(2.0, 2.0, rows),
            "k": rng.integers(0, 4, rows),
            "c": rng.choice(list("abcde"), rows, p=weights / weights.sum()),
            "b": rng.random(rows) < 0.3,
            "t": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 10**6, rows), unit="s"),
            "pred": rng.random(rows),
        }
    )
