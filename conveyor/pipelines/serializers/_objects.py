"""Python objects as pickles: joblib for models, plain pickle only when the caller opts in.

Loading either format runs code named in the file, so load only artifacts from a store you
trust. The SHA-256 check on load proves the bytes are those written, not that the writer
was benign.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

from conveyor.errors import InvalidInput
from conveyor.pipelines.serializers._base import ChunkSink, Serializer, as_file, is_instance_of, type_name

__all__ = ["JoblibSerializer", "PickleSerializer"]

#: Fixed so that the bytes do not change with the interpreter's default protocol.
_PROTOCOL = 5


class JoblibSerializer(Serializer):
    """A fitted model (scikit-learn estimator or anything with ``fit`` and ``predict``).

    Stand-in until the models capability defines a model format (it will register its
    own serializer ahead of this one). Written with ``joblib.dump`` (no compression,
    pickle protocol 5), which stores NumPy arrays inside the model as raw buffers.

    Not byte-deterministic across processes (``deterministic = False``): pickles record
    object identity (two references to one object differ from two equal objects) and
    iterate sets in hash order, which string hashing randomises per process. Repeated
    dumps of one object in one process agree. The whole pickle is held in memory (as
    chunks) while it is written.
    """

    name = "joblib"
    version = 1
    extension = ".joblib"
    deterministic = False

    def accepts(self, value: object) -> bool:
        if isinstance(value, type):  # an estimator class has fit/predict too
            return False
        if is_instance_of(value, ("sklearn.base.BaseEstimator",)):
            return True
        return callable(getattr(value, "fit", None)) and callable(getattr(value, "predict", None))

    def dump(self, value: Any) -> Iterator[bytes]:
        import joblib

        sink = ChunkSink()
        with _pickling_errors(value):
            joblib.dump(value, sink, compress=0, protocol=_PROTOCOL)
        yield from sink.drain()

    def load(self, data: bytes | BinaryIO) -> Any:
        import joblib

        return joblib.load(as_file(data))


class PickleSerializer(Serializer):
    """Any picklable object, only when the caller opts in with ``allow_pickle=True``.

    The registry never picks it by type alone (``opt_in = True``) and warns when it does;
    see :class:`JoblibSerializer` for why the bytes are not deterministic across processes.
    """

    name = "pickle"
    version = 1
    extension = ".pkl"
    deterministic = False
    opt_in = True

    def accepts(self, value: object) -> bool:
        return True

    def dump(self, value: Any) -> Iterator[bytes]:
        sink = ChunkSink()
        with _pickling_errors(value):
            pickle.Pickler(sink, protocol=_PROTOCOL).dump(value)
        yield from sink.drain()

    def load(self, data: bytes | BinaryIO) -> Any:
        if isinstance(data, bytes | bytearray | memoryview):
            return pickle.loads(data)
        return pickle.load(data)


@contextmanager
def _pickling_errors(value: object) -> Iterator[None]:
    """Turn "cannot pickle this" into :class:`InvalidInput` naming the value's type."""
    try:
        yield
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise InvalidInput(f"Cannot pickle a value of type {type_name(value)}: {exc}") from exc
