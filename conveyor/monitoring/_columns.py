"""Turning chunks of any tabular input into typed numpy/Arrow columns, and column kinds.

Profiles and windows both read their input through here, so a value is missing, a type
error or a category in exactly the same way on both sides of a comparison:

- numerical: float64; null, NaN and +/-inf are missing; strings are parsed, and a
  non-empty string that does not parse is a *type error* (counted, then treated as missing);
- datetime: seconds since the epoch as float64 (naive timestamps are taken as UTC);
- boolean: the strings ``"false"``/``"true"``; ``0``/``1`` and the usual spellings parse;
- categorical: strings (numbers become their text), coded against their distinct values
  (:class:`Coded`: Arrow's dictionary encoding, numpy codes and counts), so a chunk's
  rows never become Python objects;
- text: strings, whose drift is measured on their length in characters.

pandas is imported only where a pandas object or a string column to parse arrives:
Arrow input never loads it (about 50 MB of resident memory).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from conveyor.errors import InvalidInput
from conveyor.monitoring import _arrow
from conveyor.monitoring.sketch import Moments, QuantileSketch, Reservoir

if TYPE_CHECKING:
    import pandas as pd

KINDS = ("numerical", "categorical", "boolean", "datetime", "text")
#: Kinds whose values are numbers (text: its lengths), summarized by :class:`NumericState`.
NUMERIC_KINDS = ("numerical", "datetime", "text")

#: Capacity per level of every column's quantile sketch: about 0.1 % normalized rank error
#: (so about 4 % relative error on the reference's count in a 5 % bin), ~30 KB per column.
SKETCH_K = 2048

Chunk: TypeAlias = "pa.RecordBatch | pa.Table | pd.DataFrame"

_TRUE = {"true", "t", "1", "yes", "y", "1.0"}
_FALSE = {"false", "f", "0", "no", "n", "0.0"}


def _is_frame(value: Any) -> bool:
    """Whether ``value`` is a pandas DataFrame, without importing pandas to find out."""
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(value, pandas.DataFrame)


def iter_batches(data: Chunk | Iterable[Chunk]) -> Iterator[pa.RecordBatch]:
    """Record batches from one chunk or an iterable of chunks.

    Why the special case: iterating a DataFrame yields its column names, so a frame
    passed where an iterable of frames was expected would silently profile nothing.
    """
    chunks = [data] if isinstance(data, pa.RecordBatch | pa.Table) or _is_frame(data) else data
    for chunk in chunks:  # type: ignore[union-attr]
        if isinstance(chunk, pa.RecordBatch):
            yield chunk
        elif isinstance(chunk, pa.Table):
            yield from chunk.to_batches()
        elif _is_frame(chunk):
            yield frame_to_batch(chunk)
        else:
            raise InvalidInput(
                f"expected pyarrow RecordBatches or Tables or pandas DataFrames, got {type(chunk).__name__}"
            )


def frame_to_batch(frame: pd.DataFrame) -> pa.RecordBatch:
    """A DataFrame as a RecordBatch; a column of mixed Python types becomes strings."""
    arrays = []
    for name in frame.columns:
        column = frame[name]
        try:
            arrays.append(pa.array(column, from_pandas=True))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arrays.append(pa.array([None if _is_missing(v) else str(v) for v in column], pa.string()))
    return pa.RecordBatch.from_arrays(arrays, names=[str(n) for n in frame.columns])


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def infer_kind(array: pa.Array) -> str:
    """The kind of a column from its Arrow type (strings start categorical)."""
    kind = array.type
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_boolean(kind):
        return "boolean"
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return "numerical"
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        return "datetime"
    return "categorical"


def as_numbers(array: pa.Array, kind: str) -> tuple[np.ndarray, int]:
    """Float64 values of a numerical or datetime column (NaN where missing), and type errors."""
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if kind == "datetime":
        return _as_seconds(array)
    kind_of = infer_kind(array)
    if kind_of in ("numerical", "boolean"):
        return _arrow.floats(array), 0
    if kind_of == "datetime":
        return np.full(len(array), np.nan), len(array) - array.null_count
    import pandas as pd

    text = pd.Series(array.to_numpy(zero_copy_only=False), dtype=object)
    parsed = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)
    return parsed, _count_errors(text, parsed)


def _as_seconds(array: pa.Array) -> tuple[np.ndarray, int]:
    if pa.types.is_date(array.type):
        array = pc.cast(array, pa.timestamp("s"))
    if pa.types.is_timestamp(array.type):
        nanos = pc.cast(pc.cast(array, pa.timestamp("ns", tz=array.type.tz)), pa.int64())
        seconds = _arrow.values(nanos).astype(float) / 1e9
        present = _arrow.valid(nanos)
        if present is not None:
            seconds[~present] = np.nan
        return seconds, 0
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        import pandas as pd

        text = pd.Series(array.to_numpy(zero_copy_only=False), dtype=object)
        stamps = pd.to_datetime(text, errors="coerce", utc=True, format="mixed")
        seconds = stamps.to_numpy(dtype="datetime64[ns]").astype("int64").astype(float) / 1e9
        seconds[stamps.isna().to_numpy()] = np.nan
        return seconds, _count_errors(text, seconds)
    return np.full(len(array), np.nan), len(array) - array.null_count


def _count_errors(text: pd.Series, parsed: np.ndarray) -> int:
    """Non-empty inputs that failed to parse (an empty string counts as missing)."""
    given = text.notna().to_numpy() & (text.astype(str).str.strip() != "").to_numpy()
    return int(np.count_nonzero(given & np.isnan(parsed)))


def as_strings(array: pa.Array, kind: str) -> tuple[pa.Array, int]:
    """String values of a categorical, boolean or text column, and type errors.

    A dictionary-encoded categorical column stays dictionary-encoded (its dictionary cast
    to strings): :func:`code` reads its codes without decoding every row.
    """
    if pa.types.is_dictionary(array.type):
        value_type = array.type.value_type
        if kind != "boolean" and (pa.types.is_string(value_type) or pa.types.is_large_string(value_type)):
            return array, 0
        array = array.dictionary_decode()
    if kind != "boolean":
        if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
            array = pc.cast(array, pa.string())
        return array, 0
    if pa.types.is_boolean(array.type):
        return pc.cast(array, pa.string()), 0
    text = pc.utf8_lower(pc.utf8_trim_whitespace(pc.cast(array, pa.string())))
    true = pc.is_in(text, pa.array(sorted(_TRUE)))
    false = pc.is_in(text, pa.array(sorted(_FALSE)))
    result = pc.if_else(true, "true", pc.if_else(false, "false", pa.scalar(None, pa.string())))
    blank = pc.equal(text, "")
    errors = pc.sum(pc.and_not(pc.invert(pc.or_(true, false)), blank)).as_py() or 0
    return result, int(errors)


@dataclass(frozen=True)
class Coded:
    """A chunk of strings as codes into its distinct values (Arrow's dictionary encoding).

    ``dictionary`` holds the distinct strings (an entry may be unused, or repeated when
    the input came dictionary-encoded), ``codes`` each row's entry as numpy integers
    (``len(dictionary)`` for a null), ``counts`` the rows per entry. Everything per row is
    numpy; only the distinct values are strings.
    """

    dictionary: pa.Array
    codes: np.ndarray
    counts: np.ndarray
    nulls: int

    @property
    def rows(self) -> int:
        return int(self.codes.size)

    def used(self) -> tuple[pa.Array, np.ndarray]:
        """The entries that occur, and their counts."""
        present = self.counts > 0
        if present.all():
            return self.dictionary, self.counts
        return self.dictionary.filter(_arrow.mask(present)), self.counts[present]

    def hashes(self) -> np.ndarray:
        """uint64 hash per row (nulls hash alike): each distinct string is hashed once."""
        return np.append(hash_utf8(self.dictionary), np.uint64(0))[self.codes]

    def lengths(self) -> np.ndarray:
        """Character lengths of the non-null rows as float64, in no particular order."""
        return np.repeat(_lengths(self.dictionary), self.counts)


def code(strings: pa.Array) -> Coded:
    """Code a string array (or a dictionary array of strings) against its distinct values."""
    encoded = strings if pa.types.is_dictionary(strings.type) else pc.dictionary_encode(strings)
    dictionary = encoded.dictionary
    if pa.types.is_large_string(dictionary.type):
        dictionary = dictionary.cast(pa.string())
    codes = _arrow.integers(encoded.indices, len(dictionary))
    present = _arrow.valid(dictionary)
    if present is not None:  # a null inside a dictionary is a null row
        codes = np.where(np.append(present, False)[codes], codes, len(dictionary))
    counts = np.bincount(codes, minlength=len(dictionary) + 1).astype(np.int64)
    return Coded(dictionary, codes, counts[:-1], int(counts[-1]))


def value_counts(strings: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Distinct non-null strings and their counts."""
    return code(strings).used()


def _lengths(strings: pa.Array) -> np.ndarray:
    return _arrow.floats(pc.utf8_length(strings))


def lengths(strings: pa.Array) -> np.ndarray:
    """Character lengths of strings as float64, NaN where missing."""
    if pa.types.is_dictionary(strings.type):
        strings = strings.dictionary_decode()
    return _lengths(strings)


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def mix(hashes: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: spreads any uint64 input over all 64 bits."""
    h = hashes ^ (hashes >> np.uint64(30))
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(27)
    h *= np.uint64(0x94D049BB133111EB)
    h ^= h >> np.uint64(31)
    return h


def hash_numbers(values: np.ndarray) -> np.ndarray:
    """The bits of each float as uint64 (all missing values alike, -0.0 as 0.0).

    Not mixed here: :func:`combine_hashes` mixes every column's contribution anyway.
    """
    return np.where(np.isfinite(values), values + 0.0, np.inf).view(np.uint64)


#: Bytes hashed per numpy pass by :func:`hash_utf8` (bounds its temporary arrays).
_HASH_BYTES = 1 << 20


def hash_utf8(strings: pa.Array) -> np.ndarray:
    """A deterministic uint64 hash of each string of a (non-dictionary) string array.

    Vectorized over Arrow's buffers: each byte, with its position in its string, is mixed
    into 64 bits and the values are summed per string, then mixed with the length. Same
    string, same hash, in any process (Python's ``hash`` is salted per process, and
    windows of different Dask workers merge their duplicate counters). A null hashes as 0,
    as a null row does in :meth:`Coded.hashes`; no string does (not even "").
    """
    if pa.types.is_large_string(strings.type):
        strings = strings.cast(pa.string())
    n = len(strings)
    out = np.empty(n, dtype=np.uint64)
    if n == 0:
        return out
    _, offsets_buffer, data_buffer = strings.buffers()[:3]
    offsets = np.frombuffer(offsets_buffer, dtype=np.int32)[strings.offset : strings.offset + n + 1]
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.empty(0, np.uint8)
    lengths = np.diff(offsets).astype(np.int64)
    start = 0
    while start < n:
        # Strings [start, stop) hold at most _HASH_BYTES bytes (or are a single long one).
        stop = max(int(np.searchsorted(offsets, offsets[start] + _HASH_BYTES, side="right")) - 1, start + 1)
        stop = min(stop, n)
        first, last = int(offsets[start]), int(offsets[stop])
        piece = lengths[start:stop]
        position = np.arange(last - first, dtype=np.int64) - np.repeat(offsets[start:stop] - first, piece)
        mixed = mix((position.astype(np.uint64) << np.uint64(8)) + data[first:last] + _GOLDEN)
        sums = np.concatenate([[np.uint64(0)], np.cumsum(mixed, dtype=np.uint64)])
        ends = np.cumsum(piece)
        total = sums[ends] - sums[ends - piece]
        out[start:stop] = mix(total + (piece.astype(np.uint64) + np.uint64(1)) * _GOLDEN)
        start = stop
    present = _arrow.valid(strings)
    if present is not None:
        out[~present] = 0
    return out


def hash_strings(strings: pa.Array) -> np.ndarray:
    """uint64 hash per string (nulls hash alike).

    Hashes each distinct string once (Arrow's dictionary encoding finds them) instead of
    turning every row into a Python object.
    """
    return code(strings).hashes()


def combine_hashes(seed: np.ndarray, column: np.ndarray) -> np.ndarray:
    """Order-sensitive combination of a running row hash with one column's hash."""
    combined = seed * _GOLDEN
    combined += column
    return mix(combined)


class NumericState:
    """Summary of one column's numbers: counts, moments, quantile sketch and sample."""

    def __init__(self, rng: np.random.Generator, sketch_k: int, sample_size: int) -> None:
        self.rows = 0
        self.missing = 0
        self.type_errors = 0
        self.moments = Moments()
        self.sketch = QuantileSketch(sketch_k, rng)
        self.sample = Reservoir(sample_size, rng)

    def update(self, values: np.ndarray, type_errors: int = 0) -> np.ndarray:
        """Add a chunk (NaN = missing); returns its finite values, sorted.

        Sorting once here serves everyone downstream: bin counts and range checks become
        a few binary searches, and the sketch's compaction sorts presorted data.
        """
        finite = np.sort(values[np.isfinite(values)])
        self.rows += int(values.size)
        self.missing += int(values.size - finite.size)
        self.type_errors += type_errors
        self.moments.update(finite, presorted=True)
        self.sketch.update(finite, presorted=True)
        self.sample.update(finite)
        return finite

    def merge(self, other: NumericState) -> None:
        """Fold in the state of another part of the stream."""
        self.rows += other.rows
        self.missing += other.missing
        self.type_errors += other.type_errors
        self.moments.merge(other.moments)
        self.sketch.merge(other.sketch)
        self.sample.merge(other.sample)

    def nbytes(self) -> int:
        """Memory held by the sketch and the sample."""
        return self.sketch.nbytes() + self.sample.nbytes()
