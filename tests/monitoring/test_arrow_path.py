"""Arrow input end to end: no pandas or scipy.stats loaded, numpy through buffers, coded strings."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from conveyor.monitoring import ProfileBuilder, WindowAccumulator, _arrow, build_profile
from conveyor.monitoring import _columns as cols
from conveyor.monitoring.sketch import Reservoir


def test_arrow_windows_load_neither_pandas_nor_scipy_stats() -> None:
    # Batches built from buffers: pa.array() and pa.record_batch() would load pandas themselves.
    script = """
import sys
import numpy as np
import pyarrow as pa
from conveyor.monitoring import WindowAccumulator, _arrow, build_profile
rng = np.random.default_rng(0)
def batch(shift):
    x = rng.normal(shift, 1, 5000)
    codes = rng.integers(0, 3, 5000).astype(np.int32)
    arrays = [
        pa.Array.from_buffers(pa.float64(), x.size, [None, pa.py_buffer(x)]),
        _arrow.int64s(rng.integers(0, 3, 5000)),
        pa.DictionaryArray.from_arrays(_arrow.int64s(codes).cast(pa.int32()), _arrow.strings(list("abc"))),
        _arrow.strings(rng.choice(["u", "v"], 5000).tolist()),
    ]
    return pa.RecordBatch.from_arrays(arrays, names=["x", "n", "c", "s"])
accumulator = WindowAccumulator(build_profile(batch(0.0)))
accumulator.update(batch(0.5))
report = accumulator.finish()
assert report.drift.drifted_columns() == ["x"], report.drift.drifted_columns()
print(sorted(m for m in sys.modules if m == "pandas" or m in ("scipy.stats", "scipy.special")))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_buffers_read_like_to_numpy() -> None:
    array = pa.array([1.5, None, 3.0, float("nan"), None, 7.0, 8.0, None, 9.0, 10.0])
    for piece in (array, array.slice(1), array.slice(3, 6), array.slice(9)):
        np.testing.assert_array_equal(_arrow.floats(piece), piece.to_numpy(zero_copy_only=False))
    ints = pa.array([3, None, 5, 2**60, None], pa.int64())
    assert _arrow.integers(ints.slice(1), -1).tolist() == [-1, 5, 2**60, -1]
    assert _arrow.floats(ints).tolist()[3] == float(2**60)  # beyond 2**53: rounded, not refused
    flags = pa.array([True, None, False, True, True, False, None, True, False, True])
    assert _arrow.booleans(flags.slice(2)).tolist() == [False, True, True, False, False, True, False, True]
    assert _arrow.strings(["a", "é", ""]).to_pylist() == ["a", "é", ""]
    assert pa.array([1, 2, 3]).filter(_arrow.mask(np.array([True, False, True]))).to_pylist() == [1, 3]


def test_string_hashes_are_stable_and_follow_the_value() -> None:
    values = pa.array(["alpha", "beta", "", None, "alpha", "ünïcode", "alphb", "ab" * 40])
    hashes = cols.hash_utf8(values)
    assert hashes[0] == hashes[4] and len(set(hashes[[0, 1, 2, 5, 6, 7]].tolist())) == 6
    assert hashes[3] == 0 and hashes[2] != 0  # a null hashes as a null row does, "" does not
    np.testing.assert_array_equal(cols.hash_utf8(values.slice(4)), hashes[4:])
    assert cols.hash_utf8(pa.array(["ba", "ab"])).tolist() != cols.hash_utf8(pa.array(["ab", "ba"])).tolist()
    # Same values in another process (Python's own hash is salted per process).
    script = "import pyarrow as pa; from conveyor.monitoring import _columns as c; "
    script += "print(c.hash_utf8(pa.array(['alpha', 'ünïcode'])).tolist())"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == str(hashes[[0, 5]].tolist())


def test_long_strings_hash_alike_in_any_slice_of_the_work(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    values = pa.array(["".join(rng.choice(list("abcdef"), rng.integers(0, 50))) for _ in range(300)])
    whole = cols.hash_utf8(values)
    monkeypatch.setattr(cols, "_HASH_BYTES", 64)
    np.testing.assert_array_equal(cols.hash_utf8(values), whole)


def test_dictionary_encoded_strings_count_like_plain_ones() -> None:
    rng = np.random.default_rng(1)
    plain = pa.array(rng.choice(["a", "b", "c", "d"], 4000).tolist())
    plain = pa.array([None if i % 97 == 0 else v for i, v in enumerate(plain.to_pylist())])
    encoded = plain.dictionary_encode()
    by_plain = build_profile(pa.table({"c": plain})).columns["c"]
    by_code = build_profile(pa.table({"c": encoded})).columns["c"]
    assert (by_plain.rows, by_plain.missing, by_plain.n_unique) == (by_code.rows, by_code.missing, 4)
    assert by_plain.bins.values == by_code.bins.values
    np.testing.assert_array_equal(by_plain.bins.counts, by_code.bins.counts)
    window = pa.table({"c": pa.array((["a", "zz"] * 300) + [None] * 10).dictionary_encode()})
    accumulator = WindowAccumulator(build_profile(pa.table({"c": plain})))
    accumulator.update(window)
    quality = accumulator.finish().quality.column("c")
    assert (quality.missing, quality.unseen, quality.unseen_top) == (10, 300, [("zz", 300)])
    counts = accumulator.summaries()["c"].bin_counts
    assert counts[list(by_plain.bins.values).index("a")] == 300 and counts[-1] == 300


def _text(rng: np.random.Generator, rows: int, distinct: int) -> list[str]:
    return [f"a customer message of some length, number {i}" for i in rng.integers(0, distinct, rows)]


def test_text_found_when_the_categories_overflow_late() -> None:
    rng = np.random.default_rng(2)
    # First chunks: few distinct values (a categorical column so far); then many.
    chunks = [_text(rng, 1000, 20) for _ in range(3)] + [_text(rng, 1000, 10_000) for _ in range(3)]
    builder = ProfileBuilder(top_k=10)
    for chunk in chunks:
        builder.update(pa.table({"note": pa.array(chunk)}))
    note = builder.finish().columns["note"]
    lengths = np.array([len(v) for chunk in chunks for v in chunk], dtype=float)
    assert note.kind == "text" and note.count == lengths.size
    assert note.mean == pytest.approx(lengths.mean(), rel=1e-12)
    assert (note.min, note.max) == (lengths.min(), lengths.max())
    # Two partitions, one categorical-looking and one not, merge to the same.
    left, right = ProfileBuilder(top_k=10), ProfileBuilder(top_k=10, partition=1)
    for chunk in chunks[:3]:
        left.update(pa.table({"note": pa.array(chunk)}))
    for chunk in chunks[3:]:
        right.update(pa.table({"note": pa.array(chunk)}))
    left.merge(right)
    merged = left.finish().columns["note"]
    assert merged.kind == "text" and merged.count == note.count
    assert merged.mean == pytest.approx(note.mean, rel=1e-12)


def test_declared_text_and_categories_from_pandas_agree() -> None:
    frame = pd.DataFrame({"note": ["short", "a bit longer", None, "short"]})
    text = build_profile(frame, kinds={"note": "text"}).columns["note"]
    assert (text.kind, text.count, text.mean) == ("text", 3, pytest.approx((5 + 12 + 5) / 3))
    categorical = build_profile(frame).columns["note"]
    assert categorical.kind == "categorical" and categorical.bins.values == ("short", "a bit longer")


def test_full_reservoir_stays_uniform_with_sparse_entries() -> None:
    reservoir = Reservoir(2000, np.random.default_rng(3))
    for start in range(0, 400_000, 10_000):
        reservoir.update(np.arange(start, start + 10_000, dtype=float))
    values = reservoir.values
    assert reservoir.seen == 400_000 and values.size == 2000 and np.unique(values).size == 2000
    # Uniform over the stream: the mean and every quarter's share within 4 standard errors.
    assert abs(values.mean() - 199_999.5) < 4 * 115_470 / np.sqrt(2000)
    quarters = np.bincount((values // 100_000).astype(int), minlength=4) / 2000
    assert np.all(np.abs(quarters - 0.25) < 4 * np.sqrt(0.25 * 0.75 / 2000))
