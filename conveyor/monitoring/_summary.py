"""What a finished window knows about one column: the input of the drift and quality reports.

A plain record between :mod:`~conveyor.monitoring.window` (which accumulates it) and
:mod:`~conveyor.monitoring.drift` / :mod:`~conveyor.monitoring.quality` (which judge it),
so that neither report depends on how the window was accumulated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class ColumnSummary:
    """One reference column as seen in a window.

    ``present_rows`` counts rows of chunks that had the column (0: absent from the whole
    window); ``missing`` and ``type_errors`` are among those rows. ``bin_counts`` are the
    window's full counts in the reference's bins; ``sample`` is a uniform sample of its
    values (numbers only), ``sample_complete`` True when it holds all of them; when it does
    not, ``quantiles`` is the window's quantile function (from its sketch) at
    :data:`~conveyor.monitoring.drift.PSEUDO_PROBABILITIES`. ``missing``
    counts every row without a usable value, type errors included. ``unseen`` is None when
    the reference kept only its most frequent categories, so "unseen" cannot be told.
    """

    name: str
    present_rows: int
    missing: int
    type_errors: int
    bin_counts: np.ndarray
    sample: np.ndarray | None = None
    sample_complete: bool = True
    quantiles: np.ndarray | None = None
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    below_range: int = 0
    above_range: int = 0
    unseen: int | None = 0
    unseen_top: list[tuple[str, int]] = field(default_factory=list)
    distinct: int | None = None

    @property
    def values(self) -> int:
        """Present, well-typed, non-missing values."""
        return self.present_rows - self.missing
