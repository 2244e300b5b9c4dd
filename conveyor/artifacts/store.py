"""The artifact store: stream bytes in and out of one root, with SHA-256 on every write.

Everything shared by all storage kinds lives here, written once: path checks
(:func:`~conveyor.artifacts.paths.safe_relpath`), hashing while streaming, atomic
publication, integrity checks and the translation of fsspec, OS and vendor errors into
Conveyor errors. The file system underneath (local folder, Azure Blob, S3, memory) is
picked by :mod:`conveyor.artifacts.registry` and only moves bytes.

The store does not touch the metadata database: callers record the ``(size, sha256)``
that :meth:`ArtifactStore.write` returns in an ``ArtifactRecord`` and pass the hash back
to :meth:`ArtifactStore.verify`, :meth:`~ArtifactStore.read_verified` or
:meth:`~ArtifactStore.download`.
"""

from __future__ import annotations

import functools
import hashlib
import os
import posixpath
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from uuid import uuid4

from conveyor.artifacts.paths import safe_relpath
from conveyor.artifacts.registry import Location, is_instance_of_any, open_location
from conveyor.errors import (
    ArtifactNotFound,
    BackendUnavailable,
    ConveyorError,
    IntegrityError,
    InvalidInput,
    PermissionDenied,
)

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

__all__ = ["ArtifactStore", "Chunk"]

#: What a write accepts per chunk: anything exposing a byte buffer.
Chunk = bytes | bytearray | memoryview

_MIB = 1 << 20
#: Size of reads done for hashing and downloads, and of remote read-ahead blocks.
_IO_BLOCK = 8 * _MIB
#: Blob upload block size: fewer, larger requests than adlfs's 4 MiB default.
_UPLOAD_BLOCK = 8 * _MIB
#: Prefix of in-flight files. A crash can leave one behind, never a partial file under
#: a real name; listings hide them and artifact names may not use the prefix.
PARTIAL_PREFIX = ".conveyor-partial-"


class ArtifactStore:
    """Files under one artifact root, addressed by relative POSIX paths.

    The constructor only records its arguments; the file system is opened on first use,
    so building a store is free and never fails on network or credentials.

    Args:
        root_uri: ``/srv/artifacts``, ``file:///srv/artifacts``, ``az://container/prefix``,
            ``abfss://container@account.dfs.core.windows.net/prefix``, ``s3://bucket/prefix``
            or ``memory://name`` (tests).
        storage_options: Passed to the fsspec file system, e.g.
            ``{"connection_string": ...}`` for Azure. Never shown in ``repr``.

    Example::

        store = ArtifactStore("/srv/artifacts")
        size, sha = store.write_bytes("1/abc/artifacts/model.pkl", payload)
        data = store.read_verified("1/abc/artifacts/model.pkl", sha)
    """

    def __init__(
        self, root_uri: str, storage_options: Mapping[str, Any] | None = None, *, durable: bool = True
    ) -> None:
        self.root_uri = root_uri
        self.storage_options = storage_options
        #: Local roots only: fsync each file and its folder before a write returns. Writers
        #: of many small files (pipeline steps) turn it off and call :meth:`sync` once
        #: before they acknowledge the batch; an fsync costs more than a small write.
        self.durable = durable

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.root_uri!r})"

    # -- writing ---------------------------------------------------------------------

    def write(self, rel_path: str, chunks: Iterable[Chunk]) -> tuple[int, str]:
        """Store the concatenation of ``chunks`` at ``rel_path``, replacing any old file.

        Size and SHA-256 are computed from the bytes as they stream past; nothing is read
        back. The write is atomic: readers see the old file or the new one, and a write
        that fails or is killed half-way never leaves a partial file under ``rel_path``.
        How depends on the storage (``SchemeSpec.write_mode``): a local root writes a
        temporary file in the same folder, fsyncs it and renames it over the target; Azure
        and S3 publish an object only when the upload is committed, so an aborted upload
        is dropped uncommitted; other file systems write a temporary name and move it.

        Each chunk is consumed before the next is pulled, so a source may reuse one buffer.
        An exception raised by ``chunks`` itself reaches the caller unchanged.

        Returns:
            ``(size in bytes, sha256 as lowercase hex)``.

        Raises:
            InvalidInput: unsafe path, non-bytes chunk, or a file/folder clash.
            PermissionDenied, BackendUnavailable: the storage refused or is unreachable.
        """
        rel = self._file_key(rel_path)
        location = self._location
        mode = location.spec.write_mode
        writer = _write_local_unsynced if mode == "local" and not self.durable else _WRITERS[mode]
        with self._errors(rel, writing=True):
            return writer(location.fs, self._full(rel), _SourceGuard(chunks))

    def sync(self) -> None:
        """Make every earlier write under a local root durable (one ``syncfs``, not an fsync per file).

        Object stores (Azure, S3) publish an object only once it is stored, so there is
        nothing to do for them.
        """
        if not self._is_local or self.durable:
            return
        root = self._location.root or "/"
        with self._errors(""):
            _sync_file_system(root if os.path.isdir(root) else os.path.dirname(root) or "/")

    def write_bytes(self, rel_path: str, data: Chunk) -> tuple[int, str]:
        """Store ``data`` at ``rel_path``; see :meth:`write`."""
        return self.write(rel_path, (data,))

    def write_file(self, rel_path: str, local_path: str | os.PathLike[str]) -> tuple[int, str]:
        """Upload the local file ``local_path`` to ``rel_path``; see :meth:`write`.

        Raises:
            InvalidInput: ``local_path`` is not a readable file.
        """
        try:
            source = open(local_path, "rb", buffering=0)  # noqa: SIM115 - closed below
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise InvalidInput(f"Cannot read local file {os.fspath(local_path)!r}: {reason}") from exc
        with source:
            return self.write(rel_path, _read_into_views(source))

    # -- reading ---------------------------------------------------------------------

    def iter_bytes(self, rel_path: str, chunk_size: int = _MIB) -> Iterator[bytes]:
        """Stream the file at ``rel_path`` in chunks of at most ``chunk_size`` bytes.

        The file is opened now, so a missing artifact raises here rather than at the first
        ``next()``. Nothing is verified; use :meth:`read_verified` or :meth:`download`
        when the caller has the recorded hash.

        Raises:
            ArtifactNotFound: no file at ``rel_path``.
        """
        if chunk_size < 1:
            raise InvalidInput(f"chunk_size must be at least 1, got {chunk_size}")
        rel = self._file_key(rel_path)
        with self._errors(rel):
            handle = self._open_read(rel)
        return self._stream(rel, handle, chunk_size)

    def read_bytes(self, rel_path: str) -> bytes:
        """The whole file at ``rel_path``, unverified.

        Raises:
            ArtifactNotFound: no file at ``rel_path``.
        """
        rel = self._file_key(rel_path)
        with self._errors(rel):
            if self._is_local:
                with open(self._full(rel), "rb", buffering=0) as handle:
                    return handle.readall()
            return bytes(self._location.fs.cat_file(self._full(rel)))

    def read_verified(self, rel_path: str, sha256: str) -> bytes:
        """The whole file at ``rel_path``, after checking it hashes to ``sha256``.

        Raises:
            ArtifactNotFound: no file at ``rel_path``.
            IntegrityError: the stored bytes no longer match ``sha256``.
        """
        expected = _check_sha256(sha256)
        data = self.read_bytes(rel_path)
        found = hashlib.sha256(data).hexdigest()
        if found != expected:
            raise _corrupted(safe_relpath(rel_path), expected, found)
        return data

    def download(self, rel_path: str, local_path: str | os.PathLike[str], sha256: str) -> None:
        """Copy ``rel_path`` to ``local_path``, verified against ``sha256``.

        The bytes go to a temporary file beside ``local_path`` and are renamed into place
        only once their hash matches, so ``local_path`` never holds unverified content.

        Raises:
            ArtifactNotFound: no file at ``rel_path``.
            IntegrityError: the stored bytes no longer match ``sha256``; ``local_path``
                is left as it was.
        """
        expected = _check_sha256(sha256)
        blocks = self._blocks(rel_path)  # opens now: a missing artifact touches no disk
        target = Path(local_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{PARTIAL_PREFIX}{uuid4().hex[:16]}")
        try:
            with open(partial, "xb", buffering=0) as out:
                _size, found = _pump(blocks, out.write)
            if found != expected:
                raise _corrupted(safe_relpath(rel_path), expected, found)
            os.replace(partial, target)
        finally:
            with suppress(FileNotFoundError):
                os.unlink(partial)

    def verify(self, rel_path: str, sha256: str, size: int | None = None) -> None:
        """Re-hash the stored bytes and compare them with the recorded hash (and size).

        Raises:
            ArtifactNotFound: no file at ``rel_path``.
            IntegrityError: hash or size differs; the message names the file and both
                hashes.
        """
        expected = _check_sha256(sha256)
        found_size, found = _pump(self._blocks(rel_path), None)
        if found != expected or (size is not None and size != found_size):
            raise _corrupted(safe_relpath(rel_path), expected, found, size, found_size)

    # -- inspecting and deleting -----------------------------------------------------

    def exists(self, rel_path: str) -> bool:
        """Whether a file (not a folder) is stored at ``rel_path``."""
        rel = self._file_key(rel_path)
        with self._errors(rel):
            if self._is_local:
                return os.path.isfile(self._full(rel))
            return _kind(self._fresh_fs(self._full(rel)), self._full(rel)) == "file"

    def size(self, rel_path: str) -> int:
        """Size in bytes of the file at ``rel_path``.

        Raises:
            ArtifactNotFound: no file at ``rel_path``.
        """
        rel = self._file_key(rel_path)
        with self._errors(rel):
            info = self._fresh_fs(self._full(rel)).info(self._full(rel))
        if info.get("type") != "file":
            raise ArtifactNotFound(f"No artifact file at {rel!r}: it is a folder")
        return int(info["size"])

    def list(self, rel_dir: str = "") -> list[tuple[str, bool, int | None]]:
        """Entries directly under ``rel_dir`` (``""`` is the root), sorted by path.

        Returns:
            ``(path relative to the root, is_dir, size or None for folders)`` per entry.
            A missing folder, or a file, lists as empty, as in MLflow.
        """
        rel = self._dir_key(rel_dir)
        full = self._full(rel)
        with self._errors(rel):
            try:
                entries = self._fresh_fs(full).ls(full, detail=True)
            except (FileNotFoundError, NotADirectoryError):
                return []
        listed = (self._entry(full, entry) for entry in entries)
        return sorted(entry for entry in listed if entry is not None)

    def delete(self, rel_path: str) -> None:
        """Delete the file at ``rel_path``.

        Raises:
            ArtifactNotFound: no file at ``rel_path`` (folders included; see
                :meth:`delete_prefix`).
        """
        rel = self._file_key(rel_path)
        with self._errors(rel):
            if self._is_local:
                os.unlink(self._full(rel))
                return
            fs = self._fresh_fs(self._full(rel))
            if _kind(fs, self._full(rel)) != "file":
                raise FileNotFoundError(self._full(rel))
            fs.rm_file(self._full(rel))

    def delete_prefix(self, rel_dir: str) -> None:
        """Delete the folder ``rel_dir`` and everything under it; a no-op if it is absent.

        Only paths under ``rel_dir + "/"`` go: deleting ``a/b`` keeps ``a/bc.txt``.
        Deleting the whole root is refused, because one bad argument would erase every
        run's artifacts.

        Raises:
            InvalidInput: ``rel_dir`` is empty or unsafe.
        """
        rel = safe_relpath(rel_dir)
        full = self._full(rel)
        with self._errors(rel):
            if self._is_local:
                if os.path.isdir(full):
                    shutil.rmtree(full)
                return
            fs = self._fresh_fs(full)
            if _kind(fs, full) == "directory":
                fs.rm(full, recursive=True)

    def uri_for(self, rel_path: str) -> str:
        """Full URI of ``rel_path`` for display, e.g. ``az://container/prefix/a/b.bin``."""
        if rel_path in ("", "."):
            return self.root_uri
        return f"{self.root_uri.rstrip('/')}/{safe_relpath(rel_path)}"

    def display_location(self, rel_path: str) -> str:
        """Where a user can open ``rel_path``: its absolute file path on a local root, else its URI.

        A path relative to the artifact root means nothing to someone who does not know
        the root; a local path opens in an editor or browser as it is.
        """
        if self._is_local:
            return self._full(safe_relpath(rel_path))
        return self.uri_for(rel_path)

    # -- internals -------------------------------------------------------------------

    @cached_property
    def _location(self) -> Location:
        try:
            return open_location(self.root_uri, self.storage_options)
        except (ValueError, TypeError) as exc:
            if isinstance(exc, ConveyorError):
                raise
            # The file system's own constructor rejected storage_options; its text is
            # the useful part (which option is missing), so keep it.
            raise InvalidInput(
                f"Cannot open artifact root {self.root_uri!r} with the given storage_options: {exc}"
            ) from exc

    @property
    def _is_local(self) -> bool:
        return self._location.spec.write_mode == "local"

    def _full(self, rel: str) -> str:
        root = self._location.root
        return f"{root}/{rel}" if rel else root or "/"

    def _fresh_fs(self, full: str) -> AbstractFileSystem:
        """The file system, with cached listings of ``full`` and its folder dropped.

        adlfs and s3fs cache directory listings; another process may have changed them.
        """
        fs = self._location.fs
        fs.invalidate_cache(full)
        fs.invalidate_cache(posixpath.dirname(full))
        return fs

    @staticmethod
    def _file_key(rel_path: str) -> str:
        rel = safe_relpath(rel_path)
        if posixpath.basename(rel).startswith(PARTIAL_PREFIX):
            raise InvalidInput(
                f"Invalid path {rel_path!r}: names starting with "
                f"{PARTIAL_PREFIX!r} are reserved for in-flight writes"
            )
        return rel

    @staticmethod
    def _dir_key(rel_dir: str) -> str:
        if rel_dir in ("", "."):
            return ""
        return safe_relpath(rel_dir[:-1] if rel_dir.endswith("/") else rel_dir)

    def _entry(self, full: str, entry: dict[str, Any]) -> tuple[str, bool, int | None] | None:
        name = str(entry["name"]).rstrip("/")
        if name == full or posixpath.basename(name).startswith(PARTIAL_PREFIX):
            return None
        rel = name[len(self._location.root) :].lstrip("/")
        is_dir = entry.get("type") == "directory"
        return rel, is_dir, None if is_dir else int(entry.get("size") or 0)

    def _open_read(self, rel: str) -> BinaryIO:
        if self._is_local:
            return open(self._full(rel), "rb", buffering=0)
        return self._location.fs.open(  # type: ignore[no-any-return]
            self._full(rel), "rb", block_size=_IO_BLOCK, cache_type="readahead"
        )

    def _stream(self, rel: str, handle: BinaryIO, chunk_size: int) -> Iterator[bytes]:
        with handle, self._errors(rel):
            while chunk := handle.read(chunk_size):
                yield chunk

    def _blocks(self, rel_path: str) -> Iterator[Chunk]:
        """The file in large blocks; a local file reuses one buffer (see :func:`_pump`)."""
        rel = self._file_key(rel_path)
        with self._errors(rel):
            handle = self._open_read(rel)
        if not self._is_local:
            return self._stream(rel, handle, _IO_BLOCK)
        return _read_into_views(handle, close=True)

    @contextmanager
    def _errors(self, rel: str, *, writing: bool = False) -> Iterator[None]:
        """Translate foreign exceptions into Conveyor errors, most specific first."""
        try:
            yield
        except ConveyorError:
            raise
        except _SourceFailed as exc:
            # The caller's own error, as raised: keep its cause, hide the wrapper.
            raise exc.original from exc.original.__cause__
        except Exception as exc:
            translated = self._translate(exc, rel, writing)
            if translated is None:
                raise
            raise translated from exc

    def _translate(self, exc: BaseException, rel: str, writing: bool) -> ConveyorError | None:
        # The location may be what failed to open; then no vendor names apply.
        location: Location | None = self.__dict__.get("_location")
        denied = location.spec.denied_errors if location else ()
        unavailable = location.spec.unavailable_errors if location else ()
        missing = location.spec.missing_errors if location else ()
        for err in _chain(exc):
            if isinstance(err, FileNotFoundError) or is_instance_of_any(err, missing):
                if writing:
                    return ConveyorError(
                        f"Cannot write {self.uri_for(rel)}: the artifact root does not exist "
                        "(missing container or bucket?); create it first"
                    )
                return ArtifactNotFound(f"No artifact at {rel!r} under {self.root_uri}")
            if isinstance(err, IsADirectoryError | NotADirectoryError | FileExistsError):
                if writing:
                    return InvalidInput(
                        f"Cannot write artifact {rel!r}: it or one of its parent folders "
                        "clashes with an existing file or folder"
                    )
                return ArtifactNotFound(f"No artifact file at {rel!r} under {self.root_uri}")
            if isinstance(err, PermissionError) or is_instance_of_any(err, denied):
                return PermissionDenied(
                    f"Storage refused access to {self.uri_for(rel)}; check the credentials in storage_options"
                )
            if _unreachable(err, unavailable):
                return BackendUnavailable(
                    f"Cannot reach artifact storage for {self.uri_for(rel)} "
                    f"({type(err).__name__}); retry later"
                )
        if isinstance(exc, OSError):
            reason = exc.strerror or type(exc).__name__
            return BackendUnavailable(f"Artifact storage failed on {rel!r}: {reason}")
        return None


# -- streaming helpers ---------------------------------------------------------------


class _SourceFailed(Exception):
    """Carries an exception raised by the caller's chunk iterator past error translation."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(repr(original))
        self.original = original


class _SourceGuard:
    """Wraps the caller's chunks so their own errors are not mistaken for storage errors."""

    def __init__(self, chunks: Iterable[Chunk]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[Chunk]:
        try:
            iterator = iter(self._chunks)
        except TypeError as exc:
            raise InvalidInput(
                f"chunks must be an iterable of bytes, got {type(self._chunks).__name__}"
            ) from exc
        while True:
            try:
                chunk = next(iterator)
            except StopIteration:
                return
            except Exception as exc:
                raise _SourceFailed(exc) from exc
            yield chunk


def _pump(chunks: Iterable[Chunk], sink: Callable[[memoryview], object] | None) -> tuple[int, str]:
    """Feed ``chunks`` to ``sink`` (if any) while counting and hashing them, without copies.

    Each chunk is fully hashed and written before the next is pulled, which is what lets
    :func:`_read_into_views` reuse a single buffer. (Hashing on a helper thread while
    writing was measured and gave nothing on a busy two-core machine, so it stays serial.)
    """
    digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        try:
            view = memoryview(chunk)
        except TypeError:
            raise InvalidInput(f"chunks must be bytes-like, got {type(chunk).__name__}") from None
        digest.update(view)
        if sink is not None:
            sink(view)
        size += view.nbytes
    return size, digest.hexdigest()


def _read_into_views(handle: BinaryIO, *, close: bool = False) -> Iterator[memoryview]:
    """Read ``handle`` through one reused buffer, yielding a view of each fill."""
    buffer = bytearray(_IO_BLOCK)
    view = memoryview(buffer)
    try:
        while count := handle.readinto(view):  # type: ignore[attr-defined]
            yield view[:count]
    finally:
        if close:
            handle.close()


def _unreachable(err: BaseException, vendor_errors: tuple[str, ...]) -> bool:
    return isinstance(err, ConnectionError | TimeoutError) or is_instance_of_any(err, vendor_errors)


def _kind(fs: AbstractFileSystem, path: str) -> str | None:
    """``"file"``, ``"directory"`` or None if absent.

    Unlike ``fs.isfile``/``fs.isdir``, which answer False on any error, this lets an
    unreachable service raise, so it is reported instead of read as "not there".
    """
    try:
        return str(fs.info(path).get("type"))
    except FileNotFoundError:
        return None


def _check_sha256(sha256: str) -> str:
    value = sha256.lower() if isinstance(sha256, str) else ""
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise InvalidInput(f"Expected a SHA-256 as 64 hex characters, got {sha256!r}")
    return value


def _corrupted(
    rel: str, expected: str, found: str, size: int | None = None, found_size: int = 0
) -> IntegrityError:
    sizes = ""
    if size is not None and size != found_size:
        sizes = f"; expected {size} bytes, found {found_size}"
    return IntegrityError(
        f"artifact {rel!r} is corrupted: expected sha256 {expected}, found {found}{sizes}. "
        "Re-upload it or restore it from a backup."
    )


def _chain(exc: BaseException, limit: int = 8) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from; adlfs wraps SDK errors."""
    seen: BaseException | None = exc
    for _ in range(limit):
        if seen is None:
            return
        yield seen
        seen = seen.__cause__ or seen.__context__


# -- atomic writers, one per SchemeSpec.write_mode -----------------------------------


def _write_local(fs: AbstractFileSystem, path: str, chunks: Iterable[Chunk]) -> tuple[int, str]:
    """Temporary file in the target's folder, fsync, ``os.replace``: POSIX-atomic."""
    folder = os.path.dirname(path)
    result = _replace_local(path, chunks, fsync=True)
    _fsync_folder(folder)
    return result


def _write_local_unsynced(fs: AbstractFileSystem, path: str, chunks: Iterable[Chunk]) -> tuple[int, str]:
    """Atomic like :func:`_write_local`, durable only after :meth:`ArtifactStore.sync`."""
    return _replace_local(path, chunks, fsync=False)


def _replace_local(path: str, chunks: Iterable[Chunk], *, fsync: bool) -> tuple[int, str]:
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    partial = os.path.join(folder, f"{PARTIAL_PREFIX}{uuid4().hex[:16]}")
    try:
        with open(partial, "xb", buffering=_MIB) as out:
            result = _pump(chunks, out.write)
            if fsync:
                out.flush()
                os.fsync(out.fileno())
        os.replace(partial, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(partial)
        raise
    return result


def _sync_file_system(folder: str) -> None:
    """``syncfs`` the file system holding ``folder`` where Linux offers it, else ``sync``."""
    libc = _libc()
    if libc is None or not hasattr(libc, "syncfs"):
        os.sync()
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        if libc.syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


@functools.cache
def _libc() -> Any:
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def _fsync_folder(folder: str) -> None:
    """Make the rename itself durable; only POSIX can open a folder for this."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_commit(fs: AbstractFileSystem, path: str, chunks: Iterable[Chunk]) -> tuple[int, str]:
    """Upload to the final name; the object appears only when ``close()`` commits it.

    fsspec's buffered files commit on ``close()``, and also from ``__exit__`` and
    ``__del__``, even after an error. So no ``with`` block here: a failed write is
    abandoned by :func:`_abandon` instead, and the old object (if any) stays intact.
    """
    handle = fs.open(path, "wb", block_size=_UPLOAD_BLOCK)
    try:
        result = _pump(chunks, handle.write)
    except BaseException:
        _abandon(handle)
        raise
    handle.close()
    return result


def _abandon(handle: Any) -> None:
    """Drop an unfinished upload without publishing it.

    ``discard()`` releases server-side state where the file system has some (S3 aborts
    the multipart upload; Azure garbage-collects uncommitted blocks). Marking the file
    as already force-flushed makes ``close()`` skip the final flush that would commit.
    """
    with suppress(Exception):
        handle.discard()
    handle.forced = True
    with suppress(Exception):
        handle.close()


def _write_move(fs: AbstractFileSystem, path: str, chunks: Iterable[Chunk]) -> tuple[int, str]:
    """Write a temporary name beside the target, then move it over the target."""
    partial = f"{posixpath.dirname(path)}/{PARTIAL_PREFIX}{uuid4().hex[:16]}"
    try:
        with fs.open(partial, "wb") as out:
            result = _pump(chunks, out.write)
        fs.mv(partial, path)
    except BaseException:
        with suppress(Exception):
            fs.rm_file(partial)
        raise
    return result


_WRITERS: dict[str, Callable[[AbstractFileSystem, str, Iterable[Chunk]], tuple[int, str]]] = {
    "local": _write_local,
    "commit": _write_commit,
    "move": _write_move,
}
