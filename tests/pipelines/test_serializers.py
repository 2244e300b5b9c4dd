"""Typed artifacts: the conformance suite on every registered serializer, then the registry."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from conveyor.artifacts import ArtifactStore
from conveyor.errors import InvalidInput
from conveyor.pipelines import serializers
from conveyor.pipelines.serializers import (
    ArtifactRef,
    JsonSerializer,
    NpySerializer,
    ParquetSerializer,
    PickleFallbackWarning,
    Serializer,
    SerializerRegistry,
    as_file,
)
from conveyor.testing.serializer_checks import (
    NO_SAMPLES,
    SerializerChecks,
    TinyModel,
    assert_same_value,
    builtin_samples,
    registered_cases,
)

# pyarrow 25 converts time-zone-aware columns through pandas' deprecated ``Series.values``;
# the warning is pyarrow's to fix (it is a DeprecationWarning, hidden outside tests).
pytestmark = pytest.mark.filterwarnings("ignore:Series.values returning an ndarray:DeprecationWarning")


@pytest.fixture(params=["local", "memory"])
def artifact_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArtifactStore]:
    if request.param == "local":
        yield ArtifactStore(str(tmp_path / "artifacts"))
        return
    root = f"memory://serializers-{uuid4().hex}"
    yield ArtifactStore(root)
    fs, path = fsspec.core.url_to_fs(root)
    if fs.exists(path):
        fs.rm(path, recursive=True)


@pytest.mark.parametrize(
    ("serializer", "sample"), registered_cases(serializers.default_registry, builtin_samples())
)
class TestRegisteredSerializers(SerializerChecks):
    """Every serializer in the default registry, discovered, with every sample of it."""

    @pytest.fixture
    def artifact_store(self, artifact_store: ArtifactStore) -> ArtifactStore:
        return artifact_store


def test_every_registered_serializer_has_samples() -> None:
    cases = registered_cases(serializers.default_registry, builtin_samples())
    assert not [case.id for case in cases if case.values[1] is NO_SAMPLES]
    assert {case.values[0].name for case in cases} == set(serializers.registry)


def test_a_serializer_without_samples_gets_a_failing_case() -> None:
    registry = SerializerRegistry()
    registry.register(JsonSerializer())
    [case] = registered_cases(registry, {})
    assert case.id == "json-no-samples"
    assert case.values[1] is NO_SAMPLES


@pytest.mark.parametrize(
    ("name", "sample"),
    [(name, value) for name, values in builtin_samples().items() if name != "pickle" for value in values],
)
def test_each_sample_is_routed_to_its_serializer(name: str, sample: Any) -> None:
    assert serializers.for_value(sample).name == name


# -- selection -------------------------------------------------------------------------


def test_default_order() -> None:
    assert list(serializers.registry) == [
        "parquet",
        "npy",
        "npy-scalar",
        "json",
        "conveyor-model",
        "joblib",
        "pickle",
    ]


@pytest.mark.parametrize(
    "value",
    [(1, 2), {1, 2}, {"a": (1,)}, {1: "int key"}, np.float64(1.5), True.__class__, object()],
    ids=["tuple", "set", "nested-tuple", "int-key", "numpy-float", "class", "object"],
)
def test_json_refuses_values_that_would_come_back_different(value: Any) -> None:
    assert not JsonSerializer().accepts(value)


def test_json_refuses_subclasses_and_cycles() -> None:
    from collections import OrderedDict, defaultdict
    from enum import IntEnum

    class Level(IntEnum):
        LOW = 1

    cycle: list[Any] = []
    cycle.append(cycle)
    for value in (OrderedDict(a=1), defaultdict(int), Level.LOW, cycle):
        assert not JsonSerializer().accepts(value), value
    assert "contains itself" in (JsonSerializer().refusal(cycle) or "")


def test_json_bytes_are_canonical() -> None:
    json = JsonSerializer()
    one = b"".join(json.dump({"b": [1.0, float("nan")], "a": "é"}))
    other = b"".join(json.dump({"a": "é", "b": [1.0, float("nan")]}))
    assert one == other == b'{"a":"\\u00e9","b":[1.0,NaN]}'


def test_json_loads_keys_sorted() -> None:
    json = JsonSerializer()
    assert list(json.load(b"".join(json.dump({"b": 1, "a": 2})))) == ["a", "b"]


def test_refusal_names_the_type_and_allow_pickle() -> None:
    with pytest.raises(InvalidInput) as caught:
        serializers.for_value({1, 2, 3})
    message = str(caught.value)
    assert "builtins.set" in message
    assert "allow_pickle=True" in message
    assert "parquet, npy, npy-scalar, json, conveyor-model, joblib" in message


def test_refusal_says_where_in_nested_data() -> None:
    with pytest.raises(InvalidInput, match=r"value\['scores'\]\[1\] is a builtins.tuple.*return a list"):
        serializers.for_value({"scores": [1, (2, 3)]})


def test_pickle_with_opt_in_warns_and_round_trips(artifact_store: ArtifactStore) -> None:
    value = {3, 1, 2}
    with pytest.warns(PickleFallbackWarning, match=r"builtins\.set.*allow_pickle=True"):
        chosen = serializers.for_value(value, allow_pickle=True)
    assert chosen.name == "pickle"
    with pytest.warns(PickleFallbackWarning):
        ref = serializers.save(artifact_store, "out/value.pkl", value, allow_pickle=True)
    assert ref.serializer == "pickle"
    assert serializers.load_ref(artifact_store, ref) == value


def test_opt_in_does_not_change_what_other_values_get() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert serializers.for_value([1, 2], allow_pickle=True).name == "json"


def test_opt_in_without_a_pickle_serializer_still_refuses() -> None:
    registry = SerializerRegistry()
    registry.register(JsonSerializer())
    with pytest.raises(InvalidInput, match=r"builtins\.set"):
        registry.for_value({1}, allow_pickle=True)


def test_object_arrays_need_pickle() -> None:
    value = np.array([1, "a"], dtype=object)
    with pytest.raises(InvalidInput, match=r"npy: dtype object holds Python objects"):
        serializers.for_value(value)


def test_array_subclasses_are_refused() -> None:
    with pytest.raises(InvalidInput, match=r"numpy\.asarray"):
        serializers.for_value(np.ma.array([1, 2], mask=[False, True]))


def test_numpy_scalars_keep_their_type(artifact_store: ArtifactStore) -> None:
    ref = serializers.save(artifact_store, "x.npy", np.float64(0.1))
    assert ref.serializer == "npy-scalar"
    loaded = serializers.load_ref(artifact_store, ref)
    assert type(loaded) is np.float64 and loaded == np.float64(0.1)
    assert np.load(io.BytesIO(artifact_store.read_bytes("x.npy"))).shape == ()


def test_models_go_to_joblib_and_classes_do_not() -> None:
    assert serializers.for_value(TinyModel().fit([[1]], [1])).name == "joblib"
    with pytest.raises(InvalidInput):
        serializers.for_value(TinyModel)


def test_sklearn_transformers_are_models() -> None:
    preprocessing = pytest.importorskip("sklearn.preprocessing")
    scaler = preprocessing.StandardScaler().fit([[1.0], [3.0]])
    assert not hasattr(scaler, "predict")
    assert serializers.for_value(scaler).name == "joblib"


def test_unpicklable_value_is_invalid_input(artifact_store: ArtifactStore) -> None:
    import threading

    with pytest.raises(InvalidInput, match=r"Cannot pickle a value of type _thread\.lock"):
        serializers.by_name("pickle").save(artifact_store, "lock.pkl", threading.Lock())
    assert not artifact_store.exists("lock.pkl")


def test_choosing_a_serializer_imports_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "from conveyor.pipelines import serializers\n"
        "assert serializers.for_value({'a': [1]}).name == 'json'\n"
        "heavy = [m for m in ('pandas', 'pyarrow', 'joblib', 'numpy', 'sklearn') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- the registry ----------------------------------------------------------------------


class _Text(Serializer):
    name = "text"
    version = 1
    extension = ".txt"
    types = (str,)

    def dump(self, value: Any) -> Iterator[bytes]:
        yield value.encode("utf-8")

    def load(self, data: bytes | Any) -> Any:
        return as_file(data).read().decode("utf-8")


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(InvalidInput) as caught:
        serializers.by_name("feather")
    message = str(caught.value)
    assert "'feather'" in message
    for name in serializers.registry:
        assert name in message


def test_registering_a_taken_name_needs_clobber() -> None:
    registry = SerializerRegistry()
    first = JsonSerializer()
    registry.register(first)
    with pytest.raises(InvalidInput, match=r"'json' is already registered.*clobber=True"):
        registry.register(JsonSerializer())
    assert registry.by_name("json") is first
    replacement = JsonSerializer()
    registry.register(replacement, clobber=True)
    assert registry.by_name("json") is replacement


def test_registry_view_is_read_only() -> None:
    with pytest.raises(TypeError):
        serializers.registry["json"] = JsonSerializer()  # type: ignore[index]


def test_register_before_changes_the_order() -> None:
    registry = SerializerRegistry()
    registry.register(NpySerializer())
    registry.register(JsonSerializer())
    view = registry.serializers
    assert registry.for_value("hello").name == "json"
    registry.register(_Text(), before="json")
    assert list(view) == ["npy", "text", "json"]
    assert registry.for_value("hello").name == "text"
    assert registry.for_value([1]).name == "json"
    registry.register(_Text(), clobber=True)  # replacing keeps the place
    assert list(view) == ["npy", "text", "json"]
    registry.register(_Text(), clobber=True, before="npy")
    assert list(view) == ["text", "npy", "json"]
    with pytest.raises(InvalidInput, match="before 'avro'"):
        registry.register(ParquetSerializer(), before="avro")


@pytest.mark.parametrize(
    ("attribute", "value"),
    [
        ("name", "Bad Name"),
        ("name", ""),
        ("version", 0),
        ("version", True),
        ("version", "1"),
        ("extension", "txt"),
    ],
)
def test_register_checks_the_declaration(attribute: str, value: Any) -> None:
    broken = type("Broken", (_Text,), {attribute: value})()
    with pytest.raises(InvalidInput, match=attribute):
        SerializerRegistry().register(broken)


def test_register_refuses_non_serializers() -> None:
    with pytest.raises(InvalidInput, match="Serializer instance"):
        SerializerRegistry().register(object())  # type: ignore[arg-type]


def test_abstract_hooks_are_enforced() -> None:
    class Incomplete(Serializer):
        name, version, extension = "incomplete", 1, ".x"

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()  # type: ignore[abstract]


def test_save_checks_the_value_fits_the_serializer(artifact_store: ArtifactStore) -> None:
    with pytest.raises(InvalidInput, match=r"'npy' cannot store a value of type builtins\.str"):
        NpySerializer().save(artifact_store, "a.npy", "text")
    assert not artifact_store.exists("a.npy")


def test_load_ref_with_unregistered_serializer(artifact_store: ArtifactStore) -> None:
    ref = serializers.save(artifact_store, "a.json", [1])
    stray = ArtifactRef(**{**ref.to_dict(), "serializer": "avro"})
    with pytest.raises(InvalidInput, match="Unknown serializer 'avro'"):
        serializers.load_ref(artifact_store, stray)


def test_ref_path_is_normalised_and_checked(artifact_store: ArtifactStore) -> None:
    assert serializers.save(artifact_store, "./a/./b.json", 1).path == "a/b.json"
    with pytest.raises(InvalidInput, match="Invalid path"):
        serializers.save(artifact_store, "../escape.json", 1)


@pytest.mark.parametrize(
    "data",
    [
        {"path": "a", "serializer": "json", "version": 1, "size": 1, "sha256": "0" * 64},
        {
            "path": "a",
            "serializer": "json",
            "version": "1",
            "size": 1,
            "sha256": "0" * 64,
            "python_type": "x",
        },
        {
            "path": "a",
            "serializer": "json",
            "version": True,
            "size": 1,
            "sha256": "0" * 64,
            "python_type": "x",
        },
    ],
    ids=["missing-field", "string-version", "bool-version"],
)
def test_ref_from_dict_validates(data: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        ArtifactRef.from_dict(data)


# -- Parquet ---------------------------------------------------------------------------


def _with_attrs(frame: pd.DataFrame, **attrs: Any) -> pd.DataFrame:
    frame.attrs.update(attrs)
    return frame


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (pd.DataFrame([[1, 2]], columns=["a", "a"]), "duplicate column labels 'a'"),
        (pd.DataFrame([[1, 2]], columns=[1, "a"]), "column labels of kind 'mixed-integer'"),
        (pd.DataFrame([[1, 2]], columns=[True, False]), "column labels of kind 'boolean'"),
        (pd.DataFrame({"a": [1]}, index=pd.Index([5], name=0)), "index name 0 is not a str"),
        (pd.DataFrame({"o": pd.Series([[1], [2]], dtype=object)}), "object column 'o' holds mixed"),
        (pd.DataFrame({"a": [1, 2]}, index=pd.Index(["x", 1], dtype=object)), "object index"),
        (
            _with_attrs(pd.DataFrame({"a": [1]}), window=(1, 2)),
            r"DataFrame\.attrs\['window'\] is a builtins\.tuple",
        ),
    ],
    ids=[
        "duplicates",
        "mixed-labels",
        "bool-labels",
        "int-index-name",
        "object-lists",
        "object-index",
        "tuple-in-attrs",
    ],
)
def test_parquet_refuses_frames_that_would_come_back_different(frame: pd.DataFrame, reason: str) -> None:
    assert not ParquetSerializer().accepts(frame)
    with pytest.raises(InvalidInput, match=reason):
        serializers.for_value(frame)
    with pytest.warns(PickleFallbackWarning):
        assert serializers.for_value(frame, allow_pickle=True).name == "pickle"


def test_parquet_object_strings_follow_what_pandas_loads() -> None:
    frame = pd.DataFrame({"o": pd.Series(["a", "b"], dtype=object)})
    if pa.array(["x"]).to_pandas().dtype == object:  # pandas 2: strings load as objects
        assert ParquetSerializer().accepts(frame)
        assert_same_value(frame, ParquetSerializer().load(b"".join(ParquetSerializer().dump(frame))))
    else:  # pandas 3: they would load as dtype str
        with pytest.raises(InvalidInput, match="object column 'o' holds string values"):
            serializers.for_value(frame)


def test_parquet_conversion_failure_is_invalid_input(artifact_store: ArtifactStore) -> None:
    frame = pd.DataFrame({"s": pd.arrays.SparseArray([0, 1])})
    with pytest.raises(InvalidInput, match="Cannot convert this DataFrame"):
        serializers.save(artifact_store, "sparse.parquet", frame)
    assert not artifact_store.exists("sparse.parquet")


def test_parquet_bytes_do_not_depend_on_memory_layout() -> None:
    grid = np.arange(12.0).reshape(4, 3)
    layouts = [
        pd.DataFrame(grid, columns=list("xyz")),
        pd.DataFrame(np.asfortranarray(grid), columns=list("xyz")),
        pd.DataFrame({name: grid[:, i].copy() for i, name in enumerate("xyz")}),
    ]
    hashes = {hashlib.sha256(b"".join(ParquetSerializer().dump(frame))).hexdigest() for frame in layouts}
    assert len(hashes) == 1


def test_parquet_bytes_do_not_depend_on_chunking() -> None:
    values = pa.array(np.arange(100_000))
    codes = pa.array([i % 5 for i in range(100_000)]).dictionary_encode()
    whole = pa.table({"v": values, "c": codes})
    pieces = pa.concat_tables([whole.slice(0, 3), whole.slice(3, 50_000), whole.slice(50_003)])
    assert pieces.column("v").num_chunks == 3
    parquet = ParquetSerializer()
    assert b"".join(parquet.dump(whole)) == b"".join(parquet.dump(pieces))


def test_parquet_has_no_timestamps_or_hosts_in_metadata() -> None:
    import pyarrow.parquet as pq

    data = b"".join(ParquetSerializer().dump(pd.DataFrame({"a": [1]})))
    metadata = pq.read_metadata(pa.BufferReader(data))
    assert set(metadata.metadata) == {b"ARROW:schema", b"pandas", b"conveyor"}
    assert metadata.created_by.startswith("parquet-cpp-arrow version")


def test_parquet_streams_one_row_group_at_a_time() -> None:
    import pyarrow.parquet as pq

    frame = pd.DataFrame({"x": np.arange(2_500_000, dtype="float64")})
    chunks = list(ParquetSerializer().dump(frame))
    # Row groups of at most 1 Mi rows, each handed on as soon as it is encoded, then the footer.
    assert pq.read_metadata(pa.BufferReader(b"".join(chunks))).num_row_groups == 3
    assert len(chunks) == 4
    assert max(len(chunk) for chunk in chunks) < 16 << 20


def test_parquet_refuses_tables_using_reserved_metadata() -> None:
    table = pa.table({"a": [1]}, metadata={"conveyor": "mine"})
    with pytest.raises(InvalidInput, match="reserved"):
        serializers.for_value(table)


def test_parquet_keeps_categoricals_exactly(artifact_store: ArtifactStore) -> None:
    frame = pd.DataFrame(
        {
            "ints": pd.Categorical([1, 2, None], categories=[3, 2, 1], ordered=True),
            "floats": pd.Categorical([0.5, 0.5, 1.5], categories=[1.5, 0.5, 9.5]),
            "days": pd.Categorical(pd.to_datetime(["2024-01-02", None, "2024-01-01"])),
        },
        index=pd.CategoricalIndex(["b", "a", "b"], categories=["c", "b", "a"], name="key"),
    )
    ref = serializers.save(artifact_store, "cats.parquet", frame)
    assert_same_value(frame, serializers.load_ref(artifact_store, ref))


def test_parquet_file_is_readable_by_plain_pandas(artifact_store: ArtifactStore) -> None:
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}, index=pd.Index([3, 4], name="i"))
    serializers.save(artifact_store, "plain.parquet", frame)
    pd.testing.assert_frame_equal(
        pd.read_parquet(io.BytesIO(artifact_store.read_bytes("plain.parquet"))), frame
    )


# -- NumPy -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12.0).reshape(3, 4),
        np.asfortranarray(np.arange(12.0).reshape(3, 4)),
        np.arange(24).reshape(4, 6)[::2, ::3],
        np.array(7, dtype="uint16"),
        np.zeros((2, 0)),
        np.zeros(2, dtype=[(f"field{i}", "f8") for i in range(1000)]),  # header needs format 2.0
        np.zeros(2, dtype=[("поле", "f8")]),  # non-Latin-1 field name needs format 3.0
    ],
    ids=["c-order", "fortran", "strided", "0-d", "empty", "big-header", "utf8-field"],
)
def test_npy_bytes_match_numpy_save(array: np.ndarray) -> None:
    expected = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # numpy notes the 3.0 format
        np.save(expected, array, allow_pickle=False)
    assert b"".join(NpySerializer().dump(array)) == expected.getvalue()


def test_npy_streams_views_without_copying() -> None:
    array = np.arange(4_000_000, dtype="float64")  # 32 MB
    _header, *chunks = NpySerializer().dump(array)
    assert len(chunks) == 4
    assert all(isinstance(chunk, memoryview) and not chunk.readonly for chunk in chunks)
    assert np.shares_memory(np.frombuffer(chunks[0], dtype=np.uint8), array)


def test_npy_refuses_new_style_string_dtype() -> None:
    if not hasattr(np.dtypes, "StringDType"):
        pytest.skip("StringDType arrived in NumPy 2.0")
    value = np.array(["a", "b"], dtype=np.dtypes.StringDType())
    assert not NpySerializer().accepts(value)
