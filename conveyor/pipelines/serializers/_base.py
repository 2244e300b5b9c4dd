"""The serializer interface: a subclass turns values into bytes and back; the base does I/O."""

from __future__ import annotations

import io
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar

from conveyor.artifacts.paths import safe_relpath
from conveyor.errors import InvalidInput

if TYPE_CHECKING:
    from conveyor.artifacts.store import ArtifactStore, Chunk

__all__ = ["ArtifactRef", "Serializer", "type_name"]

#: Size of the chunks a serializer hands to the store when it slices a large buffer.
CHUNK_BYTES = 8 << 20


@dataclass(frozen=True, slots=True)
class ArtifactRef:
    """Where a serialized value lives and how to read it back.

    Everything the engine records about a step output: enough to load and verify it later
    and to put it in a cache key (``serializer`` and ``version`` name the byte format,
    ``sha256`` the content).
    """

    #: Path relative to the artifact store's root, normalised by ``safe_relpath``.
    path: str
    #: Registry name of the serializer that wrote it, e.g. ``"parquet"``.
    serializer: str
    #: That serializer's ``version`` when it wrote the bytes.
    version: int
    #: Size of the stored bytes.
    size: int
    #: SHA-256 of the stored bytes, lowercase hex, computed while they were written.
    sha256: str
    #: ``module.QualName`` of the value's type, e.g. ``"pandas.core.frame.DataFrame"``.
    python_type: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; :meth:`from_dict` rebuilds the reference.

        Spelled out rather than ``dataclasses.asdict``, which deep-copies: the engine calls
        this for every output of every mapped item.
        """
        return {
            "path": self.path,
            "serializer": self.serializer,
            "version": self.version,
            "size": self.size,
            "sha256": self.sha256,
            "python_type": self.python_type,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArtifactRef:
        """Rebuild a reference saved with :meth:`to_dict`.

        Raises:
            InvalidInput: a field is missing, unknown or of the wrong type.
        """
        fields = {
            "path": str,
            "serializer": str,
            "version": int,
            "size": int,
            "sha256": str,
            "python_type": str,
        }
        if set(data) != set(fields):
            raise InvalidInput(
                f"An artifact reference needs exactly the fields {sorted(fields)}, got {sorted(data)}"
            )
        for key, kind in fields.items():
            value = data[key]
            if not isinstance(value, kind) or isinstance(value, bool):
                raise InvalidInput(f"Artifact reference field {key!r} must be {kind.__name__}, got {value!r}")
        return cls(**data)


def type_name(value: object) -> str:
    """``module.QualName`` of ``value``'s type, as recorded in :attr:`ArtifactRef.python_type`."""
    cls = type(value)
    return f"{cls.__module__}.{cls.__qualname__}"


def is_instance_of(value: object, types: Iterable[type | str]) -> bool:
    """``isinstance`` against classes or dotted names, importing nothing.

    A dotted name (``"pandas.DataFrame"``) is looked up only in modules already imported:
    a class whose module was never imported cannot have instances, so checking a value
    never pulls in pandas or pyarrow.
    """
    for kind in types:
        if isinstance(kind, str):
            module_name, _, class_name = kind.rpartition(".")
            kind = getattr(sys.modules.get(module_name), class_name, None)  # noqa: PLW2901
            if not isinstance(kind, type):
                continue
        if isinstance(value, kind):
            return True
    return False


def as_file(data: bytes | BinaryIO) -> BinaryIO:
    """``data`` as a binary file: bytes are wrapped, files are returned as they are."""
    if isinstance(data, bytes | bytearray | memoryview):
        return io.BytesIO(data)
    return data


def slices(view: memoryview, size: int = CHUNK_BYTES) -> Iterator[memoryview]:
    """Consecutive views of at most ``size`` bytes over ``view``, without copying."""
    for start in range(0, view.nbytes, size):
        yield view[start : start + size]


class ChunkSink(io.RawIOBase):
    """A write-only file that keeps what a library writes into it until :meth:`drain`.

    For formats whose writers want a file (Parquet, pickle): the serializer lets the
    writer fill the sink, then yields the drained chunks to the store.
    """

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def drain(self) -> list[bytes]:
        """The chunks written since the last drain, in order; the sink forgets them."""
        parts, self._parts = self._parts, []
        return parts


class Serializer(ABC):
    """Turns one kind of value into bytes for the artifact store, and back.

    A subclass sets :attr:`name`, :attr:`version` and :attr:`extension`, says which values
    it takes (:attr:`types`, or an :meth:`accepts` override) and supplies the two hooks
    :meth:`dump` and :meth:`load`. Everything else (checking the value, streaming the
    bytes into the store, hashing them on the way, recording an :class:`ArtifactRef`,
    verifying on read) is done here, once, by :meth:`save` and :meth:`load_ref`.

    Contract the conformance suite (:mod:`conveyor.testing.serializer_checks`) enforces:

    - ``load(b"".join(dump(v)))`` equals ``v``, type included.
    - With :attr:`deterministic` true, equal values give identical bytes in every process
      (for the same versions of the libraries involved); with it false, only repeated
      calls in one process are expected to agree.
    - The bytes do not depend on anything but the value: no timestamps, host names or
      random ids.

    Example::

        class TextSerializer(Serializer):
            name, version, extension = "text", 1, ".txt"
            types = (str,)

            def dump(self, value):
                yield value.encode("utf-8")

            def load(self, data):
                return as_file(data).read().decode("utf-8")
    """

    #: Registry name, recorded in every :class:`ArtifactRef` (lowercase, no spaces).
    name: ClassVar[str]
    #: Format version, part of the pipeline cache key: bump it whenever the bytes written
    #: for the same value change, so cached outputs in the old format are not reused.
    version: ClassVar[int]
    #: File name suffix with its dot, e.g. ``".parquet"``; callers build paths with it.
    extension: ClassVar[str]
    #: Classes (or dotted names, resolved without importing) the default :meth:`accepts`
    #: checks with ``isinstance``.
    types: ClassVar[tuple[type | str, ...]] = ()
    #: Whether equal values give identical bytes across processes (see the class docstring).
    deterministic: ClassVar[bool] = True
    #: Whether the registry may pick this serializer only when the caller opts in
    #: (``allow_pickle=True``), never by type alone.
    opt_in: ClassVar[bool] = False

    def accepts(self, value: object) -> bool:
        """Whether this serializer can store ``value`` and give back an equal value."""
        return is_instance_of(value, self.types)

    def refusal(self, value: object) -> str | None:
        """Why a value of the right kind is still refused, for error messages; None if not."""
        return None

    @abstractmethod
    def dump(self, value: Any) -> Iterable[Chunk]:
        """The bytes of ``value``, as consecutive chunks.

        Stream where the format allows: yield views of existing buffers or one bounded
        piece at a time rather than building the whole file in memory. The store consumes
        each chunk before asking for the next, so a chunk may reuse a buffer. Called only
        with values :meth:`accepts` took.
        """

    @abstractmethod
    def load(self, data: bytes | BinaryIO) -> Any:
        """The value whose :meth:`dump` produced ``data`` (whole bytes or a binary file)."""

    def reads_version(self, version: int) -> bool:
        """Whether :meth:`load` understands bytes written by ``version`` of this serializer.

        Only the current version by default; override when a new version still reads old files.
        """
        return version == self.version

    # -- I/O, not meant to be overridden ----------------------------------------------

    def save(self, store: ArtifactStore, rel_path: str, value: Any) -> ArtifactRef:
        """Serialize ``value`` into ``store`` at ``rel_path``; see :meth:`ArtifactStore.write`.

        The size and SHA-256 come from the bytes as they stream into the store; nothing
        is read back. The write is atomic, so a failure leaves no file at ``rel_path``.

        Raises:
            InvalidInput: this serializer does not accept ``value``, the value cannot be
                encoded, or ``rel_path`` is unsafe.
            PermissionDenied, BackendUnavailable: from the store.
        """
        if not self.accepts(value):
            reason = self.refusal(value)
            raise InvalidInput(
                f"Serializer {self.name!r} cannot store a value of type {type_name(value)}"
                + (f": {reason}" if reason else "")
            )
        path = safe_relpath(rel_path)
        size, sha256 = store.write(path, self.dump(value))
        return ArtifactRef(
            path=path,
            serializer=self.name,
            version=self.version,
            size=size,
            sha256=sha256,
            python_type=type_name(value),
        )

    def load_ref(self, store: ArtifactStore, ref: ArtifactRef) -> Any:
        """Read the artifact ``ref`` points to, verify its hash, and decode it.

        Raises:
            InvalidInput: ``ref`` was written by another serializer, or by a version of
                this one that :meth:`reads_version` rejects.
            ArtifactNotFound: the file is gone.
            IntegrityError: the stored bytes no longer match ``ref.sha256``.
        """
        if ref.serializer != self.name:
            raise InvalidInput(
                f"Artifact {ref.path!r} was written by serializer {ref.serializer!r}, "
                f"not {self.name!r}; load it with that serializer"
            )
        if not self.reads_version(ref.version):
            raise InvalidInput(
                f"Artifact {ref.path!r} is in version {ref.version} of the {self.name!r} format, "
                f"which version {self.version} of the serializer cannot read; recompute it"
            )
        return self.load(store.read_verified(ref.path, ref.sha256))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} v{self.version}>"
