"""Prediction logs: every served prediction (or a sample) written to Parquet, never slowing serving.

Why this shape: monitoring needs the inputs and outputs the model really saw, but a
payload logger that blocks, grows without bound or fails silently (KServe's, see
``shared/anchors/serving_monitoring.md`` §5) hurts the service it watches. So:

- :meth:`PredictionLogger.submit` never blocks: it appends to an in-memory queue bounded
  in *rows* (not requests) and returns. A background thread writes the queue every
  ``flush_interval_s`` (sooner when half full).
- Nothing is lost silently. A record that finds the queue full is dropped (reason
  ``queue_full``); a batch the storage refuses is dropped (``write_failed``) with a
  rate-limited warning, and the next flush tries the storage again, so logging resumes
  by itself once the storage is back. Every drop is counted (:attr:`dropped_by_reason`)
  and reported to ``on_dropped``, which the server turns into a Prometheus counter.
- Sampling is by request and deterministic (a hash of the request id), so a request is
  logged whole or not at all, and a shadow's copy of a request is sampled like the primary's.

Layout, Hive-style, under any artifact root (folder, ``file://``, ``az://``, ``s3://``)::

    <root>/model=<name>/version=<v>/hour=YYYY-MM-DDTHH/part-<UTC time>-<uuid>.parquet

One row per prediction row: ``request_id``, ``row`` (index in the request),
``timestamp`` (UTC, µs), ``alias``, ``variant``, ``latency_ms``, then ``input.<column>``
and ``output.<name>``. ``model``, ``version`` and ``hour`` live in the path only: a
``version`` column in the files would clash with the integer type pyarrow infers for
``version=1``. :func:`read_predictions` returns them as string columns, and
``pyarrow.dataset.dataset(root / "model=churn", partitioning="hive")`` reads the files too.
Each flush writes one file per (model, version, hour, column layout): records with
different columns never share a file, and readers unify the schemas (missing columns read
as nulls). Files are published atomically by the artifact store (temporary name and
rename locally, single commit on object stores), so a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

from conveyor.errors import InvalidInput
from conveyor.serving._parquet import ParquetFolders, arrow_column

if TYPE_CHECKING:
    pass

__all__ = [
    "DROP_REASONS",
    "PredictionLogger",
    "PredictionRecord",
    "read_predictions",
]

_log = logging.getLogger(__name__)

#: Why a record was not written: queue full, storage failed, malformed record, logger closed.
DROP_REASONS = ("queue_full", "write_failed", "invalid_record", "closed")
#: Columns read from the folder names.
PATH_COLUMNS = ("model", "version", "hour")
#: The order :func:`read_predictions` returns its first columns in; inputs and outputs follow.
LEADING_COLUMNS = ("request_id", "row", "timestamp", "model", "version", "alias", "variant", "latency_ms")
_TIMESTAMP = pa.timestamp("us", tz="UTC")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_WARN_EVERY_S = 60.0


@dataclass(frozen=True)
class PredictionRecord:
    """One request's predictions, as the server saw them."""

    request_id: str
    #: When the request arrived, UTC (a naive time is taken as UTC).
    timestamp: datetime
    model: str
    version: str
    alias: str | None
    #: Traffic variant: ``primary``, ``canary``, ``shadow``...
    variant: str
    #: One array per input column, all of the same length n (the rows).
    inputs: Mapping[str, np.ndarray]
    #: ``{"prediction": ...}`` plus e.g. ``proba_<class>`` columns, n rows each.
    outputs: Mapping[str, np.ndarray]
    latency_ms: float


#: A queued record and its row count.
Item = tuple[PredictionRecord, int]


class PredictionLogger:
    """Write :class:`PredictionRecord` objects to Parquet in a background thread.

    Args:
        root_url: Artifact root of the log: a folder, ``file://``, ``az://``, ``s3://``.
        sample_rate: Share of requests logged, 0 to 1, decided by request id.
        max_queue_rows: Rows held in memory at most (queued plus being written); a
            record that would exceed it is dropped (``queue_full``).
        flush_interval_s: How long records wait before they are written.
        on_written: ``(model, version, rows)`` after each file is written.
        on_dropped: ``(model, version, rows, reason)`` for each drop; reasons are
            :data:`DROP_REASONS`. Both callbacks run on the writer or the submitting
            thread, so they must be quick and thread-safe (Prometheus counters are).
        storage_options: fsspec options for the root, e.g. ``{"connection_string": ...}``.

    Example::

        with PredictionLogger("az://logs/predictions", on_dropped=count_drop) as log:
            log.submit(record)        # False: dropped (and counted)
    """

    def __init__(
        self,
        root_url: str,
        *,
        sample_rate: float = 1.0,
        max_queue_rows: int = 100_000,
        flush_interval_s: float = 1.0,
        on_written: Callable[[str, str, int], None] | None = None,
        on_dropped: Callable[[str, str, int, str], None] | None = None,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        if not 0.0 <= sample_rate <= 1.0:
            raise InvalidInput(f"sample_rate must be between 0 and 1, got {sample_rate}")
        if max_queue_rows < 1 or flush_interval_s <= 0:
            raise InvalidInput("max_queue_rows must be at least 1 and flush_interval_s above 0")
        self.root_url = root_url
        self.sample_rate = sample_rate
        self.max_queue_rows = max_queue_rows
        self.flush_interval_s = flush_interval_s
        self.on_written = on_written
        self.on_dropped = on_dropped
        self._folders = ParquetFolders(root_url, storage_options)
        self._cond = threading.Condition()
        self._queue: list[Item] = []
        self._queued_rows = 0
        self._inflight_rows = 0
        self._enqueued = 0  # records ever queued
        self._done = 0  # records the writer has finished with (written or dropped)
        self._flush_target = 0
        self._closing = False
        self._thread: threading.Thread | None = None
        self._written_rows = 0
        self._sampled_out_rows = 0
        self._dropped: Counter[str] = Counter()
        self._last_warning: dict[str, float] = {}

    # -- counters ------------------------------------------------------------------

    @property
    def written_rows(self) -> int:
        return self._written_rows

    @property
    def dropped_rows(self) -> int:
        with self._cond:
            return sum(self._dropped.values())

    @property
    def dropped_by_reason(self) -> dict[str, int]:
        """Dropped rows per reason in :data:`DROP_REASONS` (a copy)."""
        with self._cond:
            return {reason: self._dropped[reason] for reason in DROP_REASONS}

    @property
    def sampled_out_rows(self) -> int:
        """Rows of requests left out by sampling: not drops, the configured behaviour."""
        return self._sampled_out_rows

    @property
    def queued_rows(self) -> int:
        """Rows in memory now, queued or being written."""
        return self._queued_rows + self._inflight_rows

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread (once; later calls do nothing)."""
        with self._cond:
            if self._thread is None and not self._closing:
                self._thread = threading.Thread(target=self._run, name="conveyor-predlog", daemon=True)
                self._thread.start()

    def submit(self, record: PredictionRecord) -> bool:
        """Queue ``record`` without blocking; False if it was dropped (and counted).

        A request left out by sampling returns True: nothing went wrong.
        """
        rows = _row_count(record)
        if rows is None or not isinstance(record.timestamp, datetime):
            self._count_drop(record, _longest(record), "invalid_record")
            return False
        if self.sample_rate < 1.0 and not _sampled(record.request_id, self.sample_rate):
            with self._cond:
                self._sampled_out_rows += rows
            return True
        with self._cond:
            if self._closing:
                reason = "closed"
            elif self._queued_rows + self._inflight_rows + rows > self.max_queue_rows:
                reason = "queue_full"
            else:
                self._queue.append((record, rows))
                self._queued_rows += rows
                self._enqueued += 1
                if self._queued_rows * 2 >= self.max_queue_rows:
                    self._cond.notify_all()
                return True
        self._count_drop(record, rows, reason)
        return False

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every record submitted so far is written or dropped; False on timeout or unstarted."""
        with self._cond:
            target = self._enqueued
            self._flush_target = max(self._flush_target, target)
            self._cond.notify_all()
            if self._thread is None:
                return self._done >= target
            return self._cond.wait_for(lambda: self._done >= target, timeout=timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is queued and stop the thread; what is still queued after ``timeout_s`` is dropped."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            thread = self._thread
        if thread is None:  # never started: write here, once
            with self._cond:
                batch = self._take()
            self._write(batch)
        else:
            thread.join(timeout_s)
        with self._cond:
            leftover = self._take()
        for record, rows in leftover:
            self._count_drop(record, rows, "closed")

    def __enter__(self) -> PredictionLogger:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the writer thread ---------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(self._should_wake, timeout=self.flush_interval_s)
                batch = self._take()
                if self._closing and not batch:
                    return
            self._write(batch)

    def _should_wake(self) -> bool:
        return (
            self._closing or self._done < self._flush_target or self._queued_rows * 2 >= self.max_queue_rows
        )

    def _take(self) -> list[Item]:
        """Move the queue to the writer (the lock is held)."""
        batch, self._queue = self._queue, []
        self._inflight_rows += self._queued_rows
        self._queued_rows = 0
        return batch

    def _write(self, batch: list[Item]) -> None:
        """Write one flush: a file per (model, version, hour, columns), each failing on its own."""
        groups: dict[tuple[Any, ...], list[Item]] = defaultdict(list)
        try:
            for record, rows in batch:
                groups[record.model, record.version, _hour(record.timestamp), _layout(record)].append(
                    (record, rows)
                )
            for (model, version, hour, _), items in groups.items():
                self._write_group(model, version, hour, items)
        finally:
            with self._cond:
                self._inflight_rows -= sum(rows for _, rows in batch)
                self._done += len(batch)
                self._cond.notify_all()

    def _write_group(self, model: str, version: str, hour: str, items: list[Item]) -> None:
        tables, bad = _encode_items(items)
        if bad:
            self._warn("invalid_record", f"cannot encode {len(bad)} logged request(s) of {model} v{version}")
        for record, rows in bad:
            self._count_drop(record, rows, "invalid_record")
        folder = f"model={model}/version={version}/hour={hour}"
        for table, written in tables:
            try:
                self._folders.write(folder, table)
            except Exception as exc:  # any storage failure: count it, keep serving
                self._warn(
                    "write_failed", f"cannot write {table.num_rows} logged rows to {self.root_url}: {exc}"
                )
                for record, rows in written:
                    self._count_drop(record, rows, "write_failed")
                continue
            with self._cond:
                self._written_rows += table.num_rows
            _call(self.on_written, model, version, table.num_rows)

    # -- drops ---------------------------------------------------------------------

    def _count_drop(self, record: PredictionRecord, rows: int, reason: str) -> None:
        with self._cond:
            self._dropped[reason] += rows
        _call(self.on_dropped, record.model, record.version, rows, reason)
        if reason == "queue_full":
            self._warn(reason, f"prediction log queue full ({self.max_queue_rows} rows): dropping rows")

    def _warn(self, reason: str, message: str) -> None:
        """Log at most one warning per reason a minute: a failing store must not flood the log."""
        now = time.monotonic()
        with self._cond:
            last = self._last_warning.get(reason)
            if last is not None and now - last < _WARN_EVERY_S:
                return
            self._last_warning[reason] = now
            dropped = dict(self._dropped)
        _log.warning("%s (dropped so far: %s)", message, dropped)


def _call(callback: Callable[..., None] | None, *args: Any) -> None:
    """Run a user callback; its failure is logged, never raised into serving or the writer."""
    if callback is None:
        return
    try:
        callback(*args)
    except Exception:
        _log.exception("prediction log callback %r failed", callback)


# -- records to Arrow ------------------------------------------------------------------


def _row_count(record: PredictionRecord) -> int | None:
    """The record's row count, or None when its arrays are not all 1+-dimensional of one length."""
    lengths = {
        np.shape(a)[0] if np.ndim(a) else -1 for a in (*record.inputs.values(), *record.outputs.values())
    }
    if len(lengths) > 1 or -1 in lengths:
        return None
    return lengths.pop() if lengths else 0


def _longest(record: PredictionRecord) -> int:
    """Rows a malformed record claims (its longest array), so that its drop counts something."""
    arrays = (*record.inputs.values(), *record.outputs.values())
    return max((np.shape(a)[0] if np.ndim(a) else 1 for a in arrays), default=1)


def _sampled(request_id: str, rate: float) -> bool:
    """Whether the request is in the sample: stable across processes, unlike ``hash()``."""
    digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < rate * 2.0**64


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _hour(moment: datetime) -> str:
    return _utc(moment).strftime("%Y-%m-%dT%H")


def _layout(record: PredictionRecord) -> tuple[Any, ...]:
    """Column names, dtypes and per-row shapes: records sharing it can share a file."""
    return tuple(
        (side, name, np.asarray(values).dtype.str, np.shape(values)[1:])
        for side, columns in (("input", record.inputs), ("output", record.outputs))
        for name, values in columns.items()
    )


def _encode_items(items: list[Item]) -> tuple[list[tuple[pa.Table, list[Item]]], list[Item]]:
    """Tables to write for records of one layout, and the records that cannot be encoded.

    The fast path builds one table for all. If that fails (an object column holding
    text in one request and numbers in another), each record is encoded on its own, so
    only the bad ones are dropped and the others share a file per resulting schema.
    """
    try:
        return [(_encode([record for record, _ in items]), items)], []
    except Exception:
        if len(items) == 1:
            return [], items
    by_schema: dict[pa.Schema, list[tuple[pa.Table, Item]]] = defaultdict(list)
    bad: list[Item] = []
    for item in items:
        try:
            table = _encode([item[0]])
        except Exception:
            bad.append(item)
            continue
        by_schema[table.schema].append((table, item))
    tables = [
        (pa.concat_tables([t for t, _ in pairs]), [i for _, i in pairs]) for pairs in by_schema.values()
    ]
    return tables, bad


def _encode(records: Sequence[PredictionRecord]) -> pa.Table:
    """One table for records of one layout, built column by column (no per-record tables)."""
    counts = np.array([_row_count(r) for r in records], dtype=np.int64)
    total = int(counts.sum())
    starts = np.repeat(np.cumsum(counts) - counts, counts)

    def repeated(values: list[Any], kind: pa.DataType) -> pa.Array:
        array = np.array(values, dtype=object if pa.types.is_string(kind) else None)
        return pa.array(np.repeat(array, counts), kind)

    micros = [(_utc(r.timestamp) - _EPOCH) // timedelta(microseconds=1) for r in records]
    columns: dict[str, pa.Array] = {
        "request_id": repeated([r.request_id for r in records], pa.string()),
        "row": pa.array((np.arange(total) - starts).astype(np.int32)),
        "timestamp": repeated(micros, _TIMESTAMP),
        "alias": repeated([r.alias for r in records], pa.string()),
        "variant": repeated([r.variant for r in records], pa.string()),
        "latency_ms": repeated([float(r.latency_ms) for r in records], pa.float64()),
    }
    for name in records[0].inputs:
        columns[f"input.{name}"] = arrow_column(np.concatenate([np.asarray(r.inputs[name]) for r in records]))
    for name in records[0].outputs:
        columns[f"output.{name}"] = arrow_column(
            np.concatenate([np.asarray(r.outputs[name]) for r in records])
        )
    return pa.table(columns)


# -- reading -------------------------------------------------------------------------------


def read_predictions(
    root_url: str,
    model: str,
    version: str | int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    columns: Sequence[str] | None = None,
    *,
    storage_options: Mapping[str, Any] | None = None,
    batch_rows: int = 65_536,
) -> Iterator[pa.RecordBatch]:
    """Stream a model's logged predictions in batches of at most ``batch_rows`` rows.

    Only the hour folders that overlap ``[start, end)`` are listed, and ``timestamp`` is
    filtered with Parquet statistics, so a window costs what it holds, not the whole log.
    Memory stays bounded by a few batches. Files written with different columns are read
    with the union of their schemas: a column a file lacks reads as nulls, and so does a
    requested column that no file has. ``model``, ``version`` and ``hour`` are strings.
    Batches come file by file in folder order (version, hour, time written), not sorted
    by ``timestamp``.

    Args:
        columns: Names to return, in order (``input.age``, ``output.prediction``,
            ``timestamp``...); default all but ``hour``.
        start, end: UTC times with a zone; ``start`` included, ``end`` excluded.

    Raises:
        InvalidInput: a time without a zone, or ``batch_rows`` below 1.
    """
    low, high = _window(start, end)
    if batch_rows < 1:
        raise InvalidInput(f"batch_rows must be at least 1, got {batch_rows}")
    folders = ParquetFolders(root_url, storage_options)
    files = _window_files(folders, model, version, low, high)
    if not files:
        return iter(())
    dataset = folders.dataset(files, PATH_COLUMNS, extra=columns or ())
    selected = list(columns) if columns else _default_columns(dataset.schema)
    condition = _time_filter(low, high)
    return iter(
        dataset.to_batches(
            columns=selected, filter=condition, batch_size=batch_rows, batch_readahead=2, fragment_readahead=2
        )
    )


def _window(start: datetime | None, end: datetime | None) -> tuple[datetime | None, datetime | None]:
    for name, moment in (("start", start), ("end", end)):
        if moment is not None and moment.tzinfo is None:
            raise InvalidInput(f"{name}={moment.isoformat()} has no time zone: use an aware UTC time")
    return (None if start is None else _utc(start)), (None if end is None else _utc(end))


def _window_files(
    folders: ParquetFolders,
    model: str,
    version: str | int | None,
    low: datetime | None,
    high: datetime | None,
) -> list[str]:
    base = f"model={model}"
    versions = [str(version)] if version is not None else folders.subfolders(base, "version")
    files: list[str] = []
    for v in versions:
        for hour in folders.subfolders(f"{base}/version={v}", "hour"):
            if _hour_overlaps(hour, low, high):
                files += folders.files(f"{base}/version={v}/hour={hour}")
    return files


def _hour_overlaps(hour: str, low: datetime | None, high: datetime | None) -> bool:
    try:
        begins = datetime.strptime(hour, "%Y-%m-%dT%H").replace(tzinfo=UTC)
    except ValueError:
        return False  # not a folder this log wrote
    return (low is None or begins + timedelta(hours=1) > low) and (high is None or begins < high)


def _time_filter(low: datetime | None, high: datetime | None) -> ds.Expression | None:
    condition = None
    if low is not None:
        condition = ds.field("timestamp") >= pa.scalar(low, _TIMESTAMP)
    if high is not None:
        below = ds.field("timestamp") < pa.scalar(high, _TIMESTAMP)
        condition = below if condition is None else condition & below
    return condition


def _default_columns(schema: pa.Schema) -> list[str]:
    present = [name for name in LEADING_COLUMNS if schema.get_field_index(name) >= 0]
    return present + [name for name in schema.names if name not in LEADING_COLUMNS and name != "hour"]
