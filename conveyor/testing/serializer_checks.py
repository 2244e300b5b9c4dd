"""Conformance checks for pipeline artifact serializers, as a pytest mixin class.

Every serializer must keep the promises of
:class:`~conveyor.pipelines.serializers.Serializer`: values round-trip with their type,
the recorded size and SHA-256 are those of the stored bytes, equal values give equal
bytes (across processes too, when the serializer says it is ``deterministic``), and a
corrupted artifact fails to load with ``IntegrityError``.

Conveyor runs the suite over everything in the serializer registry, so a newly
registered serializer is checked the day it is added, and one without sample values
fails (see :func:`registered_cases`). To check your own, subclass :class:`SerializerChecks`
and provide three fixtures (or parametrize ``serializer`` and ``sample`` directly)::

    @pytest.mark.parametrize(("serializer", "sample"), [(MySerializer(), my_value)])
    class TestMySerializer(SerializerChecks):
        @pytest.fixture
        def artifact_store(self, tmp_path):
            return ArtifactStore(str(tmp_path))

Override :meth:`SerializerChecks.assert_same` if :func:`assert_same_value` cannot
compare your values.
"""

from __future__ import annotations

import copy
import datetime
import decimal
import hashlib
import io
import math
import os
import pickle
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from conveyor.artifacts import ArtifactStore
from conveyor.errors import ArtifactNotFound, IntegrityError, InvalidInput
from conveyor.pipelines.serializers import ArtifactRef, Serializer, SerializerRegistry, type_name
from conveyor.pipelines.serializers._base import is_instance_of

__all__ = [
    "NO_SAMPLES",
    "SerializerChecks",
    "TinyModel",
    "assert_same_value",
    "builtin_samples",
    "registered_cases",
]

#: Stands in for the sample of a registered serializer that has none; checks then fail.
NO_SAMPLES: Any = type("NoSamples", (), {"__repr__": lambda self: "NO_SAMPLES"})()

#: Run in a fresh interpreter: unpickle (serializer, value) from stdin, print the SHA-256
#: of the dump.
_CHILD = """
import hashlib, pickle, sys
serializer, value = pickle.load(sys.stdin.buffer)
digest = hashlib.sha256()
for chunk in serializer.dump(value):
    digest.update(chunk)
print(digest.hexdigest())
"""


class TinyModel:
    """A model in the duck-typed sense (``fit`` and ``predict``), without scikit-learn."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale

    def fit(self, x: Any, y: Any) -> TinyModel:
        self.weights_ = [float(v) * self.scale for v in y]
        return self

    def predict(self, x: Any) -> list[float]:
        return [sum(self.weights_) * float(v) for v in x]


class _Opaque:
    """A plain object with state; only pickle stores it."""

    def __init__(self, label: str, parts: tuple[int, ...]) -> None:
        self.label = label
        self.parts = parts


def builtin_samples() -> dict[str, list[Any]]:
    """Sample values for each built-in serializer, chosen to hit the cases that go wrong.

    Imports pandas, pyarrow and NumPy (and scikit-learn when installed), so call it from
    tests only.
    """
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    rich = pd.DataFrame(
        {
            "int32": np.arange(4, dtype="int32"),
            "float": [1.5, np.nan, -0.0, np.inf],
            "text": ["a", "é", None, "d"],
            "category": pd.Categorical(["x", "y", "x", None], categories=["z", "y", "x"], ordered=True),
            "int_category": pd.Categorical([1, 2, 1, 2], categories=[3, 2, 1]),
            "when": pd.to_datetime(
                ["2024-01-01", "2024-02-29", None, "1999-12-31 23:59:59.123456"], format="ISO8601"
            ),
            "zoned": pd.date_range("2024-03-31", periods=4, freq="h", tz="Europe/Berlin"),
            "delta": pd.to_timedelta([1, 2, None, 4], unit="s"),
            "nullable_int": pd.array([1, None, 3, 4], dtype="Int64"),
            "nullable_bool": pd.array([True, None, False, True], dtype="boolean"),
            "period": pd.period_range("2024-01", periods=4, freq="M"),
            "day": pd.Series([datetime.date(2024, 1, d) for d in (1, 2, 3, 4)], dtype=object),
            "raw": pd.Series([b"\x00", b"ab", None, b""], dtype=object),
            "price": pd.Series([decimal.Decimal("1.25"), None, decimal.Decimal("-3.50"), None], dtype=object),
        },
        index=pd.Index([10, 20, 30, 40], name="row"),
    )
    rich.columns.name = "field"
    rich.attrs["source"] = "conveyor samples"
    multi = pd.DataFrame(
        {1: [0.5, 1.5, 2.5], 2: [3, 4, 5]},
        index=pd.MultiIndex.from_tuples([("a", 1), ("a", 2), ("b", 1)], names=["group", None]),
    )
    layered = pd.DataFrame(
        [[1, 2.0]], columns=pd.MultiIndex.from_tuples([("a", "x"), ("b", "y")], names=["top", "sub"])
    )
    arrow = pa.table(
        {
            "id": pa.chunked_array([[1, 2], [3]], type=pa.int64()),
            "code": pa.chunked_array([pa.array(part).dictionary_encode() for part in ([7, 8], [9])]),
            "tags": pa.array([["a"], [], None], type=pa.list_(pa.string())),
            "point": pa.array([{"x": 1.0, "y": None}, None, {"x": 3.0, "y": 4.0}]),
            "at": pa.array([0, 1, None], type=pa.timestamp("ns", tz="UTC")),
        },
        metadata={"origin": "samples"},
    )
    grid = np.arange(24, dtype="float64").reshape(4, 6)
    models: list[Any] = [TinyModel(2.0).fit([[1], [2]], [3, 4])]
    flavored: list[Any] = []
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError:  # scikit-learn is a test extra; the duck-typed model still runs
        pass
    else:
        features, labels = [[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1]
        flavored.append(LogisticRegression().fit(features, labels))
        flavored.append(make_pipeline(StandardScaler(), LogisticRegression()).fit(features, labels))
    return {
        "parquet": [
            rich,
            multi,
            layered,
            pd.DataFrame(np.arange(6).reshape(2, 3)),
            pd.DataFrame({"a": pd.Series([], dtype="int8"), "b": pd.Series([], dtype="str")}),
            arrow,
        ],
        "npy": [
            grid,
            np.asfortranarray(grid),
            grid[::2, ::3],
            np.array(2.5),
            np.zeros((0, 3), dtype="int16"),
            np.array([1, -2], dtype=">i4"),
            np.array(["", "naïve"]),
            np.array(["2024-01-01", "NaT"], dtype="datetime64[ns]"),
            np.array([(1.0, [1, 2])], dtype=[("x", "f4"), ("pair", "i2", (2,))]),
            np.array([True, False]),
        ],
        "npy-scalar": [
            np.float64(1.5),
            np.int8(-3),
            np.bool_(True),
            np.float32("nan"),
            np.datetime64("2024-01-01T12:00", "ns"),
            np.str_("hé"),
        ],
        "json": [
            {
                "text": "héllo \U0001f600 \ud800",
                "numbers": [0, -1, 2**100, 1.5, -0.0, 1e-300, float("nan"), float("inf"), -float("inf")],
                "flags": [True, False, None],
                "nested": {"z": {}, "a": [], "m": [{"b": 1}, {"a": 2}]},
            },
            "just text",
            0,
            -2.5,
            False,
            None,
            [],
        ],
        "conveyor-model": flavored,
        "joblib": models,
        "pickle": [
            {3, 1, 2},
            (1, "a", None),
            _Opaque("thing", (1, 2)),
            datetime.datetime(2024, 1, 1, 12, 30, tzinfo=datetime.UTC),
        ],
    }


def registered_cases(registry: SerializerRegistry, samples: Mapping[str, Sequence[Any]]) -> list[Any]:
    """``pytest.param(serializer, sample)`` for every registered serializer and its samples.

    Ids read ``json-2``. A serializer with no samples yields one case, ``NAME-no-samples``,
    whose checks fail: registering a serializer without test values turns the build red.
    """
    cases = []
    for name, serializer in registry.serializers.items():
        values = list(samples.get(name, ()))
        if not values:
            cases.append(pytest.param(serializer, NO_SAMPLES, id=f"{name}-no-samples"))
        cases.extend(pytest.param(serializer, value, id=f"{name}-{i}") for i, value in enumerate(values))
    return cases


def assert_same_value(expected: Any, loaded: Any, where: str = "value") -> None:
    """Assert that ``loaded`` is ``expected`` back from storage: same type, same content.

    Exact: floats compare bit for bit (any NaN equals any NaN), frames with
    ``assert_frame_equal`` on exact values, dtypes, index and column types, categories
    and ``attrs``; arrays by dtype, shape, memory order and bytes; dicts ignore key order
    (JSON sorts keys). Arrow tables compare after unifying the expected table's
    dictionaries, since Parquet stores one dictionary per column. Other objects compare
    their ``vars()`` when they have them, else with ``==``.
    """
    assert type(loaded) is type(expected), (
        f"{where}: stored a {type_name(expected)}, loaded a {type_name(loaded)}"
    )
    if is_instance_of(expected, ("pandas.DataFrame",)):
        import pandas as pd

        pd.testing.assert_frame_equal(
            loaded, expected, check_exact=True, check_index_type=True, check_column_type=True
        )
        assert loaded.attrs == expected.attrs, f"{where}: attrs {loaded.attrs!r} != {expected.attrs!r}"
    elif is_instance_of(expected, ("pyarrow.Table",)):
        unified = expected.unify_dictionaries()
        assert loaded.equals(unified, check_metadata=True), f"{where}: {loaded} != {unified}"
    elif is_instance_of(expected, ("numpy.ndarray", "numpy.generic")):
        assert loaded.dtype == expected.dtype, f"{where}: dtype {loaded.dtype} != {expected.dtype}"
        assert loaded.shape == expected.shape, f"{where}: shape {loaded.shape} != {expected.shape}"
        assert loaded.tobytes() == expected.tobytes(), f"{where}: contents differ"
        fortran = expected.flags.f_contiguous and not expected.flags.c_contiguous
        assert loaded.flags.f_contiguous or not fortran, f"{where}: Fortran order was lost"
    elif isinstance(expected, float):
        same = (math.isnan(expected) and math.isnan(loaded)) or (
            expected == loaded and math.copysign(1, expected) == math.copysign(1, loaded)
        )
        assert same, f"{where}: {loaded!r} != {expected!r}"
    elif isinstance(expected, dict):
        assert set(loaded) == set(expected), f"{where}: keys {sorted(loaded)} != {sorted(expected)}"
        for key, item in expected.items():
            assert_same_value(item, loaded[key], f"{where}[{key!r}]")
    elif isinstance(expected, list | tuple):
        assert len(loaded) == len(expected), f"{where}: length {len(loaded)} != {len(expected)}"
        for index, (left, right) in enumerate(zip(expected, loaded, strict=True)):
            assert_same_value(left, right, f"{where}[{index}]")
    elif hasattr(expected, "__dict__") and not isinstance(expected, type):
        assert_same_value(vars(expected), vars(loaded), f"vars({where})")
    else:
        assert loaded == expected, f"{where}: {loaded!r} != {expected!r}"


def _corrupted(data: bytes) -> bytes:
    """``data`` with its middle byte inverted: same size, different hash, even for one byte."""
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    return bytes(flipped)


def _sha256_of_dump(serializer: Serializer, value: Any) -> str:
    digest = hashlib.sha256()
    for chunk in serializer.dump(value):
        digest.update(chunk)
    return digest.hexdigest()


class SerializerChecks:
    """Mixin of conformance tests; see the module docstring for what a subclass provides."""

    @pytest.fixture
    def serializer(self) -> Serializer:
        raise NotImplementedError("subclasses provide or parametrize a serializer")

    @pytest.fixture
    def sample(self) -> Any:
        raise NotImplementedError("subclasses provide or parametrize a sample value it accepts")

    @pytest.fixture
    def artifact_store(self) -> ArtifactStore:
        raise NotImplementedError("subclasses provide an artifact_store fixture on an empty root")

    @pytest.fixture(autouse=True)
    def _has_sample(self, serializer: Serializer, sample: Any) -> None:
        if sample is NO_SAMPLES:
            pytest.fail(
                f"Serializer {serializer.name!r} is registered but has no sample values; add some "
                "(see conveyor.testing.serializer_checks.builtin_samples) so the suite can check it"
            )

    def assert_same(self, expected: Any, loaded: Any) -> None:
        """Assert ``loaded`` equals the stored ``expected``; override for exotic values."""
        assert_same_value(expected, loaded)

    def path_for(self, serializer: Serializer, stem: str = "out") -> str:
        return f"steps/check/{stem}{serializer.extension}"

    # -- declaration -------------------------------------------------------------------

    def test_declares_name_version_and_extension(self, serializer: Serializer) -> None:
        assert isinstance(serializer.name, str) and serializer.name
        assert isinstance(serializer.version, int) and not isinstance(serializer.version, bool)
        assert serializer.version >= 1
        assert serializer.extension.startswith(".") and len(serializer.extension) > 1
        assert isinstance(serializer.deterministic, bool)
        assert serializer.reads_version(serializer.version)

    def test_accepts_its_sample(self, serializer: Serializer, sample: Any) -> None:
        assert serializer.accepts(sample)
        assert serializer.refusal(sample) is None

    # -- bytes -------------------------------------------------------------------------

    def test_dump_yields_bytes_like_chunks(self, serializer: Serializer, sample: Any) -> None:
        chunks = list(serializer.dump(sample))
        assert chunks, "dump() yielded nothing"
        for chunk in chunks:
            assert isinstance(chunk, bytes | bytearray | memoryview), type(chunk)

    def test_load_takes_bytes_or_a_file(self, serializer: Serializer, sample: Any) -> None:
        data = b"".join(bytes(chunk) for chunk in serializer.dump(sample))
        self.assert_same(sample, serializer.load(data))
        self.assert_same(sample, serializer.load(io.BytesIO(data)))

    def test_same_value_gives_same_bytes(self, serializer: Serializer, sample: Any) -> None:
        first = _sha256_of_dump(serializer, sample)
        assert _sha256_of_dump(serializer, sample) == first
        if serializer.deterministic:  # an equal value, not the same object
            assert _sha256_of_dump(serializer, copy.deepcopy(sample)) == first

    def test_same_bytes_in_another_process(self, serializer: Serializer, sample: Any) -> None:
        if not serializer.deterministic:
            pytest.skip(f"{serializer.name!r} declares deterministic = False")
        payload = pickle.dumps((serializer, sample))
        # Compare with the value as the child sees it: pickling may change details that
        # are not the serializer's business (NumPy unpickles big-endian arrays as native).
        here = _sha256_of_dump(serializer, pickle.loads(payload)[1])
        seed = "1" if os.environ.get("PYTHONHASHSEED") == "0" else "0"
        child = subprocess.run(
            [sys.executable, "-c", _CHILD],
            input=payload,
            capture_output=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
            timeout=120,
            check=False,
        )
        assert child.returncode == 0, child.stderr.decode(errors="replace")
        assert child.stdout.decode().strip() == here

    # -- through the store -------------------------------------------------------------

    def test_round_trip_through_the_store(
        self, serializer: Serializer, sample: Any, artifact_store: ArtifactStore
    ) -> None:
        ref = serializer.save(artifact_store, self.path_for(serializer), sample)
        self.assert_same(sample, serializer.load_ref(artifact_store, ref))

    def test_ref_records_the_stored_bytes(
        self, serializer: Serializer, sample: Any, artifact_store: ArtifactStore
    ) -> None:
        path = self.path_for(serializer)
        ref = serializer.save(artifact_store, path, sample)
        stored = artifact_store.read_bytes(path)
        assert ref == ArtifactRef(
            path=path,
            serializer=serializer.name,
            version=serializer.version,
            size=len(stored),
            sha256=hashlib.sha256(stored).hexdigest(),
            python_type=type_name(sample),
        )
        assert ref.sha256 == _sha256_of_dump(serializer, sample)
        assert ArtifactRef.from_dict(ref.to_dict()) == ref

    def test_saving_twice_gives_the_same_hash(
        self, serializer: Serializer, sample: Any, artifact_store: ArtifactStore
    ) -> None:
        first = serializer.save(artifact_store, self.path_for(serializer, "first"), sample)
        second = serializer.save(artifact_store, self.path_for(serializer, "second"), sample)
        assert (second.size, second.sha256) == (first.size, first.sha256)

    def test_corrupted_artifact_raises_integrity_error(
        self, serializer: Serializer, sample: Any, artifact_store: ArtifactStore
    ) -> None:
        ref = serializer.save(artifact_store, self.path_for(serializer), sample)
        artifact_store.write_bytes(ref.path, _corrupted(artifact_store.read_bytes(ref.path)))
        with pytest.raises(IntegrityError, match="corrupted"):
            serializer.load_ref(artifact_store, ref)

    def test_missing_artifact_raises_not_found(
        self, serializer: Serializer, sample: Any, artifact_store: ArtifactStore
    ) -> None:
        ref = serializer.save(artifact_store, self.path_for(serializer), sample)
        artifact_store.delete(ref.path)
        with pytest.raises(ArtifactNotFound):
            serializer.load_ref(artifact_store, ref)

    def test_refuses_a_ref_it_did_not_write(
        self, serializer: Serializer, sample: Any, artifact_store: ArtifactStore
    ) -> None:
        ref = serializer.save(artifact_store, self.path_for(serializer), sample)
        other = ArtifactRef(**{**ref.to_dict(), "serializer": f"not-{serializer.name}"})
        with pytest.raises(InvalidInput, match="written by serializer"):
            serializer.load_ref(artifact_store, other)
        newer = ArtifactRef(**{**ref.to_dict(), "version": serializer.version + 1000})
        with pytest.raises(InvalidInput, match=f"version {serializer.version + 1000}"):
            serializer.load_ref(artifact_store, newer)
