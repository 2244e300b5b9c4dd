"""Mergeable summaries with bounded memory: the building blocks of profiles and windows.

Every summary here follows one contract, so that a window can be split across Dask
workers and merged without changing the answer beyond the stated error:

- ``update(chunk)`` consumes one chunk (a numpy array) and keeps only a bounded state;
- ``merge(other)`` folds in a summary of another part of the same stream;
- updating with A then B, or merging a summary of A with one of B, answers alike.

=====================  ===============================  ===================================
summary                what it answers                  error
=====================  ===============================  ===================================
:class:`Moments`       count, mean, std, min, max       exact (Chan et al. parallel merge)
:class:`QuantileSketch` quantiles and ranks             exact up to ``k`` values; then a
                                                        normalized rank error of about
                                                        ``1/k`` (0.1 % at ``k=2048``)
:class:`Reservoir`     a uniform sample without         exact (it is the data) up to
                       replacement                      ``size`` values
:class:`FrequentItems` counts of the frequent values    exact up to ``capacity`` distinct
                                                        values; then each count is low by
                                                        at most ``error`` <= n/(capacity+1)
:class:`DistinctCounter` number of distinct 64-bit     linear counting on 2^22 bits:
                       hashes                           0.04 % up to 1 M rows, 0.06 %
                                                        at 10 M, 0.6 % at 40 M
=====================  ===============================  ===================================
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from conveyor.monitoring import _arrow


class Moments:
    """Count, mean, variance, min and max, merged exactly across chunks.

    Why not sum and sum of squares: their difference cancels catastrophically for data
    far from zero (timestamps in seconds, for one); the pairwise update of Chan, Golub and
    LeVeque keeps full precision.
    """

    def __init__(self) -> None:
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0  #: sum of squared deviations from the mean
        self.min = math.inf
        self.max = -math.inf

    def update(self, values: np.ndarray, *, presorted: bool = False) -> None:
        """Fold in finite float values (``presorted``: in ascending order, so the ends are min and max)."""
        if values.size == 0:
            return
        other = Moments()
        other.count = int(values.size)
        other.mean = float(values.mean())
        deviations = values - other.mean
        deviations *= deviations
        other.m2 = float(deviations.sum())
        other.min = float(values[0] if presorted else values.min())
        other.max = float(values[-1] if presorted else values.max())
        self.merge(other)

    def merge(self, other: Moments) -> None:
        """Fold in the moments of another part of the stream."""
        if other.count == 0:
            return
        total = self.count + other.count
        delta = other.mean - self.mean
        self.m2 += other.m2 + delta * delta * self.count * other.count / total
        self.mean += delta * other.count / total
        self.count = total
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    @property
    def std(self) -> float:
        """Population standard deviation (ddof=0, as ``numpy.std``); NaN when empty."""
        return math.sqrt(self.m2 / self.count) if self.count else math.nan


class QuantileSketch:
    """A KLL-style quantile sketch: compactors of equal capacity ``k`` per level.

    Level ``h`` holds values of weight ``2**h``. When a level holds more than ``k`` values
    it is sorted and every other value (a random offset) moves up one level with twice the
    weight; an odd value out stays. Each compaction moves any rank by at most the level's
    weight, with a random sign, so errors cancel rather than add up: the rank error is
    about ``n/k`` (normalized ``1/k``), tested at under 1 % for ``k=256``. A level is
    nearly empty after its compaction, so memory stays about ``2k`` values. Until ``k``
    values have been seen the sketch is the data and every answer is exact.
    """

    def __init__(self, k: int = 2048, rng: np.random.Generator | None = None) -> None:
        self.k = k
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.levels: list[np.ndarray] = [np.empty(0)]
        self.count = 0

    @property
    def exact(self) -> bool:
        """True while no value has been compacted away: answers are exact."""
        return len(self.levels) == 1

    def update(self, values: np.ndarray, *, presorted: bool = False) -> None:
        """Add finite float values (``presorted``: already in ascending order)."""
        if values.size:
            self.levels[0] = _merge_sorted(self.levels[0], values if presorted else np.sort(values))
            self.count += int(values.size)
            self._compress()

    def merge(self, other: QuantileSketch) -> None:
        """Add another sketch's values (of the same ``k``)."""
        for h, buffer in enumerate(other.levels):
            if h == len(self.levels):
                self.levels.append(np.empty(0))
            self.levels[h] = _merge_sorted(self.levels[h], buffer)
        self.count += other.count
        self._compress()

    def _compress(self) -> None:
        """Compact every over-full level; each level stays sorted, so nothing is re-sorted."""
        h = 0
        while h < len(self.levels):
            buffer = self.levels[h]
            if buffer.size > self.k:
                stay = np.empty(0)
                if buffer.size % 2:
                    out = int(self.rng.integers(buffer.size))
                    stay = buffer[out : out + 1]
                    buffer = np.delete(buffer, out)
                promoted = buffer[int(self.rng.integers(2)) :: 2]
                self.levels[h] = stay
                if h + 1 == len(self.levels):
                    self.levels.append(np.empty(0))
                self.levels[h + 1] = _merge_sorted(self.levels[h + 1], promoted)
            h += 1
        # A kept level may be a slice or a strided view of a whole chunk's values: copy it,
        # or the chunk stays alive as long as the sketch (a chunk per column, not ~2k values).
        for h, buffer in enumerate(self.levels):
            if buffer.base is not None:
                self.levels[h] = buffer.copy()

    def _sorted(self) -> tuple[np.ndarray, np.ndarray]:
        values = np.concatenate(self.levels)
        weights = np.concatenate([np.full(b.size, 2.0**h) for h, b in enumerate(self.levels)])
        order = np.argsort(values, kind="stable")
        return values[order], np.cumsum(weights[order])

    def quantiles(self, levels: np.ndarray) -> np.ndarray:
        """Values at probability ``levels`` (``numpy.quantile``'s ``inverted_cdf`` when exact)."""
        if self.count == 0:
            return np.full(len(levels), np.nan)
        values, cumulative = self._sorted()
        targets = np.asarray(levels, dtype=float) * cumulative[-1]
        index = np.searchsorted(cumulative, targets, side="left")
        return values[np.minimum(index, values.size - 1)]

    def rank(self, points: np.ndarray) -> np.ndarray:
        """Estimated number of values ``<= points`` (exact while :attr:`exact`)."""
        if self.count == 0:
            return np.zeros(len(points))
        values, cumulative = self._sorted()
        index = np.searchsorted(values, points, side="right")
        ranks = np.where(index > 0, cumulative[np.maximum(index - 1, 0)], 0.0)
        return ranks * (self.count / cumulative[-1])

    def nbytes(self) -> int:
        """Memory held by the retained values."""
        return sum(b.nbytes for b in self.levels)


def _merge_sorted(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Two ascending arrays as one, in linear time (the smaller is inserted into the larger)."""
    if a.size > b.size:
        a, b = b, a
    if not a.size:
        return b
    return np.insert(b, np.searchsorted(b, a), a)


class Reservoir:
    """A uniform sample without replacement of at most ``size`` values, mergeable.

    Why bottom-k instead of Vitter's algorithm R: each value gets a random key and the
    ``size`` smallest keys win. Merging two reservoirs is then just keeping the smallest
    keys of both, which is exactly a uniform sample of the union, and a chunk is taken in
    one vectorized ``argpartition``.
    """

    def __init__(self, size: int, rng: np.random.Generator, dtype: type | str = float) -> None:
        self.size = size
        self.rng = rng
        self.values = np.empty(0, dtype=dtype)
        self.keys = np.empty(0)
        self.seen = 0

    @property
    def complete(self) -> bool:
        """True when the sample holds every value seen (exact statistics)."""
        return self.seen <= self.size

    def update(self, values: np.ndarray) -> None:
        """Offer a chunk of values.

        Once the sample is full, only keys below its largest key can enter. Rather than
        draw a key per value and drop most of them, draw which values get a key below it
        (each independently, with that probability: the gaps between them are geometric)
        and their keys (uniform below it): the same distribution, in time proportional to
        what enters (about ``size * chunk / seen``).
        """
        n = int(values.size)
        self.seen += n
        if n == 0:
            return
        if self.keys.size < self.size:
            self._absorb(values, self.rng.random(n))
            return
        ceiling = float(self.keys.max())
        chosen = _bernoulli_positions(self.rng, n, ceiling)
        if chosen.size:
            self._absorb(values[chosen], self.rng.random(chosen.size) * ceiling)

    def merge(self, other: Reservoir) -> None:
        """Fold in a reservoir of another part of the stream."""
        self.seen += other.seen
        self._absorb(other.values, other.keys)

    def _absorb(self, values: np.ndarray, keys: np.ndarray) -> None:
        if self.keys.size >= self.size and keys.size:
            keep = keys < self.keys.max()
            values, keys = values[keep], keys[keep]
        if not keys.size:
            return
        values = np.concatenate([self.values, values])
        keys = np.concatenate([self.keys, keys])
        if keys.size > self.size:
            chosen = np.argpartition(keys, self.size - 1)[: self.size]
            values, keys = values[chosen], keys[chosen]
        self.values, self.keys = values, keys

    def nbytes(self) -> int:
        """Memory held by the sample."""
        return self.values.nbytes + self.keys.nbytes


def _bernoulli_positions(rng: np.random.Generator, n: int, p: float) -> np.ndarray:
    """The positions of ``range(n)`` kept when each is kept independently with probability ``p``."""
    if p >= 1.0:
        return np.arange(n)
    if p <= 0.0:
        return np.empty(0, dtype=np.int64)
    expected = n * p
    positions = np.cumsum(rng.geometric(p, int(expected + 4 * math.sqrt(expected) + 8))) - 1
    while positions[-1] < n:
        more = rng.geometric(p, int(expected) + 8)
        positions = np.concatenate([positions, positions[-1] + np.cumsum(more)])
    return positions[: np.searchsorted(positions, n)]


class FrequentItems:
    """Counts of the most frequent values (Misra-Gries), mergeable, at most ``capacity`` kept.

    Exact while there are at most ``capacity`` distinct values. Beyond that, each time the
    table overflows the (capacity+1)-th largest count is subtracted from every entry and
    the non-positive ones are dropped; :attr:`error` adds up what was subtracted, so each
    kept count is low by at most ``error`` (<= n/(capacity+1)), and every value more
    frequent than ``error`` is kept. The values live in an Arrow string array and the
    counts in a numpy array (:attr:`values`, :attr:`counts`), so that merging a chunk's
    value counts is one dictionary encoding and one ``bincount``, with no Python object
    per value.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.values: pa.Array = _arrow.strings([])
        self.counts = np.empty(0, dtype=np.int64)
        self.total = 0
        self.error = 0

    @property
    def complete(self) -> bool:
        """True when no count was ever cut: the table is every value with its exact count."""
        return self.error == 0

    def update(self, values: Any, counts: np.ndarray) -> None:
        """Add ``counts[i]`` occurrences of ``values[i]`` (an Arrow array or a sequence of strings)."""
        if len(values):
            counts = np.asarray(counts, dtype=np.int64)
            self._add(_as_strings(values), counts, int(counts.sum()))

    def merge(self, other: FrequentItems) -> None:
        """Fold in the table of another part of the stream."""
        self.error += other.error
        self._add(other.values, other.counts, other.total)

    def _add(self, values: pa.Array, counts: np.ndarray, total: int) -> None:
        self.total += total
        if len(self.values):
            values = pa.concat_arrays([self.values, values])
            counts = np.concatenate([self.counts, counts])
        encoded = pc.dictionary_encode(values)
        distinct = encoded.dictionary
        if len(distinct) < len(values):  # a value given twice: add its counts up
            index = _arrow.integers(encoded.indices, 0)
            counts = np.bincount(index, weights=counts, minlength=len(distinct)).round().astype(np.int64)
            values = distinct
        if len(values) > self.capacity:
            cut = int(np.partition(counts, len(counts) - self.capacity - 1)[-self.capacity - 1])
            counts = counts - cut
            keep = counts > 0
            values, counts = values.filter(_arrow.mask(keep)), counts[keep]
            self.error += cut
        self.values, self.counts = values, counts

    def top(self, n: int) -> list[tuple[str, int]]:
        """The ``n`` most frequent values, most frequent first, ties by value."""
        if not len(self.values):
            return []
        table = pa.table({"value": self.values, "count": _arrow.int64s(self.counts)})
        order = pc.sort_indices(table, sort_keys=[("count", "descending"), ("value", "ascending")])
        order = order[: max(n, 0)]
        values = self.values.take(order).to_pylist()
        counts = self.counts[_arrow.integers(order, 0)]
        return [(str(v), int(c)) for v, c in zip(values, counts, strict=True)]

    def nbytes(self) -> int:
        """Approximate memory of the table."""
        return int(self.values.nbytes + self.counts.nbytes)


def _as_strings(values: Any) -> pa.Array:
    """An Arrow string array of ``values`` (Arrow arrays of strings pass through)."""
    if isinstance(values, pa.Array):
        if pa.types.is_large_string(values.type):
            return values.cast(pa.string())
        if pa.types.is_string(values.type):
            return values
        return values.cast(pa.string())
    return _arrow.strings([str(v) for v in values])


class DistinctCounter:
    """Approximate count of distinct 64-bit hashes by linear counting on a bitmap.

    Why linear counting rather than HyperLogLog: duplicate rates are usually small, and
    ``1 - distinct/rows`` needs the distinct count to within a fraction of a percent.
    With m = 2^22 bits (a 4 MiB boolean array) the error of the estimate, ``sqrt(m (e^t - t - 1)) / n``
    for ``t = n/m``, is about 0.04 % of n up to 1 M rows, 0.06 % at 10 M and 0.6 % at
    40 M; past about ``m ln m`` (60 M) rows every bit is set and :meth:`estimate` gives
    None. Merging is a bitwise OR.
    """

    BITS = 22

    def __init__(self) -> None:
        self.bitmap = np.zeros(1 << self.BITS, dtype=bool)

    def update(self, hashes: np.ndarray) -> None:
        """Add uint64 hashes."""
        self.bitmap[hashes >> np.uint64(64 - self.BITS)] = True

    def merge(self, other: DistinctCounter) -> None:
        """Fold in another counter."""
        np.logical_or(self.bitmap, other.bitmap, out=self.bitmap)

    def estimate(self) -> float | None:
        """Estimated number of distinct hashes, or None once the bitmap is saturated."""
        m = self.bitmap.size
        empty = m - int(np.count_nonzero(self.bitmap))
        if empty == 0:
            return None
        return -m * math.log(empty / m)

    def nbytes(self) -> int:
        """Memory of the bitmap (4 MiB)."""
        return self.bitmap.nbytes
