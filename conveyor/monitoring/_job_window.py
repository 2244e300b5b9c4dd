"""A monitor window read from the prediction log, partition by partition, in bounded memory.

:class:`WindowPartial` is what one partition (the whole window locally, one Parquet file
on a Dask worker) accumulates: a :class:`~conveyor.monitoring.window.WindowAccumulator`
for drift and quality, plus bounded uniform samples of what performance needs (labelled
predictions, and probabilities for CBPE). Partials merge, so workers send summaries to the
client, never rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from conveyor.monitoring.profile import ReferenceProfile
from conveyor.monitoring.window import WindowAccumulator
from conveyor.serving.feedback import attach_labels
from conveyor.serving.predlog import PATH_COLUMNS, ParquetFolders

KEYS = ("request_id", "row")
PREDICTION = "output.prediction"
PROBA_PREFIX = "output.proba_"
#: Rows kept at most for performance (labelled rows; probabilities for CBPE), per window.
SAMPLE_ROWS = 1_000_000
BATCH_ROWS = 65_536
_TIMESTAMP = pa.timestamp("us", tz="UTC")


class RowSample:
    """A seeded uniform sample without replacement of at most ``capacity`` rows; mergeable.

    Each row gets a random key and the rows with the smallest keys are kept, so the union
    of two samples trimmed again is a uniform sample of the union of their inputs.
    """

    def __init__(self, capacity: int, rng: np.random.Generator) -> None:
        self.capacity = capacity
        self.rng = rng
        self.table: pa.Table | None = None
        self.keys = np.empty(0)
        self.seen = 0

    def add(self, table: pa.Table) -> None:
        if table.num_rows:
            self.seen += table.num_rows
            self._keep(table, self.rng.random(table.num_rows))

    def merge(self, other: RowSample) -> None:
        self.seen += other.seen
        if other.table is not None:
            self._keep(other.table, other.keys)

    def _keep(self, table: pa.Table, keys: np.ndarray) -> None:
        if self.table is not None:
            table = pa.concat_tables([self.table, table], promote_options="permissive")
            keys = np.concatenate([self.keys, keys])
        if len(keys) > self.capacity:
            chosen = np.sort(np.argpartition(keys, self.capacity)[: self.capacity])
            table, keys = table.take(pa.array(chosen)), keys[chosen]
        self.table, self.keys = table, keys


@dataclass(frozen=True)
class WindowSpec:
    """What every partition of one window needs; shipped once to each Dask worker.

    Attributes:
        profile: the reference, without its label columns (labels are not logged).
        prediction: the logged prediction column, if the window has one to score.
        proba: probability columns, in the order of the classes.
        labels: the model's labels (:func:`~conveyor.serving.feedback.read_labels`), or None.
        estimate: keep a sample of probabilities for a CBPE estimate.
    """

    profile: ReferenceProfile
    prediction: str | None
    proba: tuple[str, ...]
    labels: pa.Table | None
    estimate: bool
    seed: int = 0
    sample_rows: int = SAMPLE_ROWS

    def window_columns(self, names: Sequence[str]) -> list[str]:
        """Logged columns compared with the reference: every input, and the profiled outputs."""
        return [n for n in names if n.startswith("input.") or n in self.profile.columns]


class WindowPartial:
    """Drift, quality and performance inputs of one partition of a window; see the module docstring."""

    def __init__(self, spec: WindowSpec, partition: int = 0) -> None:
        self.spec = spec
        self.accumulator = WindowAccumulator(spec.profile, seed=spec.seed, partition=partition)
        rng = np.random.default_rng([spec.seed, partition, 2])
        self.labelled = RowSample(spec.sample_rows, rng)
        self.scores = RowSample(spec.sample_rows, rng)
        self.matched = 0

    def update(self, batch: pa.RecordBatch) -> None:
        self.accumulator.update(batch.select(self.spec.window_columns(batch.schema.names)))
        outputs = self._outputs(batch)
        if outputs is None:
            return
        labels = self.spec.labels
        if labels is not None and labels.num_rows and all(k in batch.schema.names for k in KEYS):
            joined = attach_labels(outputs, labels).table
            found = joined.filter(pc.is_valid(joined["label"]))
            self.labelled.add(found)
            self.matched += found.num_rows
        if self.spec.estimate and self.spec.proba:
            self.scores.add(outputs.select(list(self.spec.proba)))

    def _outputs(self, batch: pa.RecordBatch) -> pa.Table | None:
        """Keys, prediction and probabilities of the batch (absent probabilities as nulls)."""
        spec, names = self.spec, batch.schema.names
        if spec.prediction is None or spec.prediction not in names:
            return None
        columns = {k: batch.column(k) for k in KEYS if k in names}
        columns[spec.prediction] = batch.column(spec.prediction)
        for name in spec.proba:
            present = name in names
            values = batch.column(name) if present else pa.nulls(batch.num_rows, pa.float64())
            columns[name] = pc.cast(values, pa.float64())
        return pa.table(columns)

    def merge(self, other: WindowPartial) -> None:
        self.accumulator.merge(other.accumulator)
        self.labelled.merge(other.labelled)
        self.scores.merge(other.scores)
        self.matched += other.matched


# -- reading the log -------------------------------------------------------------------------


def window_files(
    root_url: str,
    storage_options: Mapping[str, Any] | None,
    model: str,
    version: str,
    start: datetime,
    end: datetime,
) -> list[str]:
    """The log's Parquet files of ``model``/``version`` in the hour folders overlapping the window."""
    folders = ParquetFolders(root_url, storage_options)
    base = f"model={model}/version={version}"
    files: list[str] = []
    for hour in folders.subfolders(base, "hour"):
        try:
            begins = datetime.strptime(hour, "%Y-%m-%dT%H").replace(tzinfo=UTC)
        except ValueError:
            continue  # not a folder the log wrote
        if begins < end and begins + timedelta(hours=1) > start:
            files += folders.files(f"{base}/hour={hour}")
    return files


def read_file(
    root_url: str,
    storage_options: Mapping[str, Any] | None,
    path: str,
    start: datetime,
    end: datetime,
    batch_rows: int = BATCH_ROWS,
) -> Iterator[pa.RecordBatch]:
    """The rows of one log file inside ``[start, end)``, in bounded batches."""
    dataset = ParquetFolders(root_url, storage_options).dataset([path], PATH_COLUMNS)
    names = [n for n in dataset.schema.names if n not in PATH_COLUMNS]
    condition = (ds.field("timestamp") >= pa.scalar(start, _TIMESTAMP)) & (
        ds.field("timestamp") < pa.scalar(end, _TIMESTAMP)
    )
    return iter(dataset.to_batches(columns=names, filter=condition, batch_size=batch_rows))


def partition_task(
    spec: WindowSpec,
    root_url: str,
    storage_options: Mapping[str, Any] | None,
    path: str,
    start: datetime,
    end: datetime,
    partition: int,
) -> WindowPartial:
    """One Dask task: the partial of one log file (what workers send back: summaries, not rows)."""
    partial = WindowPartial(spec, partition)
    for batch in read_file(root_url, storage_options, path, start, end):
        partial.update(batch)
    return partial
