"""Drift thresholds calibrated on same-distribution data, so that such data does not alert.

A fixed threshold (0.1 for distances) is right for some columns and windows and wrong for
others: the distance between two samples of one distribution shrinks like
``1/sqrt(window size)`` and depends on the column's shape. NannyML's answer is to set
thresholds from the spread of the statistic across reference chunks; :func:`calibrate`
does that per column and stores the thresholds in the profile.

Only distance methods are calibrated. A p-value is already calibrated under the null
hypothesis; its trouble at scale is the opposite one (tiny, real differences become
significant), which the distances and these thresholds address.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from conveyor.errors import InvalidInput
from conveyor.monitoring import _columns as cols
from conveyor.monitoring import stats
from conveyor.monitoring.drift import FEW_VALUES, measure
from conveyor.monitoring.profile import ColumnProfile, ReferenceProfile, Threshold
from conveyor.monitoring.window import WindowAccumulator

MIN_CHUNKS = 5


def _distance_method(reference: ColumnProfile, methods: Mapping[str, str]) -> str:
    method = methods.get(reference.name)
    if method is None:
        few = reference.n_unique is not None and reference.n_unique <= FEW_VALUES
        return "wasserstein" if reference.numeric and not few else "jensenshannon"
    if method not in stats.DISTANCE_METHODS:
        raise InvalidInput(
            f"only distance methods ({', '.join(stats.DISTANCE_METHODS)}) are calibrated, got {method!r} "
            f"for {reference.name!r}: p-value tests are calibrated by construction"
        )
    if method == "wasserstein" and not reference.numeric:
        raise InvalidInput(f"wasserstein needs numbers but {reference.name!r} is {reference.kind}")
    return method


def calibrate(
    profile: ReferenceProfile,
    reference_chunks: Iterable[cols.Chunk | Iterable[cols.Chunk]],
    *,
    methods: Mapping[str, str] | None = None,
    quantile: float = 0.99,
    sigmas: float = 3.0,
) -> ReferenceProfile:
    """The profile with per-column thresholds learned from same-distribution chunks.

    Each chunk plays one window: give chunks of the size of the windows to be monitored
    (the statistic depends on it) drawn from the reference distribution but not from the
    rows the profile was built on (those would sit closer to the profile than new data
    does). Per column, the threshold is the larger of the ``quantile`` of the statistic
    across chunks and its mean plus ``sigmas`` standard deviations (NannyML's rule): with a
    few dozen chunks the quantile alone sits at their maximum, which a new same-distribution
    window exceeds about once in (chunks + 1).

    Args:
        profile: the reference profile.
        reference_chunks: at least 5 chunks (each a DataFrame, RecordBatch, Table or an
            iterable of them).
        methods: per-column distance method; default ``wasserstein`` for numbers,
            ``jensenshannon`` for categories.
        quantile: quantile of the chunk statistics that the threshold is at least.
        sigmas: standard deviations above the mean that the threshold is at least.

    Raises:
        InvalidInput: fewer than 5 chunks, a p-value method, or a bad quantile.
    """
    if not 0 < quantile <= 1:
        raise InvalidInput(f"quantile must be in (0, 1], got {quantile}")
    methods = dict(methods or {})
    chosen = {name: _distance_method(ref, methods) for name, ref in profile.columns.items() if ref.count}
    observed: dict[str, list[float]] = {name: [] for name in chosen}
    chunks = 0
    for chunks, chunk in enumerate(reference_chunks, start=1):
        accumulator = WindowAccumulator(profile, seed=chunks)
        accumulator.update(chunk)
        for name, summary in accumulator.summaries().items():
            if name in chosen and summary.values:
                observed[name].append(measure(profile.columns[name], summary, chosen[name])[0])
    if chunks < MIN_CHUNKS:
        raise InvalidInput(f"calibration needs at least {MIN_CHUNKS} reference chunks, got {chunks}")
    rule = f"max(q{quantile:g}, mean + {sigmas:g} sd)"
    thresholds = {
        name: Threshold(chosen[name], _threshold(np.array(values), quantile, sigmas), len(values), rule)
        for name, values in observed.items()
        if len(values) >= MIN_CHUNKS
    }
    return profile.with_calibration(thresholds)


def _threshold(values: np.ndarray, quantile: float, sigmas: float) -> float:
    return float(max(np.quantile(values, quantile), values.mean() + sigmas * values.std(ddof=1)))
