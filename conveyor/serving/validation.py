"""Requests checked against the model's signature, field by field, on both protocols.

A protocol parser turns a request into *raw inputs*: a mapping from column (or tensor)
name to its values, a JSON list or a NumPy array. :meth:`InputSpec.validate` turns raw
inputs into *columns*, one NumPy array per signature field in the signature's order
and of its declared dtype, or raises :class:`RequestRejected` listing every problem
found: missing, unknown, mistyped or misshapen fields, NaN where none is allowed, an
empty batch. Both protocols share this one function, so the same bad request gets the
same answer whichever way it came.

The casting rules are stricter than NumPy's and simpler than pandas': integers go into
float columns; floats never go into integer columns (a fraction would be lost
silently); an integer must fit its column's width; booleans go only into boolean
columns; text goes only into string, object and (as ISO 8601) datetime columns.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from conveyor.models import FieldSpec, Signature
from conveyor.serving.errors import FieldProblem, RequestRejected

__all__ = [
    "TENSOR_INPUT",
    "Column",
    "Columns",
    "InputSpec",
    "MatrixColumns",
    "RawInputs",
    "columns_of",
    "convert",
]

#: One array per field, all of the same length (the number of rows).
Columns = dict[str, np.ndarray]
#: A parser's output: field name -> list (from JSON) or array (typed tensors, CSV).
RawInputs = Mapping[str, Any]
#: The name a ``tensor`` signature's one unnamed array is served under.
TENSOR_INPUT = "input-0"
#: Flavors that treat NaN as a missing value natively.
NAN_AWARE_FLAVORS = frozenset({"xgboost", "lightgbm"})
SpecKind = Literal["dataframe", "tensor", "tensors", "free"]


class MatrixColumns(dict[str, np.ndarray]):
    """Columns that are the columns of one matrix (a row per request row, a column per field).

    Rows of numbers become one matrix in one NumPy call; keeping it lets validation check
    all the fields at once, the model take it as it is (no ``column_stack``), and merged
    batches concatenate one array instead of one per field.
    """

    __slots__ = ("matrix",)

    def __init__(self, matrix: np.ndarray, names: Sequence[str]) -> None:
        super().__init__({name: matrix[:, j] for j, name in enumerate(names)})
        self.matrix = matrix

    @classmethod
    def concat(cls, parts: Sequence[Columns]) -> Columns | None:
        """The parts one under the other, if all are matrices of one dtype and fields; else None."""
        first = parts[0]
        if not isinstance(first, MatrixColumns):
            return None
        names = tuple(first)
        dtype = first.matrix.dtype
        for part in parts:
            if not isinstance(part, MatrixColumns) or part.matrix.dtype != dtype or tuple(part) != names:
                return None
        return cls(np.concatenate([part.matrix for part in parts]), names)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Column:
    """One field as the server checks it: name, dtype, per-row shape and NaN policy."""

    name: str
    #: NumPy dtype name, or ``string`` / ``object`` / ``datetime64[...]``.
    dtype: str
    #: Shape of one row's value: ``()`` for a column, trailing dimensions for a tensor.
    shape: tuple[int, ...] = ()
    optional: bool = False
    allow_nan: bool = False

    @property
    def is_float(self) -> bool:
        return self.dtype.startswith("float")


class InputSpec:
    """What a served model accepts, compiled once from its signature.

    Args:
        kind: The signature's kind, or ``free`` for a model saved without one (any
            named columns of equal length are accepted and passed on as they are).
        columns: The fields, in the signature's order.
        unknown: What to do with a field the signature does not name.
    """

    def __init__(
        self, kind: SpecKind, columns: Sequence[Column], unknown: Literal["reject", "ignore"] = "reject"
    ) -> None:
        self.kind = kind
        self.columns = tuple(columns)
        self.unknown = unknown
        self.names = tuple(c.name for c in self.columns)
        self._by_name = {c.name: c for c in self.columns}
        #: Every field a scalar float column: rows of JSON numbers parse as one matrix.
        self.all_float = kind == "dataframe" and all(c.is_float and not c.shape for c in self.columns)
        dtypes = {c.dtype for c in self.columns}
        #: The dtype of every field when they are all scalar floats of one dtype: a
        #: :class:`MatrixColumns` of it is checked at once.
        self.matrix_dtype = np.dtype(dtypes.pop()) if self.all_float and len(dtypes) == 1 else None

    @classmethod
    def from_signature(
        cls,
        signature: Signature | None,
        *,
        flavor: str = "",
        allow_nan: bool | Sequence[str] | None = None,
        unknown: Literal["reject", "ignore"] = "reject",
    ) -> InputSpec:
        """The spec of a model's input schema; see :class:`ModelConfig` for ``allow_nan``."""
        if signature is None:
            return cls("free", (), unknown="ignore")
        schema = signature.inputs

        def nan_ok(spec: FieldSpec) -> bool:
            if allow_nan is None:
                return flavor in NAN_AWARE_FLAVORS or spec.optional
            if isinstance(allow_nan, bool):
                return allow_nan
            return spec.name in allow_nan

        columns = [
            Column(
                name=spec.name if spec.name is not None else TENSOR_INPUT,
                dtype=spec.dtype,
                shape=tuple(spec.shape[1:]) if spec.shape else (),
                optional=spec.optional,
                allow_nan=nan_ok(spec),
            )
            for spec in schema.fields
        ]
        return cls(schema.kind, columns, unknown=unknown)

    def column(self, name: str) -> Column | None:
        return self._by_name.get(name)

    # -- validation ------------------------------------------------------------------------

    def validate(self, raw: RawInputs) -> Columns:
        """``raw`` as columns of the declared dtypes, in the signature's order.

        Raises:
            RequestRejected: with one :class:`FieldProblem` per problem found.
        """
        if self.kind == "free":
            return _free_columns(raw)
        if type(raw) is MatrixColumns and self.matrix_dtype is not None:
            checked = self._checked_matrix(raw)
            if checked is not None:
                return checked
        if self.kind == "tensor" and len(raw) == 1:
            raw = {TENSOR_INPUT: next(iter(raw.values()))}
        if not raw or all(_length(values) == 0 for values in raw.values()):
            raise RequestRejected.one("", "empty", "the request has no rows")
        problems: list[FieldProblem] = []
        out: Columns = {}
        for column in self.columns:
            if column.name in raw:
                converted = convert(column, raw[column.name])
                if isinstance(converted, FieldProblem):
                    problems.append(converted)
                else:
                    out[column.name] = converted
            elif not column.optional:
                problems.append(
                    FieldProblem(column.name, "missing", f"required field {column.name!r} is missing")
                )
        if self.unknown == "reject":
            problems.extend(
                FieldProblem(str(name), "unknown", f"field {name!r} is not in the model's signature")
                for name in raw
                if name not in self._by_name
            )
        problems.extend(_row_count_problems(out))
        if problems:
            raise RequestRejected(problems)
        return self._add_optional(out)

    def _checked_matrix(self, raw: MatrixColumns) -> MatrixColumns | None:
        """A matrix of every field, in order, of numbers without NaN: the fields as
        :meth:`validate` would make them, in one step. None: check field by field."""
        matrix = raw.matrix
        target = self.matrix_dtype
        if tuple(raw) != self.names or matrix.ndim != 2 or not len(matrix) or matrix.dtype.kind not in "iuf":
            return None
        if matrix.dtype == target:
            if np.isnan(matrix).any():
                return None  # NaN may be allowed in some fields only: let them decide
            return raw
        matrix = matrix.astype(target)
        if np.isnan(matrix).any():
            return None
        return MatrixColumns(matrix, self.names)

    def _add_optional(self, out: Columns) -> Columns:
        """Absent optional fields as missing values; the signature's order."""
        n = len(next(iter(out.values()))) if out else 0
        if n == 0:
            raise RequestRejected.one("", "empty", "the request has no rows")
        if len(out) == len(self.columns):
            return out
        filled: Columns = {}
        for column in self.columns:
            if column.name in out:
                filled[column.name] = out[column.name]
            elif column.is_float:
                filled[column.name] = np.full((n, *column.shape), np.nan, dtype=column.dtype)
            else:
                filled[column.name] = np.full((n, *column.shape), None, dtype=object)
        return filled

    # -- what the spec can make ------------------------------------------------------------

    def synthetic_row(self) -> Columns:
        """One row of neutral values (0, False, ``""``, the epoch), for warming a model up."""
        row: Columns = {}
        for column in self.columns:
            shape = (1, *(1 if d == -1 else d for d in column.shape))
            if column.dtype in ("string", "object"):
                row[column.name] = np.full(shape, "", dtype=object)
            else:
                row[column.name] = np.zeros(shape, dtype=column.dtype)
        return row


def columns_of(example: Any) -> dict[str, Any]:
    """Raw inputs from a saved input example (DataFrame, array or dict of arrays)."""
    if hasattr(example, "columns") and hasattr(example, "to_numpy"):
        return {str(name): example[name].to_numpy() for name in example.columns}
    if isinstance(example, Mapping):
        return {str(k): np.asarray(v) for k, v in example.items()}
    return {TENSOR_INPUT: np.asarray(example)}


# -- one field ----------------------------------------------------------------------------


def convert(column: Column, values: Any) -> np.ndarray | FieldProblem:
    """``values`` as an array of the column's dtype and shape, or what is wrong with it."""
    try:
        if column.dtype in ("string", "object"):
            array = _texts(column, values)
        elif column.dtype.startswith("datetime64"):
            array = _datetimes(column, values)
        else:
            array = _numbers(column, values)
    except _Problem as problem:
        return FieldProblem(column.name, problem.code, f"field {column.name!r}: {problem.text}")
    problem = _shape_problem(column, array)
    if problem is not None:
        return FieldProblem(column.name, "shape", f"field {column.name!r}: {problem}")
    if column.is_float and not column.allow_nan and np.isnan(array).any():
        count = int(np.isnan(array).sum())
        return FieldProblem(column.name, "nan", f"field {column.name!r} has {count} NaN/null value(s)")
    return array


class _Problem(Exception):
    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


def _as_array(values: Any) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return values
    if not isinstance(values, list | tuple):
        raise _Problem("shape", f"expected a list of values, got {type(values).__name__}")
    try:
        return np.asarray(values)
    except ValueError:
        raise _Problem("shape", "rows have different lengths") from None


def _numbers(column: Column, values: Any) -> np.ndarray:
    array = _as_array(values)
    target = np.dtype(column.dtype)
    if array.dtype == target:
        return array
    kind = array.dtype.kind
    if kind == "O":
        array, kind = _numbers_with_nulls(column, values, array)
    if kind in "USM":
        raise _Problem("type", f"expected {column.dtype} numbers, got text")
    if kind not in "biuf":
        raise _Problem("type", f"expected {column.dtype} numbers, got {array.dtype}")
    if target.kind == "b":
        if kind != "b":
            raise _Problem("type", f"expected booleans, got {array.dtype}")
    elif kind == "b":
        raise _Problem("type", f"expected {column.dtype} numbers, got booleans")
    elif target.kind in "iu":
        _check_integers(column, array, target)
    return array.astype(target)


def _numbers_with_nulls(column: Column, values: Any, array: np.ndarray) -> tuple[np.ndarray, str]:
    """A JSON list holding nulls (or mixed types): NaN for floats, a problem otherwise."""
    flat = array.ravel()
    if any(isinstance(v, str | bytes) for v in flat):
        raise _Problem("type", f"expected {column.dtype} numbers, got text")
    if any(isinstance(v, list | dict) for v in flat):
        raise _Problem("shape", "expected one value per row, got nested lists or objects")
    if not column.is_float:
        if any(v is None for v in flat):
            raise _Problem("nan", f"null in an integer or boolean field ({column.dtype})")
        raise _Problem("type", f"expected {column.dtype}, got mixed values")
    try:
        return np.array(values, dtype=np.float64), "f"
    except (TypeError, ValueError):
        raise _Problem("type", f"expected {column.dtype} numbers") from None


def _check_integers(column: Column, array: np.ndarray, target: np.dtype) -> None:
    if array.dtype.kind == "f":
        raise _Problem("type", f"expected integers ({column.dtype}), got floating-point numbers")
    if array.size and not np.can_cast(array.dtype, target, casting="safe"):
        info = np.iinfo(target)
        if array.min() < info.min or array.max() > info.max:
            raise _Problem("type", f"a value is out of the range of {column.dtype}")


def _texts(column: Column, values: Any) -> np.ndarray:
    if isinstance(values, np.ndarray):
        if values.dtype.kind == "O" and column.dtype == "object":
            return values
        if values.dtype.kind in "US":
            return values.astype(object)
        if values.dtype.kind != "O" and column.dtype == "string":
            raise _Problem("type", f"expected strings, got {values.dtype}")
        items = values.ravel().tolist()
    elif isinstance(values, list | tuple):
        items = values
    else:
        raise _Problem("shape", f"expected a list of values, got {type(values).__name__}")
    if column.dtype == "string":
        for item in items:
            if type(item) is not str:
                missing = item is None or (isinstance(item, float) and math.isnan(item))
                if missing and column.allow_nan:
                    continue
                if missing:
                    raise _Problem("nan", "null in a string field")
                raise _Problem("type", f"expected strings, got {type(item).__name__}")
    out = np.empty(len(items), dtype=object)
    out[:] = items
    if isinstance(values, np.ndarray):
        return out.reshape(values.shape)
    return out


def _datetimes(column: Column, values: Any) -> np.ndarray:
    array = _as_array(values)
    if array.dtype.kind == "M":
        return array.astype(column.dtype)
    if array.dtype.kind not in "UO":
        raise _Problem("type", f"expected ISO 8601 date-times, got {array.dtype}")
    try:
        return np.array(array, dtype=column.dtype)
    except (TypeError, ValueError):
        raise _Problem("type", "expected ISO 8601 date-times (2026-03-01T10:00:00)") from None


def _shape_problem(column: Column, array: np.ndarray) -> str | None:
    want = column.shape
    if not want and array.ndim == 1:  # the usual case: one value per row
        return None
    if array.ndim != 1 + len(want) or any(
        w not in (-1, g) for w, g in zip(want, array.shape[1:], strict=True)
    ):
        expected = "one value per row" if not want else f"rows of shape {list(want)} (-1: any)"
        return f"expected {expected}, got an array of shape {list(array.shape)}"
    return None


def _length(values: Any) -> int | None:
    if isinstance(values, list | tuple) or (isinstance(values, np.ndarray) and values.ndim):
        return len(values)
    return None


def _row_count_problems(out: Columns) -> list[FieldProblem]:
    """The fields whose number of rows differs from the most common one."""
    counts = {name: len(array) for name, array in out.items()}
    if len(set(counts.values())) <= 1:
        return []
    usual = Counter(counts.values()).most_common(1)[0][0]
    return [
        FieldProblem(name, "shape", f"field {name!r} has {count} rows, the others {usual}")
        for name, count in counts.items()
        if count != usual
    ]


def _free_columns(raw: RawInputs) -> Columns:
    """A model without a signature: named arrays of equal length, passed on as they are."""
    problems: list[FieldProblem] = []
    out: Columns = {}
    for name, values in raw.items():
        try:
            out[str(name)] = _as_array(values)
        except _Problem as problem:
            problems.append(FieldProblem(str(name), problem.code, f"field {name!r}: {problem.text}"))
    problems.extend(_row_count_problems(out))
    if problems:
        raise RequestRejected(problems)
    if not out or len(next(iter(out.values()))) == 0:
        raise RequestRejected.one("", "empty", "the request has no rows")
    return out
