"""The mergeable summaries: accuracy against exact answers, and merge = one pass."""

from __future__ import annotations

import numpy as np
import pytest

from conveyor.monitoring.sketch import DistinctCounter, FrequentItems, Moments, QuantileSketch, Reservoir

LEVELS = np.linspace(0.01, 0.99, 99)


def max_rank_error(sketch: QuantileSketch, data: np.ndarray) -> float:
    ordered = np.sort(data)
    estimates = sketch.quantiles(LEVELS)
    true_ranks = np.searchsorted(ordered, estimates, side="right") / data.size
    return float(np.abs(true_ranks - LEVELS).max())


@pytest.mark.parametrize("k", [256, 2048])
@pytest.mark.parametrize("distribution", ["normal", "lognormal", "sorted"])
def test_quantile_sketch_rank_error_under_one_percent(k: int, distribution: str) -> None:
    rng = np.random.default_rng(7)
    data = rng.lognormal(size=300_000) if distribution == "lognormal" else rng.normal(size=300_000)
    if distribution == "sorted":
        data = np.sort(data)  # adversarial order: a time-ordered column
    sketch = QuantileSketch(k, np.random.default_rng(1))
    for chunk in np.array_split(data, 60):
        sketch.update(chunk)
    assert max_rank_error(sketch, data) < 0.01
    assert sketch.count == data.size


def test_quantile_sketch_merged_partitions_are_as_accurate() -> None:
    rng = np.random.default_rng(3)
    parts = [rng.normal(loc=i, size=50_000) for i in range(6)]
    merged = QuantileSketch(256, np.random.default_rng(0))
    for i, part in enumerate(parts):
        partial = QuantileSketch(256, np.random.default_rng(i + 10))
        for chunk in np.array_split(part, 5):
            partial.update(chunk)
        merged.merge(partial)
    assert max_rank_error(merged, np.concatenate(parts)) < 0.01


def test_quantile_sketch_is_exact_while_small() -> None:
    data = np.random.default_rng(0).normal(size=1000)
    sketch = QuantileSketch(2048)
    sketch.update(data[:400])
    sketch.update(data[400:])
    assert sketch.exact
    np.testing.assert_array_equal(sketch.quantiles(LEVELS), np.quantile(data, LEVELS, method="inverted_cdf"))
    points = np.array([-1.0, 0.0, 0.5])
    np.testing.assert_array_equal(sketch.rank(points), [np.sum(data <= p) for p in points])


def test_quantile_sketch_memory_stays_bounded() -> None:
    sketch = QuantileSketch(256)
    rng = np.random.default_rng(0)
    for _ in range(200):
        sketch.update(rng.normal(size=10_000))
    assert sketch.nbytes() < 2 * 256 * 8 * 4


def test_moments_merge_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    data = rng.normal(1e9, 3.0, size=100_000)  # far from zero: naive sums would cancel
    whole, left, right = Moments(), Moments(), Moments()
    whole.update(data)
    left.update(data[:30_000])
    right.update(data[30_000:])
    left.merge(right)
    for m in (whole, left):
        assert m.count == data.size
        assert m.mean == pytest.approx(data.mean(), rel=1e-12)
        assert m.std == pytest.approx(data.std(), rel=1e-9)
        assert (m.min, m.max) == (data.min(), data.max())


def test_reservoir_is_complete_then_uniform() -> None:
    rng = np.random.default_rng(0)
    reservoir = Reservoir(1000, rng)
    reservoir.update(np.arange(600.0))
    assert reservoir.complete and sorted(reservoir.values) == list(range(600))
    reservoir.update(np.arange(600.0, 100_000.0))
    assert not reservoir.complete and reservoir.values.size == 1000
    assert len(set(reservoir.values)) == 1000
    # Uniform: the sample mean is within 4 standard errors of the population mean.
    assert abs(reservoir.values.mean() - 49_999.5) < 4 * 28_867 / np.sqrt(1000)


def test_reservoir_merge_samples_both_parts_in_proportion() -> None:
    a, b = Reservoir(2000, np.random.default_rng(1)), Reservoir(2000, np.random.default_rng(2))
    a.update(np.zeros(30_000))
    b.update(np.ones(10_000))
    a.merge(b)
    assert a.seen == 40_000 and a.values.size == 2000
    assert a.values.mean() == pytest.approx(0.25, abs=0.04)


def test_frequent_items_exact_then_bounded() -> None:
    items = FrequentItems(capacity=10)
    items.update(np.array(["a", "b"], dtype=object), np.array([5, 3]))
    items.update(np.array(["a", "c"], dtype=object), np.array([1, 2]))
    assert items.complete and items.top(3) == [("a", 6), ("b", 3), ("c", 2)]
    rng = np.random.default_rng(0)
    values = np.concatenate([np.repeat(["hot"], 5000), rng.integers(0, 10_000, 20_000).astype(str)])
    stream = FrequentItems(capacity=50)
    for chunk in np.array_split(rng.permutation(values), 20):
        distinct, counts = np.unique(chunk, return_counts=True)
        stream.update(distinct.astype(object), counts)
    assert not stream.complete and stream.error <= values.size / 51
    (top, count), *_ = stream.top(1)
    assert top == "hot" and 5000 - stream.error <= count <= 5000
    assert len(stream.counts) <= 50 and stream.total == values.size


def test_distinct_counter_within_documented_error() -> None:
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2**63, size=1_000_000, dtype=np.uint64) * np.uint64(2)
    counter, half = DistinctCounter(), DistinctCounter()
    counter.update(hashes[:600_000])
    half.update(hashes[400_000:])
    counter.merge(half)
    assert counter.estimate() == pytest.approx(1_000_000, rel=0.001)
