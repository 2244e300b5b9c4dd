"""Arrow arrays to numpy and back through their buffers, without pyarrow's pandas bridge.

Why not ``Array.to_numpy`` and ``pa.array``: in pyarrow both go through its pandas
compatibility layer, which imports pandas on first use (as does any Python scalar given
to a compute function), and pandas costs about 50 MB of resident memory, as much as the
rest of a 100,000-row x 50-column monitoring window. Fixed-width arrays are read here as
numpy views on their data buffers and their validity bitmaps unpacked, so monitoring
Arrow data never loads pandas; only pandas input (or a string column to parse) does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def _bits(buffer: pa.Buffer, offset: int, length: int) -> np.ndarray:
    """``length`` bits of a little-endian bitmap from bit ``offset``, as booleans."""
    first, skip = divmod(offset, 8)
    count = (skip + length + 7) // 8
    raw = np.frombuffer(buffer, dtype=np.uint8, count=count, offset=first)
    return np.unpackbits(raw, bitorder="little")[skip : skip + length].view(bool)


def valid(array: pa.Array) -> np.ndarray | None:
    """Where ``array`` has a value (None when it has no null)."""
    if array.null_count == 0:
        return None
    validity = array.buffers()[0]
    if validity is None:  # a null-typed array: every entry is null
        return np.zeros(len(array), dtype=bool)
    return _bits(validity, array.offset, len(array))


def _dtype(kind: pa.DataType) -> np.dtype:
    if pa.types.is_floating(kind) and kind.bit_width in (32, 64):
        return np.dtype(f"f{kind.bit_width // 8}")
    if pa.types.is_integer(kind):
        return np.dtype(f"{'i' if pa.types.is_signed_integer(kind) else 'u'}{kind.bit_width // 8}")
    raise TypeError(f"not a numpy-compatible fixed-width type: {kind}")


def values(array: pa.Array) -> np.ndarray:
    """The data of an integer or float array as a (read-only) numpy view; nulls hold garbage."""
    dtype = _dtype(array.type)
    data = array.buffers()[1]
    if len(array) == 0 or data is None:
        return np.empty(0, dtype=dtype)
    return np.frombuffer(data, dtype=dtype, count=len(array), offset=array.offset * dtype.itemsize)


def floats(array: pa.Array) -> np.ndarray:
    """Any numeric or boolean array as float64, NaN where null."""
    if not pa.types.is_float64(array.type):
        # Unchecked: an int64 beyond 2**53 rounds to the nearest float instead of failing.
        array = pc.cast(array, pa.float64(), safe=False)
    data = values(array)
    present = valid(array)
    return data if present is None else np.where(present, data, np.nan)


def integers(array: pa.Array, null: int) -> np.ndarray:
    """An integer array as numpy integers, ``null`` where null."""
    data = values(array)
    present = valid(array)
    return data if present is None else np.where(present, data, null)


def booleans(array: pa.Array) -> np.ndarray:
    """A boolean array as numpy booleans (False where null)."""
    data = _bits(array.buffers()[1], array.offset, len(array)) if len(array) else np.zeros(0, bool)
    present = valid(array)
    return data if present is None else data & present


def mask(selected: np.ndarray) -> pa.Array:
    """A numpy boolean array as an Arrow one (for ``filter``)."""
    selected = np.asarray(selected, dtype=bool)
    packed = np.packbits(selected, bitorder="little")
    return pa.Array.from_buffers(pa.bool_(), selected.size, [None, pa.py_buffer(packed)])


def int64s(numbers: np.ndarray) -> pa.Array:
    """A numpy integer array as an Arrow int64 one."""
    numbers = np.ascontiguousarray(numbers, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), numbers.size, [None, pa.py_buffer(numbers)])


def strings(texts: Sequence[str]) -> pa.Array:
    """Python strings as an Arrow string array."""
    encoded = [str(text).encode("utf-8") for text in texts]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    data = pa.py_buffer(b"".join(encoded))
    return pa.Array.from_buffers(pa.string(), len(encoded), [None, pa.py_buffer(offsets), data])
