"""Building a :class:`~conveyor.monitoring.profile.ReferenceProfile` in one streaming pass.

:class:`ProfileBuilder` keeps, per column, only mergeable summaries (moments, a quantile
sketch, a uniform sample, a frequent-items table, the exact value counts while there are
few distinct values), so its memory does not grow with the number of rows, and builders
of different partitions merge into the profile of the whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pyarrow as pa

from conveyor.errors import InvalidInput
from conveyor.monitoring import _columns as cols
from conveyor.monitoring.profile import QUANTILE_LEVELS, Bins, ColumnProfile, ReferenceProfile
from conveyor.monitoring.sketch import DistinctCounter, FrequentItems

#: A string column with more distinct values than this many times ``top_k``, averaging
#: at least ``TEXT_MIN_LENGTH`` characters, is text rather than categorical.
TEXT_CAPACITY_FACTOR = 4
TEXT_MIN_LENGTH = 20


class _Numbers:
    """Builder state of a column of numbers: summaries plus exact counts of few values.

    ``levels`` is ``(values, counts)``, the distinct values in ascending order and how
    often each occurred, while there are at most ``max_levels`` of them; then None.
    """

    def __init__(self, rng: np.random.Generator, sample_size: int, max_levels: int) -> None:
        self.state = cols.NumericState(rng, cols.SKETCH_K, sample_size)
        self.max_levels = max_levels
        self.levels: tuple[np.ndarray, np.ndarray] | None = (np.empty(0), np.empty(0, dtype=np.int64))

    def update(self, values: np.ndarray, type_errors: int = 0) -> None:
        finite = self.state.update(values, type_errors)
        if finite.size and self.levels is not None:
            starts = np.flatnonzero(np.concatenate([[True], finite[1:] != finite[:-1]]))
            if starts.size > self.max_levels:
                self.levels = None
                return
            counts = np.diff(np.append(starts, finite.size))
            self._add_levels((finite[starts], counts))

    def merge(self, other: _Numbers) -> None:
        self.state.merge(other.state)
        self._add_levels(other.levels)

    def _add_levels(self, levels: tuple[np.ndarray, np.ndarray] | None) -> None:
        """Exact counts per value while there are at most ``max_levels`` of them, then None."""
        if self.levels is None or levels is None:
            self.levels = None
            return
        (mine, my_counts), (theirs, their_counts) = self.levels, levels
        union = np.union1d(mine, theirs)
        if union.size > self.max_levels:
            self.levels = None
            return
        counts = np.zeros(union.size, dtype=np.int64)
        counts[np.searchsorted(union, mine)] += my_counts
        counts[np.searchsorted(union, theirs)] += their_counts
        self.levels = (union, counts)

    def profile(self, name: str, kind: str, role: str, rows: int, bins: int) -> ColumnProfile:
        state = self.state
        missing = state.missing + rows - state.rows
        if state.moments.count == 0:
            return ColumnProfile(name, kind, role, rows, missing, state.type_errors, n_unique=0)
        sample = state.sample
        if sample.complete:
            quantiles = np.quantile(sample.values, QUANTILE_LEVELS, method="inverted_cdf")
        else:
            quantiles = state.sketch.quantiles(QUANTILE_LEVELS)
        quantiles[0], quantiles[-1] = state.moments.min, state.moments.max
        return ColumnProfile(
            name=name,
            kind=kind,
            role=role,
            rows=rows,
            missing=missing,
            type_errors=state.type_errors,
            n_unique=None if self.levels is None else len(self.levels[0]),
            mean=state.moments.mean,
            std=state.moments.std,
            min=state.moments.min,
            max=state.moments.max,
            quantiles=quantiles,
            bins=self._bins(bins),
            sample=np.sort(sample.values),
            sample_complete=sample.complete,
        )

    def _bins(self, bins: int) -> Bins:
        if self.levels is not None:
            values, counts = self.levels
            return Bins("levels", tuple(values.astype(float).tolist()), np.append(counts, 0))
        state = self.state
        probabilities = np.linspace(0.0, 1.0, bins + 1)[1:-1]
        if state.sample.complete:
            edges = np.unique(np.quantile(state.sample.values, probabilities, method="inverted_cdf"))
            shell = Bins("edges", tuple(edges), np.zeros(edges.size + 1, dtype=np.int64))
            return Bins("edges", shell.values, shell.count_sorted(np.sort(state.sample.values)))
        edges = np.unique(state.sketch.quantiles(probabilities))
        ranks = np.round(state.sketch.rank(edges)).astype(np.int64)
        counts = np.diff(np.concatenate([[0], ranks, [state.moments.count]]))
        return Bins("edges", tuple(edges), np.maximum(counts, 0), complete=False)

    def nbytes(self) -> int:
        return self.state.nbytes() + (0 if self.levels is None else sum(a.nbytes for a in self.levels))


class _Strings:
    """Builder state of a string column: value counts, plus lengths in case it is text.

    Lengths are summarized only once the column might be text: while the frequent-items
    table holds every distinct value with its exact count (a categorical column), the
    lengths are known from it, and a column stays categorical anyway. When the table first
    overflows, the lengths of everything seen so far are rebuilt from it, then each chunk
    adds its own (its distinct values' lengths, repeated by their counts). A column
    declared ``text`` summarizes lengths from the start.
    """

    def __init__(
        self, kind: str, rng: np.random.Generator, sample_size: int, capacity: int, max_levels: int
    ) -> None:
        self.kind = kind
        self.rows = 0
        self.missing = 0
        self.type_errors = 0
        self.items = FrequentItems(capacity)
        self._rng, self._sample_size, self._max_levels = rng, sample_size, max_levels
        self.lengths: _Numbers | None = self._new_lengths() if kind == "text" else None

    def _new_lengths(self) -> _Numbers:
        return _Numbers(self._rng, self._sample_size, self._max_levels)

    def _replayed(self, values: pa.Array, counts: np.ndarray) -> _Numbers:
        """Length summaries of an exact value-count table."""
        lengths = self._new_lengths()
        if len(values):
            lengths.update(np.repeat(cols.lengths(values), counts))
        return lengths

    def update(self, coded: cols.Coded, type_errors: int) -> None:
        self.rows += coded.rows
        self.missing += coded.nulls
        self.type_errors += type_errors
        before = (self.items.values, self.items.counts)
        self.items.update(*coded.used())
        if self.kind == "boolean":
            return
        if self.lengths is None and not self.items.complete:
            self.lengths = self._replayed(*before)
        if self.lengths is not None:
            self.lengths.update(coded.lengths())

    def merge(self, other: _Strings) -> None:
        self.rows += other.rows
        self.missing += other.missing
        self.type_errors += other.type_errors
        before = (self.items.values, self.items.counts)
        self.items.merge(other.items)
        if self.kind == "boolean" or (self.lengths is None and other.lengths is None and self.items.complete):
            return
        mine = self.lengths or self._replayed(*before)
        mine.merge(other.lengths or self._replayed(other.items.values, other.items.counts))
        self.lengths = mine

    def text_lengths(self) -> _Numbers:
        """The length summaries (rebuilt from the exact counts if not kept so far)."""
        if self.lengths is None:
            self.lengths = self._replayed(self.items.values, self.items.counts)
        return self.lengths

    def is_text(self) -> bool:
        if self.lengths is None:
            return False  # the table holds every value: a categorical column
        mean_length = self.lengths.state.moments.mean
        return not self.items.complete and mean_length >= TEXT_MIN_LENGTH

    def profile(self, name: str, kind: str, role: str, rows: int, top_k: int) -> ColumnProfile:
        missing = self.missing + rows - self.rows
        present = self.rows - self.missing
        if kind == "boolean":
            counts = dict(self.items.top(3))
            top = [(v, counts.get(v, 0)) for v in ("false", "true")]
        else:
            top = self.items.top(top_k)
        kept = np.array([c for _, c in top], dtype=np.int64)
        bins = Bins(
            "categories",
            tuple(v for v, _ in top),
            np.append(kept, present - kept.sum()),
            complete=self.items.complete and len(self.items.counts) <= len(top),
        )
        n_unique = len(self.items.counts) if self.items.complete else None
        return ColumnProfile(name, kind, role, rows, missing, self.type_errors, n_unique=n_unique, bins=bins)

    def nbytes(self) -> int:
        return self.items.nbytes() + (0 if self.lengths is None else self.lengths.nbytes())


class ProfileBuilder:
    """Accumulates a reference profile chunk by chunk; builders of partitions merge.

    Example::

        builder = ProfileBuilder(predictions="output.prediction", labels="label")
        for batch in parquet_file.iter_batches(100_000):
            builder.update(batch)
        profile = builder.finish()

    Give each partition its own ``partition`` number so that their random samples differ.
    """

    def __init__(
        self,
        *,
        predictions: str | Sequence[str] | None = None,
        labels: str | None = None,
        kinds: Mapping[str, str] | None = None,
        sample_size: int = 10_000,
        bins: int = 20,
        top_k: int = 50,
        seed: int = 0,
        partition: int = 0,
    ) -> None:
        if sample_size < 1 or bins < 2 or top_k < 2:
            raise InvalidInput(
                f"need sample_size >= 1, bins >= 2, top_k >= 2; got {sample_size}, {bins}, {top_k}"
            )
        self.kinds = dict(kinds or {})
        bad = {n: k for n, k in self.kinds.items() if k not in cols.KINDS}
        if bad:
            raise InvalidInput(f"unknown column kinds {bad}; kinds are {', '.join(cols.KINDS)}")
        predicted = [predictions] if isinstance(predictions, str) else list(predictions or [])
        self.roles = {name: "prediction" for name in predicted}
        if labels is not None:
            self.roles[labels] = "label"
        self.sample_size, self.bins, self.top_k, self.seed = sample_size, bins, top_k, seed
        self.rows = 0
        self._rng = np.random.default_rng([seed, partition])
        self._states: dict[str, _Numbers | _Strings] = {}
        self._column_kinds: dict[str, str] = {}
        self._order: list[str] = []
        self._distinct = DistinctCounter()

    def update(self, data: cols.Chunk | Iterable[cols.Chunk]) -> None:
        """Add one chunk (or several)."""
        for batch in cols.iter_batches(data):
            self._update(batch)

    def _update(self, batch: pa.RecordBatch) -> None:
        row_hash = np.zeros(batch.num_rows, dtype=np.uint64)
        for name, array in zip(batch.schema.names, batch.columns, strict=True):
            if name not in self._order:
                self._order.append(name)
            state = self._state_for(name, array)
            if state is None:
                continue
            kind = self._column_kinds[name]
            if isinstance(state, _Numbers):
                values, errors = cols.as_numbers(array, kind)
                state.update(values, errors)
                column_hash = cols.hash_numbers(values)
            else:
                strings, errors = cols.as_strings(array, kind)
                coded = cols.code(strings)
                state.update(coded, errors)
                column_hash = coded.hashes()
            row_hash = cols.combine_hashes(row_hash, column_hash)
        self._distinct.update(row_hash)
        self.rows += batch.num_rows

    def _state_for(self, name: str, array: pa.Array) -> _Numbers | _Strings | None:
        if name in self._states:
            return self._states[name]
        if name not in self.kinds and pa.types.is_null(array.type):
            return None  # no type yet: its rows count as missing until one arrives
        kind = self.kinds.get(name) or cols.infer_kind(array)
        self._column_kinds[name] = kind
        self._states[name] = self._new_state(kind)
        return self._states[name]

    def _new_state(self, kind: str) -> _Numbers | _Strings:
        if kind in ("numerical", "datetime"):
            return _Numbers(self._rng, self.sample_size, self.bins)
        capacity = TEXT_CAPACITY_FACTOR * self.top_k
        return _Strings(kind, self._rng, self.sample_size, capacity, self.bins)

    def merge(self, other: ProfileBuilder) -> None:
        """Fold in the builder of another partition (same settings)."""
        if (other.sample_size, other.bins, other.top_k) != (self.sample_size, self.bins, self.top_k):
            raise InvalidInput("can only merge profile builders with the same sample_size, bins and top_k")
        for name in other._order:
            if name not in self._order:
                self._order.append(name)
        for name, state in other._states.items():
            mine = self._states.get(name)
            if mine is None:
                self._states[name] = state
                self._column_kinds[name] = other._column_kinds[name]
            elif type(mine) is type(state):
                mine.merge(state)  # type: ignore[arg-type]
            else:
                raise InvalidInput(f"column {name!r} is numerical in one partition and text in another")
        self.rows += other.rows
        self._distinct.merge(other._distinct)

    def finish(self) -> ReferenceProfile:
        """The profile of everything added so far."""
        columns = {name: self._profile(name) for name in self._order}
        distinct = self._distinct.estimate()
        duplicates = None if distinct is None or not self.rows else max(0.0, 1.0 - distinct / self.rows)
        return ReferenceProfile(
            columns=columns,
            rows=self.rows,
            duplicate_rate=duplicates,
            sample_size=self.sample_size,
            bins=self.bins,
            top_k=self.top_k,
            seed=self.seed,
        )

    def _profile(self, name: str) -> ColumnProfile:
        role = self.roles.get(name, "feature")
        state = self._states.get(name)
        if state is None:
            kind = self.kinds.get(name, "categorical")
            return ColumnProfile(name, kind, role, self.rows, self.rows, n_unique=0)
        kind = self._column_kinds[name]
        if isinstance(state, _Numbers):
            return state.profile(name, kind, role, self.rows, self.bins)
        if kind == "categorical" and name not in self.kinds and state.is_text():
            kind = "text"
        if kind == "text":
            return state.text_lengths().profile(name, kind, role, self.rows, self.bins)
        return state.profile(name, kind, role, self.rows, self.top_k)

    def nbytes(self) -> int:
        """Memory held by the summaries (constant in the number of rows, up to sketch levels)."""
        return self._distinct.nbytes() + sum(s.nbytes() for s in self._states.values())


def build_profile(
    batches: cols.Chunk | Iterable[cols.Chunk],
    *,
    predictions: str | Sequence[str] | None = None,
    labels: str | None = None,
    kinds: Mapping[str, str] | None = None,
    sample_size: int = 10_000,
    bins: int = 20,
    top_k: int = 50,
    seed: int = 0,
) -> ReferenceProfile:
    """Profile reference data in one pass over its chunks, in memory bounded by the sketches.

    Args:
        batches: RecordBatches, Tables or DataFrames (or one of them).
        predictions: columns holding model outputs (for example ``output.prediction`` and
            ``output.proba_1``): profiled like features, reported as prediction drift.
        labels: the column holding true labels: its class balance is profiled.
        kinds: kind overrides by column (``numerical``, ``categorical``, ``boolean``,
            ``datetime``, ``text``). Otherwise kinds come from the Arrow types, and a string
            column with more than ``4 * top_k`` distinct values averaging 20 characters or
            more is text (its drift is measured on lengths).
        sample_size: size of each column's uniform sample (exact statistics up to it).
        bins: histogram bins per numerical column.
        top_k: categories kept per categorical column (the rest is "other").
        seed: seeds the samples and sketches: the same data gives the same profile.

    Raises:
        InvalidInput: a bad kind or setting, or input that is not tabular.
    """
    builder = ProfileBuilder(
        predictions=predictions,
        labels=labels,
        kinds=kinds,
        sample_size=sample_size,
        bins=bins,
        top_k=top_k,
        seed=seed,
    )
    for batch in cols.iter_batches(batches):
        builder.update(batch)
    return builder.finish()
