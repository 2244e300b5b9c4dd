"""Typed artifacts: how pipeline step outputs become files in the artifact store and back.

A :class:`Serializer` turns one kind of value into bytes (``dump``) and back (``load``);
its base class streams those bytes into an :class:`~conveyor.artifacts.ArtifactStore`,
which hashes them while writing, and returns an :class:`ArtifactRef` (path, serializer
name and version, size, SHA-256, Python type). A :class:`SerializerRegistry` picks the
serializer for a value by type. Built in, in the order they are tried:

============== ============ ================================================= =============
name           extension    takes                                             deterministic
============== ============ ================================================= =============
parquet        .parquet     ``pandas.DataFrame``, ``pyarrow.Table``           yes (*)
npy            .npy         ``numpy.ndarray`` without Python objects          yes
npy-scalar     .npy         NumPy scalars (``numpy.float64(1.5)``)            yes
json           .json        ``dict`` (``str`` keys), ``list``, ``str``,       yes
                            ``int``, ``float``, ``bool``, ``None``; no tuples
conveyor-model .model.zip   models a :mod:`conveyor.models` flavor takes      yes (*)
                            without pickle: scikit-learn (skops), XGBoost,
                            LightGBM, ONNX; verified and pickle-free to load
joblib         .joblib      other fitted models (``fit`` + ``predict``)       no
pickle         .pkl         anything, only with ``allow_pickle=True`` + a     no
                            warning
============== ============ ================================================= =============

"Deterministic" means equal values give identical bytes, so identical SHA-256, in any
process; the pipeline cache relies on it. (*) for one version of pyarrow (which Parquet
records in the file) or of the model's framework. Pickle-based formats agree only within one process.

Example::

    from conveyor.pipelines import serializers

    ref = serializers.save(store, "runs/1/steps/load/out.parquet", frame)
    same = serializers.load_ref(store, ref)  # verified against ref.sha256

Heavy libraries (pandas, pyarrow, joblib) are imported only when a value of theirs is
stored or loaded; choosing a serializer imports nothing. Write a new serializer by
subclassing :class:`Serializer`, register it with :func:`register`, and run
:class:`conveyor.testing.serializer_checks.SerializerChecks` on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from conveyor.pipelines.serializers._arrays import NpyScalarSerializer, NpySerializer
from conveyor.pipelines.serializers._base import ArtifactRef, ChunkSink, Serializer, as_file, type_name
from conveyor.pipelines.serializers._json import JsonSerializer
from conveyor.pipelines.serializers._models import ModelSerializer
from conveyor.pipelines.serializers._objects import JoblibSerializer, PickleSerializer
from conveyor.pipelines.serializers._registry import PickleFallbackWarning, SerializerRegistry
from conveyor.pipelines.serializers._tables import ParquetSerializer

if TYPE_CHECKING:
    from conveyor.artifacts.store import ArtifactStore

__all__ = [
    "ArtifactRef",
    "ChunkSink",
    "JoblibSerializer",
    "JsonSerializer",
    "ModelSerializer",
    "NpyScalarSerializer",
    "NpySerializer",
    "ParquetSerializer",
    "PickleFallbackWarning",
    "PickleSerializer",
    "Serializer",
    "SerializerRegistry",
    "as_file",
    "by_name",
    "default_registry",
    "for_value",
    "load_ref",
    "register",
    "registry",
    "save",
    "type_name",
]

#: The registry the functions below use, holding the built-in serializers.
default_registry = SerializerRegistry()
for _serializer in (
    ParquetSerializer(),
    NpySerializer(),
    NpyScalarSerializer(),
    JsonSerializer(),
    ModelSerializer(),
    JoblibSerializer(),
    PickleSerializer(),
):
    default_registry.register(_serializer)

#: Read-only view of :data:`default_registry`: name -> serializer, in selection order.
registry: Mapping[str, Serializer] = default_registry.serializers


def register(serializer: Serializer, *, clobber: bool = False, before: str | None = None) -> None:
    """Add ``serializer`` to the default registry; see :meth:`SerializerRegistry.register`."""
    default_registry.register(serializer, clobber=clobber, before=before)


def by_name(name: str) -> Serializer:
    """The serializer named ``name``; see :meth:`SerializerRegistry.by_name`."""
    return default_registry.by_name(name)


def for_value(value: Any, *, allow_pickle: bool = False) -> Serializer:
    """The serializer that stores ``value``; see :meth:`SerializerRegistry.for_value`."""
    return default_registry.for_value(value, allow_pickle=allow_pickle)


def save(store: ArtifactStore, rel_path: str, value: Any, *, allow_pickle: bool = False) -> ArtifactRef:
    """Store ``value`` with the serializer it calls for; see :meth:`SerializerRegistry.save`."""
    return default_registry.save(store, rel_path, value, allow_pickle=allow_pickle)


def load_ref(store: ArtifactStore, ref: ArtifactRef) -> Any:
    """Load and verify the value ``ref`` points to; see :meth:`SerializerRegistry.load_ref`."""
    return default_registry.load_ref(store, ref)
