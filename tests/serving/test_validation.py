"""The signature check both protocols share: every problem found, named by field and kind."""

from __future__ import annotations

import numpy as np
import pytest

from conveyor.models import FieldSpec, Schema, Signature
from conveyor.serving.errors import RequestRejected
from conveyor.serving.validation import TENSOR_INPUT, InputSpec


def frame_spec(**options: object) -> InputSpec:
    schema = Schema(
        "dataframe",
        (
            FieldSpec("age", "float64"),
            FieldSpec("visits", "int32"),
            FieldSpec("plan", "string"),
            FieldSpec("active", "bool"),
            FieldSpec("income", "float64", optional=True),
        ),
    )
    return InputSpec.from_signature(Signature(schema), **options)  # type: ignore[arg-type]


def problems(spec: InputSpec, raw: dict[str, object]) -> set[tuple[str, str]]:
    with pytest.raises(RequestRejected) as raised:
        spec.validate(raw)
    return {(p.field, p.problem) for p in raised.value.problems}


GOOD = {"age": [31.5, 40], "visits": [1, 2], "plan": ["gold", "basic"], "active": [True, False]}


def test_good_rows_are_cast_ordered_and_completed() -> None:
    columns = frame_spec().validate({"plan": GOOD["plan"], **{k: v for k, v in GOOD.items() if k != "plan"}})
    assert list(columns) == ["age", "visits", "plan", "active", "income"]
    assert columns["age"].dtype == np.float64 and columns["visits"].dtype == np.int32
    assert columns["plan"].dtype == object and columns["plan"].tolist() == ["gold", "basic"]
    assert np.isnan(columns["income"]).all()  # optional, absent: missing values


def test_every_problem_is_reported_at_once() -> None:
    raw = {
        "age": ["31", 40],  # text in a number column
        "visits": [1.5, 2],  # a fraction in an integer column
        "active": [1, 0],  # numbers in a boolean column
        "colour": ["red", "blue"],  # not in the signature
    }
    assert problems(frame_spec(), raw) == {
        ("age", "type"),
        ("visits", "type"),
        ("active", "type"),
        ("plan", "missing"),
        ("colour", "unknown"),
    }


@pytest.mark.parametrize(
    ("field", "values", "problem"),
    [
        ("age", [None, 40.0], "nan"),
        ("visits", [None, 1], "nan"),
        ("plan", [None, "gold"], "nan"),
        ("plan", [1, "gold"], "type"),
        ("age", [[1.0, 2.0], [3.0, 4.0]], "shape"),
        ("age", [[1.0], [2.0, 3.0]], "shape"),
        ("age", "31", "shape"),
        ("visits", [2**40, 1], "type"),  # out of int32's range
        ("age", [1.0], "shape"),  # one row where the others have two
    ],
)
def test_one_bad_field(field: str, values: object, problem: str) -> None:
    assert problems(frame_spec(), {**GOOD, field: values}) == {(field, problem)}


def test_nan_policy() -> None:
    assert np.isnan(frame_spec().validate({**GOOD, "income": [None, 1.0]})["income"][0])  # optional column
    assert np.isnan(frame_spec(allow_nan=True).validate({**GOOD, "age": [None, 1.0]})["age"][0])
    assert frame_spec(allow_nan=["age"]).validate({**GOOD, "age": [float("nan"), 1.0]})["age"].size == 2
    assert np.isnan(frame_spec(flavor="xgboost").validate({**GOOD, "age": [None, 1.0]})["age"][0])
    assert problems(frame_spec(allow_nan=False), {**GOOD, "income": [None, 1.0]}) == {("income", "nan")}


def test_empty_batch_and_unknown_policy() -> None:
    assert problems(frame_spec(), {k: [] for k in GOOD}) == {("", "empty")}
    columns = frame_spec(unknown="ignore").validate({**GOOD, "customer_id": ["a", "b"]})
    assert "customer_id" not in columns


def test_typed_arrays_follow_the_same_rules() -> None:
    spec = frame_spec()
    ok = spec.validate({**GOOD, "age": np.array([1, 2], dtype=np.int64), "visits": np.array([1, 2], np.int8)})
    assert ok["age"].dtype == np.float64 and ok["visits"].dtype == np.int32
    assert problems(spec, {**GOOD, "visits": np.array([1.0, 2.0])}) == {("visits", "type")}
    assert problems(spec, {**GOOD, "plan": np.array([1, 2])}) == {("plan", "type")}


def test_tensor_signatures_check_trailing_dimensions() -> None:
    spec = InputSpec.from_signature(Signature(Schema("tensor", (FieldSpec(None, "float32", (-1, 3)),))))
    columns = spec.validate({"anything": [[1, 2, 3], [4, 5, 6]]})
    assert columns[TENSOR_INPUT].shape == (2, 3) and columns[TENSOR_INPUT].dtype == np.float32
    assert problems(spec, {"x": [[1, 2], [3, 4]]}) == {(TENSOR_INPUT, "shape")}


def test_datetimes_take_iso_text() -> None:
    schema = Schema("dataframe", (FieldSpec("at", "datetime64[ns]"),))
    spec = InputSpec.from_signature(Signature(schema))
    assert spec.validate({"at": ["2026-03-01T10:00:00"]})["at"].dtype == np.dtype("datetime64[ns]")
    assert problems(spec, {"at": ["yesterday"]}) == {("at", "type")}


def test_no_signature_passes_columns_through() -> None:
    spec = InputSpec.from_signature(None)
    assert list(spec.validate({"b": [1], "a": [2]})) == ["b", "a"]
    with pytest.raises(RequestRejected):
        spec.validate({"a": [1, 2], "b": [1]})


def test_synthetic_row_fits_the_spec() -> None:
    spec = frame_spec()
    assert spec.validate(spec.synthetic_row())["plan"].tolist() == [""]
