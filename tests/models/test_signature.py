"""Signatures: inferred from examples, enforced by LoadedModel.predict with named errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conveyor import models
from conveyor.errors import InvalidInput
from conveyor.models import FieldSpec, Schema, Signature, infer_signature

Data = tuple[pd.DataFrame, np.ndarray]


@pytest.fixture
def loaded(frame: Data, tmp_path: Path) -> models.LoadedModel:
    from sklearn.linear_model import LinearRegression

    X, y = frame
    X = X.assign(age=X["age"].round().astype(np.int64))
    signature = infer_signature(X, optional=["income"])
    models.save(LinearRegression().fit(X.fillna(0), y), tmp_path / "m", signature=signature)
    return models.load(tmp_path / "m")


def test_inference_from_each_kind_of_example() -> None:
    frame = pd.DataFrame({"n": [1, 2], "x": [0.5, 1.5], "s": ["a", "b"], "b": [True, False]})
    inputs = infer_signature(frame).inputs
    assert inputs.kind == "dataframe"
    assert [(f.name, f.dtype) for f in inputs.fields] == [
        ("n", "int64"),
        ("x", "float64"),
        ("s", "string"),
        ("b", "bool"),
    ]
    tensor = infer_signature(np.zeros((3, 4, 2), dtype=np.float32)).inputs
    assert tensor == Schema("tensor", (FieldSpec(None, "float32", (-1, 4, 2)),))
    arrays = infer_signature({"ids": np.arange(3), "img": np.zeros((3, 8))}).inputs
    assert arrays.kind == "tensors"
    assert [f.shape for f in arrays.fields] == [(-1,), (-1, 8)]
    with pytest.raises(InvalidInput, match=r"Cannot infer a signature from a str"):
        infer_signature("text")


def test_signature_round_trips_through_the_manifest(loaded: models.LoadedModel) -> None:
    assert loaded.signature is not None
    assert [(f.name, f.dtype, f.optional) for f in loaded.signature.inputs.fields] == [
        ("age", "int64", False),
        ("income", "float64", True),
    ]
    assert Signature.from_dict(loaded.signature.to_dict()) == loaded.signature


def test_missing_required_column_is_named(loaded: models.LoadedModel, frame: Data) -> None:
    with pytest.raises(InvalidInput, match=r"missing the required column 'age'"):
        loaded.predict(frame[0][["income"]])


def test_unsafe_cast_is_refused(loaded: models.LoadedModel) -> None:
    with pytest.raises(
        InvalidInput, match=r"Column 'age' has dtype float64, which cannot be safely cast to int64"
    ):
        loaded.predict(pd.DataFrame({"age": [40.5], "income": [3.0]}))
    with pytest.raises(InvalidInput, match=r"Column 'income'.*cannot be safely cast"):
        loaded.predict(pd.DataFrame({"age": [40], "income": ["rich"]}))


def test_extra_columns_dropped_order_and_safe_casts_fixed(loaded: models.LoadedModel) -> None:
    data = pd.DataFrame({"id": ["x", "y"], "income": np.array([50, 60], dtype=np.int32), "age": [30, 50]})
    expected = loaded.raw.predict(pd.DataFrame({"age": [30, 50], "income": [50.0, 60.0]}))
    np.testing.assert_allclose(loaded.predict(data), expected)


def test_nullable_pandas_dtypes_are_their_numpy_types(loaded: models.LoadedModel) -> None:
    data = pd.DataFrame({"age": pd.array([30, 50], dtype="Int64"), "income": pd.array([1, 2], dtype="Int32")})
    assert infer_signature(data).inputs.fields[0].dtype == "int64"
    enforced = loaded.signature.inputs.enforce(data)  # type: ignore[union-attr]
    assert enforced["income"].dtype == np.float64


def test_optional_column_may_be_absent(loaded: models.LoadedModel) -> None:
    enforced = loaded.signature.inputs.enforce(pd.DataFrame({"age": [30]}))  # type: ignore[union-attr]
    assert list(enforced.columns) == ["age", "income"]
    assert enforced["income"].isna().all()


def test_tensor_shape_and_dtype_are_enforced() -> None:
    schema = infer_signature(np.zeros((2, 3), dtype=np.float64)).inputs
    assert schema.enforce(np.ones((5, 3), dtype=np.int32)).dtype == np.float64
    with pytest.raises(InvalidInput, match=r"shape \[-1, 3\].*got \[5, 4\]"):
        schema.enforce(np.ones((5, 4)))
    with pytest.raises(InvalidInput, match=r"complex128, which cannot be safely cast to float64"):
        schema.enforce(np.ones((5, 3), dtype=np.complex128))
    arrays = infer_signature({"a": np.zeros(2), "b": np.zeros(2)}, optional=["b"]).inputs
    assert set(arrays.enforce({"a": [1.0], "c": [2.0]})) == {"a"}
    with pytest.raises(InvalidInput, match=r"missing the required array 'a'"):
        arrays.enforce({"b": [1.0]})


def test_marking_an_unknown_column_optional_is_refused() -> None:
    with pytest.raises(InvalidInput, match=r"Cannot mark \['zip'\] optional"):
        infer_signature(pd.DataFrame({"a": [1]}), optional=["zip"])
