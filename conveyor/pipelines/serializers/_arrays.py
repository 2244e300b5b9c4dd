"""NumPy arrays and scalars as ``.npy`` files, never with pickled objects inside."""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from typing import Any, BinaryIO

from conveyor.pipelines.serializers._base import CHUNK_BYTES, Serializer, as_file, is_instance_of, slices

__all__ = ["NpyScalarSerializer", "NpySerializer"]

#: Largest ``.npy`` header read back (numpy's default is 10,000 bytes).
_MAX_HEADER = 1 << 20


class NpySerializer(Serializer):
    """A plain ``numpy.ndarray`` in NumPy's ``.npy`` format, readable by ``numpy.load``.

    Dtype (byte order, structured fields, datetime units), shape (0-d and empty arrays
    included) and memory order (a Fortran-ordered array loads Fortran-ordered) round-trip.
    The bytes are exactly what ``numpy.save`` writes, a header plus the raw data, so they
    are deterministic. A contiguous array is streamed as views of its own memory, with no
    copy; any other array one bounded block at a time.

    Refused, because they would need pickle or load as something else:

    - arrays with Python objects inside (``dtype=object``, or structured dtypes holding
      objects) and NumPy's new-style dtypes such as ``StringDType``, which ``numpy.save``
      can only pickle; they are loaded with ``allow_pickle=False``;
    - subclasses (``numpy.ma.MaskedArray`` would lose its mask, ``numpy.matrix`` and
      ``numpy.memmap`` would load as plain arrays): pass ``numpy.asarray(value)``.
    """

    name = "npy"
    version = 1
    extension = ".npy"

    def accepts(self, value: object) -> bool:
        return self.refusal(value) is None and is_instance_of(value, ("numpy.ndarray",))

    def refusal(self, value: object) -> str | None:
        if not is_instance_of(value, ("numpy.ndarray",)):
            return None
        if type(value) is not _numpy().ndarray:
            return "a subclass of ndarray would load as a plain ndarray; pass numpy.asarray(value)"
        return _dtype_problem(value.dtype)  # type: ignore[attr-defined]

    def dump(self, value: Any) -> Iterator[bytes | memoryview]:
        return _npy_chunks(value)

    def load(self, data: bytes | BinaryIO) -> Any:
        # numpy refuses headers over 10 kB by default (they are parsed with literal_eval);
        # a structured dtype with a few hundred fields needs more, and what we load has
        # already been checked against the hash recorded when we wrote it.
        return _numpy().lib.format.read_array(as_file(data), allow_pickle=False, max_header_size=_MAX_HEADER)


class NpyScalarSerializer(NpySerializer):
    """A NumPy scalar (``numpy.float64(1.5)``, ``numpy.int8(3)``, ``numpy.datetime64``...).

    Stored as a 0-d ``.npy`` array and loaded back as the scalar, so its exact type
    survives (JSON would turn ``numpy.float64`` into ``float``). Same rules and
    determinism as :class:`NpySerializer`.
    """

    name = "npy-scalar"

    def accepts(self, value: object) -> bool:
        return self.refusal(value) is None and is_instance_of(value, ("numpy.generic",))

    def refusal(self, value: object) -> str | None:
        if not is_instance_of(value, ("numpy.generic",)):
            return None
        return _dtype_problem(value.dtype)  # type: ignore[attr-defined]

    def dump(self, value: Any) -> Iterator[bytes | memoryview]:
        return _npy_chunks(_numpy().asarray(value))

    def load(self, data: bytes | BinaryIO) -> Any:
        return super().load(data)[()]


def _numpy() -> Any:
    import numpy

    return numpy


def _dtype_problem(dtype: Any) -> str | None:
    """Why ``numpy.save`` would pickle ``dtype`` rather than write raw bytes, or None.

    ``numpy.lib.format.write_array`` pickles when ``dtype.hasobject`` or when the dtype
    class is not a "legacy" one (user dtypes and ``StringDType``); this mirrors that test.
    """
    if dtype.hasobject or not getattr(type(dtype), "_legacy", True):
        return f"dtype {dtype} holds Python objects, which .npy can only pickle"
    return None


def _npy_chunks(array: Any) -> Iterator[bytes | memoryview]:
    """The bytes ``numpy.save(array)`` would write, as a header then slices of the data."""
    np = _numpy()
    header = _npy_header(array)
    if header is None:
        buffer = io.BytesIO()
        # numpy warns that 3.0 files need NumPy >= 1.17 (2019); that is no news to us.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Stored array in format 3.0", UserWarning)
            np.lib.format.write_array(buffer, array, allow_pickle=False)
        yield buffer.getbuffer()
        return
    yield header
    if array.nbytes == 0:
        return
    if array.flags.c_contiguous:
        yield from slices(memoryview(array.reshape(-1).view(np.uint8)))
    elif array.flags.f_contiguous:  # the header says Fortran order; the transpose is C order
        yield from slices(memoryview(array.T.reshape(-1).view(np.uint8)))
    else:
        rows = max(1, CHUNK_BYTES // max(1, array[0].nbytes))
        for start in range(0, array.shape[0], rows):
            block = np.ascontiguousarray(array[start : start + rows])
            yield memoryview(block.reshape(-1).view(np.uint8))


def _npy_header(array: Any) -> bytes | None:
    """The ``.npy`` header for ``array`` in the version ``numpy.save`` picks, or None.

    Version 1.0 unless the header is too long for it (2.0). NumPy's public helpers stop
    there; for the rare array that needs 3.0 (field names outside Latin-1) this returns
    None and the caller lets ``numpy.save``'s own writer produce the file in memory.
    """
    fmt = _numpy().lib.format
    header = fmt.header_data_from_array_1_0(array)
    for write in (fmt.write_array_header_1_0, fmt.write_array_header_2_0):
        buffer = io.BytesIO()
        try:
            write(buffer, header)
        except UnicodeEncodeError:
            return None
        except ValueError:  # header too long for version 1.0
            continue
        return buffer.getvalue()
    return None
