"""Model signatures: what a model takes and returns, inferred from examples and enforced on input.

A :class:`Schema` has one of three kinds:

- ``"dataframe"``: named columns, each with a dtype (``float64``, ``int64``, ``bool``,
  ``string``, ``datetime64[ns]``, ``object``) and an ``optional`` flag;
- ``"tensor"``: one array with a dtype and a shape, ``-1`` where any size goes (the batch);
- ``"tensors"``: a mapping of names to such arrays.

:meth:`Schema.enforce` is what ``LoadedModel.predict`` runs before the model sees the
data, so a caller gets a named :class:`~conveyor.errors.InvalidInput` instead of a
framework traceback (or, worse, a silently wrong answer from reordered columns).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from conveyor.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FieldSpec", "Schema", "Signature", "infer_schema", "infer_signature"]

SchemaKind = Literal["dataframe", "tensor", "tensors"]
_KINDS = ("dataframe", "tensor", "tensors")


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One column (``dataframe``) or one array (``tensor``/``tensors``) of a schema."""

    #: Column or array name; None for the single array of a ``tensor`` schema.
    name: str | None
    #: NumPy dtype name (``float64``), or ``string`` / ``object`` for text and anything.
    dtype: str
    #: Array shape with ``-1`` for any size; None for a dataframe column.
    shape: tuple[int, ...] | None = None
    #: Whether the input may leave this field out.
    optional: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A YAML-ready dict, only the fields that apply."""
        out: dict[str, Any] = {"dtype": self.dtype}
        if self.name is not None:
            out["name"] = self.name
        if self.shape is not None:
            out["shape"] = list(self.shape)
        if self.optional:
            out["optional"] = True
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FieldSpec:
        """Rebuild a field saved with :meth:`to_dict`.

        Raises:
            InvalidInput: ``dtype`` is missing or the shape is not a list of integers.
        """
        if not isinstance(data, Mapping) or not isinstance(data.get("dtype"), str):
            raise InvalidInput(f"A signature field needs a 'dtype' string, got {data!r}")
        shape = data.get("shape")
        if shape is not None and not (isinstance(shape, list) and all(type(d) is int for d in shape)):
            raise InvalidInput(f"Signature field shape must be a list of integers, got {shape!r}")
        return cls(
            name=data.get("name"),
            dtype=data["dtype"],
            shape=tuple(shape) if shape is not None else None,
            optional=bool(data.get("optional", False)),
        )


@dataclass(frozen=True, slots=True)
class Schema:
    """The inputs or the outputs of a model; see the module docstring for the kinds."""

    kind: SchemaKind
    fields: tuple[FieldSpec, ...]

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise InvalidInput(f"Schema kind must be one of {', '.join(_KINDS)}, got {self.kind!r}")

    @property
    def names(self) -> list[str | None]:
        """Field names in order (``[None]`` for a ``tensor`` schema)."""
        return [f.name for f in self.fields]

    def with_optional(self, *names: str) -> Schema:
        """A copy in which the named columns or arrays may be absent from the input.

        Raises:
            InvalidInput: a name is not in the schema.
        """
        unknown = set(names) - {f.name for f in self.fields}
        if unknown:
            raise InvalidInput(f"Cannot mark {sorted(unknown)} optional: the schema has {self.names}")
        return replace(
            self, fields=tuple(replace(f, optional=f.optional or f.name in names) for f in self.fields)
        )

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "fields": [f.to_dict() for f in self.fields]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Schema:
        """Rebuild a schema saved with :meth:`to_dict`.

        Raises:
            InvalidInput: the kind is unknown or a field is malformed.
        """
        if not isinstance(data, Mapping) or not isinstance(data.get("fields"), list):
            raise InvalidInput(f"A schema needs 'kind' and a 'fields' list, got {data!r}")
        return cls(kind=data.get("kind"), fields=tuple(FieldSpec.from_dict(f) for f in data["fields"]))  # type: ignore[arg-type]

    def enforce(self, data: Any) -> Any:
        """``data`` checked against this schema and converted to what the model expects.

        A dataframe comes back with exactly the schema's columns, in the schema's order:
        extra columns are dropped (a scoring request often carries ids or labels the
        model never saw), absent optional columns are added as missing values, and
        columns are cast to the declared dtype when that cast is safe (``int64`` to
        ``float64``, never ``float64`` to ``int64``). Arrays are checked for rank, fixed
        dimensions and dtype the same way.

        Raises:
            InvalidInput: a required column or array is missing (named), the data is of
                the wrong kind or shape, or a dtype cannot be safely cast.
        """
        if self.kind == "dataframe":
            return _enforce_frame(self.fields, data)
        if self.kind == "tensor":
            return _enforce_array(self.fields[0], data)
        return _enforce_arrays(self.fields, data)


@dataclass(frozen=True, slots=True)
class Signature:
    """The input schema a model's ``predict`` enforces, and what it returns (informative)."""

    inputs: Schema
    outputs: Schema | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs.to_dict(),
            "outputs": self.outputs.to_dict() if self.outputs is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        """Rebuild a signature saved with :meth:`to_dict`.

        Raises:
            InvalidInput: ``inputs`` is missing or malformed.
        """
        if not isinstance(data, Mapping) or "inputs" not in data:
            raise InvalidInput(f"A signature needs 'inputs', got {data!r}")
        outputs = data.get("outputs")
        return cls(Schema.from_dict(data["inputs"]), Schema.from_dict(outputs) if outputs else None)


def infer_signature(input_example: Any, output: Any = None, *, optional: Iterable[str] = ()) -> Signature:
    """The signature of a model from an example of its input (and of its output).

    Args:
        input_example: A pandas DataFrame, a NumPy array, or a dict of arrays.
        output: What the model returned for it, if known (arrays, Series or DataFrames).
        optional: Column or array names the input may leave out.

    Raises:
        InvalidInput: the example is of a kind no schema describes.
    """
    inputs = infer_schema(input_example)
    if optional:
        inputs = inputs.with_optional(*optional)
    return Signature(inputs, infer_schema(output) if output is not None else None)


def infer_schema(data: Any) -> Schema:
    """The schema describing ``data``; see :func:`infer_signature`.

    Raises:
        InvalidInput: ``data`` is not a DataFrame, Series, array or dict of arrays.
    """
    if _is_frame(data):
        return Schema("dataframe", tuple(FieldSpec(str(n), _column_dtype(data[n])) for n in data.columns))
    if _is_series(data) or isinstance(data, np.ndarray | list):
        return Schema("tensor", (_tensor_spec(None, np.asarray(data)),))
    if isinstance(data, Mapping) and data:
        return Schema("tensors", tuple(_tensor_spec(str(k), np.asarray(v)) for k, v in data.items()))
    raise InvalidInput(
        f"Cannot infer a signature from a {type(data).__name__}: "
        "pass a pandas DataFrame, a NumPy array or a dict of arrays"
    )


# -- inference helpers ---------------------------------------------------------------------


def _is_frame(data: Any) -> bool:
    return type(data).__name__ == "DataFrame" and hasattr(data, "columns") and hasattr(data, "dtypes")


def _is_series(data: Any) -> bool:
    return type(data).__name__ == "Series" and hasattr(data, "dtype") and hasattr(data, "to_numpy")


def _column_dtype(column: pd.Series) -> str:
    from pandas.api import types

    if types.is_bool_dtype(column.dtype):
        return "bool"
    if types.is_numeric_dtype(column.dtype) or types.is_datetime64_dtype(column.dtype):
        return np.dtype(_numpy_dtype(column.dtype)).name
    if types.is_string_dtype(column):
        return "string"
    return "object"


def _tensor_spec(name: str | None, array: np.ndarray) -> FieldSpec:
    if array.ndim == 0:
        raise InvalidInput(f"Cannot infer a signature from a scalar{f' ({name})' if name else ''}")
    dtype = "object" if array.dtype == object else array.dtype.name
    return FieldSpec(name, dtype, (-1, *array.shape[1:]))


# -- enforcement ---------------------------------------------------------------------------


def _enforce_frame(fields: tuple[FieldSpec, ...], data: Any) -> pd.DataFrame:
    import pandas as pd

    if isinstance(data, Mapping) and not _is_frame(data):
        data = pd.DataFrame(dict(data))
    if not _is_frame(data):
        raise InvalidInput(
            f"This model takes a DataFrame with columns {[f.name for f in fields]}, got {type(data).__name__}"
        )
    columns = {}
    for spec in fields:
        if spec.name in data.columns:
            columns[spec.name] = _cast_column(spec, data[spec.name])
        elif spec.optional:
            columns[spec.name] = _missing_column(spec, data.index)
        else:
            raise InvalidInput(
                f"Input is missing the required column {spec.name!r} (has {list(data.columns)})"
            )
    return pd.DataFrame(columns, index=data.index)


def _cast_column(spec: FieldSpec, column: pd.Series) -> pd.Series:
    from pandas.api import types

    expected = spec.dtype
    if expected == "object" or _column_dtype(column) == expected:
        return column
    if expected == "string":
        raise InvalidInput(f"Column {spec.name!r} must hold strings, got dtype {column.dtype}")
    if expected.startswith("datetime64") and types.is_datetime64_any_dtype(column.dtype):
        return column.astype(expected)
    _check_cast(f"Column {spec.name!r}", _numpy_dtype(column.dtype), expected)
    return column.astype(expected)


def _numpy_dtype(dtype: Any) -> Any:
    """The NumPy dtype behind a pandas nullable dtype (``Int64`` -> ``int64``); others unchanged."""
    return getattr(dtype, "numpy_dtype", dtype)


def _missing_column(spec: FieldSpec, index: pd.Index) -> pd.Series:
    import pandas as pd

    if spec.dtype.startswith("float"):
        return pd.Series(np.nan, index=index, dtype=spec.dtype)
    return pd.Series(None, index=index, dtype=object)


def _enforce_array(spec: FieldSpec, data: Any) -> np.ndarray:
    label = f"Array {spec.name!r}" if spec.name else "Input"
    if not isinstance(data, np.ndarray):
        data = data.to_numpy() if _is_frame(data) or _is_series(data) else np.asarray(data)
    shape = spec.shape or ()
    if data.ndim != len(shape) or any(
        want not in (-1, got) for want, got in zip(shape, data.shape, strict=True)
    ):
        raise InvalidInput(f"{label} must have shape {list(shape)} (-1: any size), got {list(data.shape)}")
    if spec.dtype in ("object", data.dtype.name):
        return data
    _check_cast(label, data.dtype, spec.dtype)
    return data.astype(spec.dtype)


def _enforce_arrays(fields: tuple[FieldSpec, ...], data: Any) -> dict[str, np.ndarray]:
    if not isinstance(data, Mapping):
        raise InvalidInput(
            f"This model takes a dict of arrays {[f.name for f in fields]}, got {type(data).__name__}"
        )
    out = {}
    for spec in fields:
        if spec.name in data:
            out[str(spec.name)] = _enforce_array(spec, data[spec.name])
        elif not spec.optional:
            raise InvalidInput(f"Input is missing the required array {spec.name!r} (has {sorted(data)})")
    return out


def _check_cast(label: str, found: Any, expected: str) -> None:
    """Refuse casts that can lose information (float to int, int64 to int32, text to numbers)."""
    try:
        safe = np.can_cast(np.dtype(found), np.dtype(expected), casting="safe")
    except TypeError:
        safe = False
    if not safe:
        raise InvalidInput(f"{label} has dtype {found}, which cannot be safely cast to {expected}")
