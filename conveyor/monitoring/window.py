"""Windows of production data, accumulated chunk by chunk against a reference profile.

::

    acc = WindowAccumulator(profile)
    for batch in parquet_file.iter_batches(100_000):
        acc.update(batch)
    report = acc.finish()            # WindowReport: drift + data quality

Memory is the chunk being read plus, per column, the summaries of
:mod:`~conveyor.monitoring.sketch` and the counts in the reference's bins, whatever the
number of rows. Accumulators of different partitions of one window merge
(``acc1.merge(acc2)``), so a window can be split across Dask workers.

What is exact and what is estimated, for a window of ``n`` values per column:

- binned statistics (PSI, Jensen-Shannon, chi-square) use the full counts: exact;
- Kolmogorov-Smirnov and Wasserstein use every value up to ``profile.sample_size`` values
  per side (exact); beyond that, that side's quantile function at 1,000 probabilities
  (the window's from its sketch, the reference's from its stored grid): D and the
  normalized Wasserstein distance then come within about 0.005 of the exact values in
  the tests, and KS's p-value is the asymptotic one for the true sizes;
- the duplicate rate comes from :class:`~conveyor.monitoring.sketch.DistinctCounter`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from conveyor.errors import InvalidInput
from conveyor.monitoring import _arrow
from conveyor.monitoring import _columns as cols
from conveyor.monitoring._summary import ColumnSummary
from conveyor.monitoring.drift import PSEUDO_PROBABILITIES, DriftReport, compute_drift
from conveyor.monitoring.profile import ColumnProfile, ReferenceProfile
from conveyor.monitoring.quality import QualityReport, compute_quality
from conveyor.monitoring.sketch import DistinctCounter, FrequentItems

#: New (unexpected) column names remembered per window.
MAX_NEW_COLUMNS = 1000
#: Distinct unseen categories counted per column (Misra-Gries capacity).
UNSEEN_CAPACITY = 100


@dataclass(frozen=True)
class WindowReport:
    """Drift and data quality of one window against the reference.

    ``histograms`` holds, per reference column, the window's counts in that column's
    reference bins (``profile.columns[name].bins``, same order, "other" last): a few
    integers per column, kept so a report can draw reference against current without
    the window's rows.
    """

    rows: int
    empty: bool
    drift: DriftReport
    quality: QualityReport
    histograms: dict[str, list[int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (no NaN)."""
        return {
            "rows": self.rows,
            "empty": self.empty,
            "drift": self.drift.to_dict(),
            "quality": self.quality.to_dict(),
            "histograms": self.histograms,
        }


class _Numbers:
    """A numeric column (text: its lengths) in a window: summaries, bins and range checks."""

    def __init__(
        self, reference: ColumnProfile, rng: np.random.Generator, sample_size: int, tolerance: float
    ) -> None:
        self.reference = reference
        self.state = cols.NumericState(rng, cols.SKETCH_K, sample_size)
        self.bin_counts = np.zeros(reference.bins.size if reference.bins else 1, dtype=np.int64)
        self.below = self.above = 0
        if reference.min is None or reference.max is None:
            self.low, self.high = -np.inf, np.inf
        else:
            margin = tolerance * (reference.max - reference.min)
            self.low, self.high = reference.min - margin, reference.max + margin

    def update(self, array: pa.Array) -> np.ndarray:
        if self.reference.kind == "text":
            strings, _ = cols.as_strings(array, "text")
            values, errors = cols.lengths(strings), 0
        else:
            values, errors = cols.as_numbers(array, self.reference.kind)
        ordered = self.state.update(values, errors)
        if self.reference.bins is not None:
            self.bin_counts += self.reference.bins.count_sorted(ordered)
        self.below += int(np.searchsorted(ordered, self.low, side="left"))
        self.above += int(ordered.size - np.searchsorted(ordered, self.high, side="right"))
        return cols.hash_numbers(values)

    def merge(self, other: _Numbers) -> None:
        self.state.merge(other.state)
        self.bin_counts += other.bin_counts
        self.below += other.below
        self.above += other.above

    def summary(self) -> ColumnSummary:
        state, moments = self.state, self.state.moments
        has = moments.count > 0
        return ColumnSummary(
            name=self.reference.name,
            present_rows=state.rows,
            missing=state.missing,
            type_errors=state.type_errors,
            bin_counts=self.bin_counts.copy(),
            sample=state.sample.values.copy(),
            sample_complete=state.sample.complete,
            quantiles=None if state.sample.complete else state.sketch.quantiles(PSEUDO_PROBABILITIES),
            mean=moments.mean if has else None,
            std=moments.std if has else None,
            min=moments.min if has else None,
            max=moments.max if has else None,
            below_range=self.below,
            above_range=self.above,
        )

    def nbytes(self) -> int:
        return self.state.nbytes() + self.bin_counts.nbytes


class _Strings:
    """A categorical or boolean column in a window: counts per reference category, unseen ones."""

    def __init__(self, reference: ColumnProfile) -> None:
        self.reference = reference
        bins = reference.bins
        categories = list(bins.values) if bins is not None else []
        self.categories = _arrow.strings([str(c) for c in categories])
        self.bin_counts = np.zeros(len(categories) + 1, dtype=np.int64)
        self.unseen = FrequentItems(UNSEEN_CAPACITY)
        self.present_rows = self.missing = self.type_errors = 0

    def update(self, array: pa.Array) -> np.ndarray:
        strings, errors = cols.as_strings(array, self.reference.kind)
        coded = cols.code(strings)
        self.present_rows += coded.rows
        self.missing += coded.nulls
        self.type_errors += errors
        # Each distinct value's bin (its category, else "other"), then rows per bin.
        found = pc.index_in(coded.dictionary, value_set=self.categories)
        other = len(self.categories)
        bins = _arrow.integers(found, other)
        per_bin = np.bincount(bins, weights=coded.counts, minlength=other + 1)
        self.bin_counts += per_bin.round().astype(np.int64)
        unseen = (bins == other) & (coded.counts > 0)
        if unseen.any():
            self.unseen.update(coded.dictionary.filter(_arrow.mask(unseen)), coded.counts[unseen])
        return coded.hashes()

    def merge(self, other: _Strings) -> None:
        self.present_rows += other.present_rows
        self.missing += other.missing
        self.type_errors += other.type_errors
        self.bin_counts += other.bin_counts
        self.unseen.merge(other.unseen)

    def summary(self) -> ColumnSummary:
        seen = int(np.count_nonzero(self.bin_counts[:-1]))
        reliable = self.reference.bins is not None and self.reference.bins.complete
        return ColumnSummary(
            name=self.reference.name,
            present_rows=self.present_rows,
            missing=self.missing,
            type_errors=self.type_errors,
            bin_counts=self.bin_counts.copy(),
            sample_complete=True,
            unseen=self.unseen.total if reliable else None,
            unseen_top=self.unseen.top(10) if reliable else [],
            distinct=seen + len(self.unseen.counts) if self.unseen.complete else None,
        )

    def nbytes(self) -> int:
        return self.bin_counts.nbytes + self.unseen.nbytes()


class WindowAccumulator:
    """Consumes a window's chunks one by one; mergeable across partitions.

    Args:
        profile: the reference to compare with.
        range_tolerance: a value is out of range when it lies outside the reference's
            [min, max] widened by this fraction of the range on each side.
        seed, partition: seed the window's samples (give each partition its own number).
    """

    def __init__(
        self, profile: ReferenceProfile, *, range_tolerance: float = 0.0, seed: int = 0, partition: int = 0
    ) -> None:
        if range_tolerance < 0:
            raise InvalidInput(f"range_tolerance must be >= 0, got {range_tolerance}")
        self.profile = profile
        self.rows = 0
        rng = np.random.default_rng([seed, partition, 1])
        self._columns: dict[str, _Numbers | _Strings] = {
            name: _Numbers(c, rng, profile.sample_size, range_tolerance) if c.numeric else _Strings(c)
            for name, c in profile.columns.items()
        }
        self.new_columns: dict[str, int] = {}
        self._distinct = DistinctCounter()

    def update(self, data: cols.Chunk | Iterable[cols.Chunk]) -> None:
        """Add one chunk (or several): RecordBatch, Table or DataFrame."""
        for batch in cols.iter_batches(data):
            self._update(batch)

    def _update(self, batch: pa.RecordBatch) -> None:
        row_hash = np.zeros(batch.num_rows, dtype=np.uint64)
        for name, array in zip(batch.schema.names, batch.columns, strict=True):
            column = self._columns.get(name)
            if column is None:
                self._note_new(name, batch.num_rows)
                continue
            row_hash = cols.combine_hashes(row_hash, column.update(array))
        self._distinct.update(row_hash)
        self.rows += batch.num_rows

    def _note_new(self, name: str, rows: int) -> None:
        if name in self.new_columns or len(self.new_columns) < MAX_NEW_COLUMNS:
            self.new_columns[name] = self.new_columns.get(name, 0) + rows

    def merge(self, other: WindowAccumulator) -> None:
        """Fold in the accumulator of another partition of the same window and profile."""
        if other.profile is not self.profile and other.profile.columns.keys() != self.profile.columns.keys():
            raise InvalidInput("can only merge window accumulators built on the same reference profile")
        for name, column in self._columns.items():
            column.merge(other._columns[name])  # type: ignore[arg-type]
        for name, rows in other.new_columns.items():
            self._note_new(name, rows)
        self._distinct.merge(other._distinct)
        self.rows += other.rows

    def summaries(self) -> dict[str, ColumnSummary]:
        """Per reference column, what the window holds so far."""
        return {name: column.summary() for name, column in self._columns.items()}

    def duplicate_rate(self) -> float | None:
        """Share of rows equal to an earlier row (estimated; None when empty or saturated)."""
        distinct = self._distinct.estimate()
        if not self.rows or distinct is None:
            return None
        return max(0.0, 1.0 - distinct / self.rows)

    def finish(
        self,
        *,
        methods: Mapping[str, str] | None = None,
        thresholds: Mapping[str, float] | None = None,
        correction: str | None = "bh",
        feature_importance: Mapping[str, float] | None = None,
        drift_share: float = 0.5,
    ) -> WindowReport:
        """Drift and quality of the window; the options are those of :func:`compute_drift`."""
        summaries = self.summaries()
        drift = compute_drift(
            self.profile,
            summaries,
            rows=self.rows,
            methods=methods,
            thresholds=thresholds,
            correction=correction,
            feature_importance=feature_importance,
            drift_share=drift_share,
        )
        quality = compute_quality(
            self.profile,
            summaries,
            rows=self.rows,
            duplicate_rate=self.duplicate_rate(),
            new_columns=self.new_columns,
        )
        return WindowReport(
            rows=self.rows,
            empty=self.rows == 0,
            drift=drift,
            quality=quality,
            histograms={name: s.bin_counts.tolist() for name, s in summaries.items()},
        )

    def nbytes(self) -> int:
        """Memory retained between chunks (sketches, samples, counts), not the chunk itself."""
        return self._distinct.nbytes() + sum(c.nbytes() for c in self._columns.values())


def analyze(
    profile: ReferenceProfile, batches: cols.Chunk | Iterable[cols.Chunk], **options: Any
) -> WindowReport:
    """One window in one call: accumulate ``batches``, then :meth:`WindowAccumulator.finish`.

    ``range_tolerance`` and ``seed`` go to the accumulator, everything else to ``finish``.
    """
    accumulator = WindowAccumulator(
        profile, range_tolerance=options.pop("range_tolerance", 0.0), seed=options.pop("seed", 0)
    )
    accumulator.update(batches)
    return accumulator.finish(**options)
