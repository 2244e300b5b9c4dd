"""The prediction log: asynchronous Parquet writes, counted drops, atomic files, and reading back."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from conveyor.errors import InvalidInput
from conveyor.serving.predlog import PredictionLogger, PredictionRecord, read_predictions

T0 = datetime(2026, 3, 1, 10, 15, tzinfo=UTC)


def record(
    request_id: str,
    rows: int = 2,
    *,
    at: datetime = T0,
    model: str = "churn",
    version: str = "1",
    extra: dict[str, np.ndarray] | None = None,
) -> PredictionRecord:
    inputs = {"age": np.arange(rows, dtype=np.float64) + 30, "city": np.array(["a", "b", "c"] * rows)[:rows]}
    return PredictionRecord(
        request_id=request_id,
        timestamp=at,
        model=model,
        version=version,
        alias="champion",
        variant="primary",
        inputs={**inputs, **(extra or {})},
        outputs={"prediction": np.arange(rows) % 2, "proba_1": np.linspace(0, 1, rows)},
        latency_ms=1.25,
    )


def read_all(root: Path, model: str = "churn", **kwargs: object) -> pa.Table:
    batches = list(read_predictions(str(root), model, **kwargs))  # type: ignore[arg-type]
    return pa.Table.from_batches(batches) if batches else pa.table({})


def parquet_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.parquet") if not p.name.startswith("."))


def test_round_trip_one_row_per_prediction_row(tmp_path: Path) -> None:
    written: list[tuple[str, str, int]] = []
    log = PredictionLogger(str(tmp_path), flush_interval_s=0.05, on_written=lambda *a: written.append(a))
    assert log.submit(record("r1", 3))  # queued before start(): one flush takes both
    assert log.submit(record("r2", 2))
    with log:
        assert log.flush()
    assert log.written_rows == 5 and log.dropped_rows == 0
    assert written == [("churn", "1", 5)]  # both requests share one file
    [file] = parquet_files(tmp_path)
    assert file.relative_to(tmp_path).parts[:3] == ("model=churn", "version=1", "hour=2026-03-01T10")

    table = read_all(tmp_path)
    assert table.column_names[:8] == [
        "request_id", "row", "timestamp", "model", "version", "alias", "variant", "latency_ms",
    ]  # fmt: skip
    assert table.schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("row").type == pa.int32()
    rows = table.to_pylist()
    assert [(r["request_id"], r["row"]) for r in rows] == [
        ("r1", 0),
        ("r1", 1),
        ("r1", 2),
        ("r2", 0),
        ("r2", 1),
    ]
    assert rows[2] == {
        "request_id": "r1", "row": 2, "timestamp": T0, "model": "churn", "version": "1",
        "alias": "champion", "variant": "primary", "latency_ms": 1.25,
        "input.age": 32.0, "input.city": "c", "output.prediction": 0, "output.proba_1": 1.0,
    }  # fmt: skip
    # A generic Hive reader sees the same rows, with model/version/hour from the folders.
    hive = ds.dataset(tmp_path / "model=churn", partitioning="hive").to_table()
    assert hive.num_rows == 5 and set(hive.column("hour").to_pylist()) == {"2026-03-01T10"}


def test_partitions_window_schema_evolution_and_columns(tmp_path: Path) -> None:
    with PredictionLogger(str(tmp_path), flush_interval_s=0.05) as log:
        log.submit(record("old", at=T0 - timedelta(hours=2)))
        log.submit(record("v1", at=T0))
        log.submit(
            record("v2", at=T0 + timedelta(minutes=1), version="2", extra={"tenure": np.array([1, 2])})
        )
        log.submit(record("other-model", model="fraud"))
        log.flush()
    assert len(parquet_files(tmp_path)) == 4

    everything = read_all(tmp_path)
    assert sorted(set(everything.column("request_id").to_pylist())) == ["old", "v1", "v2"]
    # A column only version 2 logged reads as nulls elsewhere.
    tenure = dict(
        zip(
            everything.column("request_id").to_pylist(),
            everything.column("input.tenure").to_pylist(),
            strict=True,
        )
    )
    assert tenure["v1"] is None and tenure["v2"] in (1, 2)
    assert set(everything.column("version").to_pylist()) == {"1", "2"}

    window = read_all(tmp_path, start=T0 - timedelta(minutes=5), end=T0 + timedelta(minutes=1))
    assert set(window.column("request_id").to_pylist()) == {"v1"}  # end is excluded
    only_v2 = read_all(tmp_path, version=2, columns=["request_id", "input.tenure", "input.never"])
    assert only_v2.column_names == ["request_id", "input.tenure", "input.never"]
    assert only_v2.column("input.tenure").to_pylist() == [1, 2]
    assert only_v2.column("input.never").null_count == 2
    assert read_all(tmp_path, model="absent").num_rows == 0
    with pytest.raises(InvalidInput, match="time zone"):
        read_predictions(str(tmp_path), "churn", start=datetime(2026, 3, 1))


def test_reader_streams_bounded_batches(tmp_path: Path) -> None:
    with PredictionLogger(str(tmp_path), flush_interval_s=0.05) as log:
        for i in range(5):
            log.submit(record(f"r{i}", 1_000))
    sizes = [batch.num_rows for batch in read_predictions(str(tmp_path), "churn", batch_rows=300)]
    assert sum(sizes) == 5_000 and max(sizes) <= 300


def test_sampling_is_by_request_and_deterministic(tmp_path: Path) -> None:
    def logged_ids(root: Path) -> set[str]:
        with PredictionLogger(str(root), sample_rate=0.3, flush_interval_s=0.05) as log:
            for i in range(400):
                assert log.submit(record(f"req-{i}", 3))  # sampled out is not a drop
        assert log.dropped_rows == 0
        assert log.written_rows + log.sampled_out_rows == 1_200
        return set(read_all(root).column("request_id").to_pylist())

    first, second = logged_ids(tmp_path / "a"), logged_ids(tmp_path / "b")
    assert first == second
    assert 0.2 < len(first) / 400 < 0.4
    table = read_all(tmp_path / "a")
    assert table.num_rows == 3 * len(first)  # whole requests, never some of their rows


def test_full_queue_drops_and_counts_without_blocking(tmp_path: Path) -> None:
    gate = threading.Event()
    drops: list[tuple[str, str, int, str]] = []
    log = PredictionLogger(
        str(tmp_path),
        max_queue_rows=10,
        flush_interval_s=0.01,
        on_written=lambda *a: gate.wait(10),  # the writer is stuck until the test lets it go
        on_dropped=lambda *a: drops.append(a),
    )
    log.start()
    assert log.submit(record("first", 4))
    deadline = time.monotonic() + 5
    while log.written_rows == 0 and time.monotonic() < deadline:  # the first file is written...
        time.sleep(0.01)
    outcomes = []
    for i in range(6):  # ...and the writer holds its 4 rows while 4 + 4 more arrive
        started = time.perf_counter()
        outcomes.append(log.submit(record(f"r{i}", 2)))
        assert time.perf_counter() - started < 0.05
    assert outcomes == [True, True, True, False, False, False]
    assert log.dropped_by_reason["queue_full"] == 6
    assert drops == [("churn", "1", 2, "queue_full")] * 3
    gate.set()
    assert log.flush()
    log.close()
    assert log.written_rows == 10 and log.dropped_rows == 6


def test_unwritable_storage_drops_counts_warns_once_and_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the log's folder should be")  # fails even for root
    drops: list[tuple[str, str, int, str]] = []
    log = PredictionLogger(str(blocker / "log"), flush_interval_s=0.01, on_dropped=lambda *a: drops.append(a))
    with caplog.at_level(logging.WARNING, logger="conveyor.serving.predlog"), log:
        assert log.submit(record("a", 3))  # queued: the failure comes later, in the writer
        assert log.flush()
        assert log.submit(record("b", 2))
        assert log.flush()
        assert log.dropped_by_reason["write_failed"] == 5
        assert drops == [("churn", "1", 3, "write_failed"), ("churn", "1", 2, "write_failed")]
        assert len([r for r in caplog.records if "cannot write" in r.getMessage()]) == 1  # rate limited

        blocker.unlink()  # storage is back: the next flush writes
        assert log.submit(record("c", 4))
        assert log.flush()
    assert log.written_rows == 4
    assert read_all(blocker / "log").column("request_id").to_pylist() == ["c"] * 4


def test_malformed_records_closed_logger_and_close_flushes(tmp_path: Path) -> None:
    log = PredictionLogger(str(tmp_path), flush_interval_s=60)  # only close() will write
    ragged = PredictionRecord(
        "x", T0, "churn", "1", None, "primary", {"a": np.ones(3)}, {"p": np.ones(2)}, 1.0
    )
    assert not log.submit(ragged)
    assert log.dropped_by_reason["invalid_record"] == 3  # its longest array
    log.start()
    assert log.submit(record("queued", 2))
    log.close()
    assert log.written_rows == 2  # close() wrote what waited
    assert not log.submit(record("late", 2))
    assert log.dropped_by_reason["closed"] == 2


def test_mixed_object_columns_are_kept_in_separate_files(tmp_path: Path) -> None:
    text = record("text", extra={"code": np.array(["x", "y"], dtype=object)})
    numbers = record("numbers", extra={"code": np.array([1, 2], dtype=object)})
    with PredictionLogger(str(tmp_path), flush_interval_s=0.05) as log:
        log.submit(text)
        log.submit(numbers)
    assert log.written_rows == 4 and log.dropped_rows == 0
    assert len(parquet_files(tmp_path)) == 2
    codes = read_all(tmp_path, columns=["request_id", "input.code"]).sort_by("request_id").to_pylist()
    assert [c["input.code"] for c in codes] == ["1", "2", "x", "y"]  # unified as text


def test_bad_arguments() -> None:
    with pytest.raises(InvalidInput, match="sample_rate"):
        PredictionLogger("/tmp/x", sample_rate=1.5)
    with pytest.raises(InvalidInput, match="max_queue_rows"):
        PredictionLogger("/tmp/x", max_queue_rows=0)


WRITER = textwrap.dedent(
    """
    import sys, time
    from datetime import UTC, datetime
    import numpy as np
    from conveyor.serving.predlog import PredictionLogger, PredictionRecord

    rows = 20_000
    inputs = {"x": np.random.default_rng(0).random(rows), "s": np.array(["abcdef"] * rows, dtype=object)}
    log = PredictionLogger(sys.argv[1], flush_interval_s=0.005, max_queue_rows=10**7)
    log.start()
    for i in range(10**9):
        log.submit(PredictionRecord(f"r{i}", datetime.now(UTC), "m", "1", None, "primary", inputs,
                                    {"prediction": np.zeros(rows)}, 1.0))
        time.sleep(0.002)
    """
)


def test_a_killed_writer_leaves_only_whole_files(tmp_path: Path) -> None:
    root = tmp_path / "log"
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(root)])
    try:
        deadline = time.monotonic() + 60
        while len(parquet_files(root)) < 3:
            assert child.poll() is None, "the writer exited early"
            assert time.monotonic() < deadline, "the writer wrote nothing"
            time.sleep(0.02)
        time.sleep(0.137)  # somewhere in the middle of the next writes
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    files = parquet_files(root)
    for file in files:
        assert pq.read_metadata(file).num_rows % 20_000 == 0
    table = read_all(root, model="m", columns=["request_id", "row"])
    assert table.num_rows > 0 and table.num_rows % 20_000 == 0
    assert ds.dataset(root / "model=m", partitioning="hive").count_rows() == table.num_rows
