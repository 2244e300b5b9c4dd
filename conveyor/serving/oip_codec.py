"""Open Inference Protocol tensors: JSON and binary data to NumPy arrays and back.

A request tensor is ``{"name", "datatype", "shape", "data"}`` with ``data`` flat or
nested in row-major order, or, with the binary tensor data extension, no ``data`` but
``parameters.binary_data_size`` bytes after the JSON header (whose length is in the
``Inference-Header-Content-Length`` header): little-endian, row-major, and for ``BYTES``
each element a 4-byte little-endian length followed by its bytes.

Values are checked against the declared datatype with the same rules as fields
against a signature (:mod:`conveyor.serving.validation`): ``"1.5"`` is not a number,
and ``2.5`` is not an ``INT64``.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np

from conveyor.serving.errors import FieldProblem, RequestRejected
from conveyor.serving.validation import Column, convert

__all__ = ["DATATYPES", "datatype_of", "decode_tensor", "encode_tensor"]

#: OIP datatype -> NumPy dtype name (``object``: ``BYTES``, held as Python strings).
DATATYPES = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
    "BYTES": "object",
}
_BY_DTYPE = {v: k for k, v in DATATYPES.items() if k != "BYTES"}


def datatype_of(dtype: np.dtype | str) -> str:
    """The OIP datatype of a NumPy dtype (or signature dtype name); text and the rest are ``BYTES``."""
    found = _DATATYPE_OF.get(dtype)
    if found is None:
        name = np.dtype(dtype).name if not isinstance(dtype, str) or dtype in _BY_DTYPE else dtype
        found = _DATATYPE_OF[dtype] = _BY_DTYPE.get(name, "BYTES")
    return found


#: ``datatype_of``'s answers (NumPy computes a dtype's name in Python, on every call).
_DATATYPE_OF: dict[np.dtype | str, str] = {}


def decode_tensor(spec: Any, binary: memoryview, offset: int) -> tuple[str, np.ndarray, int]:
    """``(name, array, next offset)`` of one request tensor.

    Raises:
        RequestRejected: a malformed tensor, data that is not of its datatype, or data
            that does not fill its shape.
    """
    if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
        raise RequestRejected.one("", "format", "each input needs a 'name' string")
    name = spec["name"]
    datatype, shape = spec.get("datatype"), spec.get("shape")
    if datatype not in DATATYPES:
        raise RequestRejected.one(name, "type", f"input {name!r}: unknown datatype {datatype!r}")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise RequestRejected.one(name, "shape", f"input {name!r}: 'shape' must be a list of sizes")
    size = _binary_size(spec)
    if size is not None:
        if offset + size > len(binary):
            raise RequestRejected.one(
                name, "format", f"input {name!r}: the binary data is shorter than declared"
            )
        array = _from_binary(name, datatype, binary[offset : offset + size])
        offset += size
    elif "data" in spec:
        array = _from_json(name, datatype, spec["data"])
    else:
        raise RequestRejected.one(name, "format", f"input {name!r} has neither 'data' nor binary data")
    if array.size != math.prod(shape):
        raise RequestRejected.one(
            name, "shape", f"input {name!r}: shape {shape} needs {math.prod(shape)} values, got {array.size}"
        )
    return name, array.reshape(shape), offset


def encode_tensor(name: str, array: np.ndarray, binary: bool) -> tuple[dict[str, Any], bytes | None]:
    """The response tensor for an output, and its raw bytes when sent as binary data."""
    datatype = datatype_of(array.dtype)
    tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
    if not binary:
        flat = array.ravel()
        tensor["data"] = flat if datatype != "BYTES" else [_text(v) for v in flat.tolist()]
        return tensor, None
    if datatype == "BYTES":
        raw = b"".join(_length_prefixed(_text(v).encode()) for v in array.ravel().tolist())
    else:
        raw = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    tensor["parameters"] = {"binary_data_size": len(raw)}
    return tensor, raw


def _binary_size(spec: Mapping[str, Any]) -> int | None:
    parameters = spec.get("parameters")
    if not isinstance(parameters, Mapping) or "binary_data_size" not in parameters:
        return None
    size = parameters["binary_data_size"]
    if type(size) is not int or size < 0:
        raise RequestRejected.one(spec["name"], "format", "binary_data_size must be a size in bytes")
    return size


def _from_json(name: str, datatype: str, data: Any) -> np.ndarray:
    if not isinstance(data, list):
        data = [data]
    try:
        flat = np.asarray(data, dtype=object if datatype == "BYTES" else None).ravel()
    except ValueError:
        raise RequestRejected.one(
            name, "shape", f"input {name!r}: nested lists of different lengths"
        ) from None
    if datatype == "BYTES":
        flat = np.asarray([_text(v) if isinstance(v, bytes) else v for v in flat.tolist()], dtype=object)
    converted = convert(_column(name, datatype), flat)
    if isinstance(converted, FieldProblem):
        raise RequestRejected([converted])
    return converted


_COLUMNS: dict[tuple[str, str], Column] = {}


def _column(name: str, datatype: str) -> Column:
    """The field a tensor's data is checked as (cached: tensors keep their names)."""
    column = _COLUMNS.get((name, datatype))
    if column is None:
        if len(_COLUMNS) >= 4096:  # names are the client's: never let them grow the cache
            _COLUMNS.clear()
        column = _COLUMNS[name, datatype] = Column(name, DATATYPES[datatype], allow_nan=True)
    return column


def _from_binary(name: str, datatype: str, raw: memoryview) -> np.ndarray:
    if datatype == "BYTES":
        return np.asarray(_split_bytes(name, raw), dtype=object)
    dtype = np.dtype(DATATYPES[datatype]).newbyteorder("<")
    if len(raw) % dtype.itemsize:
        raise RequestRejected.one(
            name, "format", f"input {name!r}: {len(raw)} bytes is not a whole number of {datatype}"
        )
    return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="), copy=False)


def _split_bytes(name: str, raw: memoryview) -> list[str]:
    items: list[str] = []
    offset = 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise RequestRejected.one(name, "format", f"input {name!r}: truncated BYTES element")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise RequestRejected.one(name, "format", f"input {name!r}: truncated BYTES element")
        items.append(_text(bytes(raw[offset : offset + length])))
        offset += length
    return items


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value if isinstance(value, str) else str(value)


def _length_prefixed(data: bytes) -> bytes:
    return struct.pack("<I", len(data)) + data
