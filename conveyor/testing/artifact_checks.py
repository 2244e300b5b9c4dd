"""Conformance checks for artifact storage, as pytest mixin classes.

Every storage kind (local folder, memory, Azure Blob, a plugin's scheme) must behave the
same through :class:`~conveyor.artifacts.ArtifactStore`: same bytes, same hashes, same
errors. To check a new kind, subclass :class:`ArtifactStoreChecks` in a ``Test*`` class
and provide two things::

    class TestMyStorage(ArtifactStoreChecks):
        @pytest.fixture
        def artifact_store(self, my_service):
            return ArtifactStore(f"my://bucket/{uuid.uuid4().hex}", {...})

        def corrupt(self, store, rel_path):
            ...  # change stored bytes directly, without going through ``store``

Each check names the promise from ``ArtifactStore``'s docstrings that it enforces.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.artifacts import ArtifactStore
from conveyor.errors import ArtifactNotFound, IntegrityError, InvalidInput

__all__ = ["UNSAFE_PATHS", "ArtifactStoreChecks", "flip_bytes"]

_MIB = 1 << 20

#: Paths every operation must refuse with ``InvalidInput("Invalid path ...")``.
UNSAFE_PATHS = (
    "../escape.txt",
    "a/../../escape.txt",
    "a/..",
    "/etc/passwd",
    "a\\..\\b",
    "C:/windows",
    "a//b",
    "a/b/",
    "",
    "a\x00b",
    "%2e%2e/escape.txt",
    "a%2fb",
    "a/%252e%252e/b",
    "a%00b",
)


def flip_bytes(data: bytes) -> bytes:
    """``data`` with its first and last bytes inverted: same size, different hash."""
    if not data:
        raise ValueError("cannot corrupt an empty file without changing its size")
    flipped = bytearray(data)
    flipped[0] ^= 0xFF
    flipped[-1] ^= 0xFF
    return bytes(flipped)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ArtifactStoreChecks:
    """Mixin of conformance tests; see the module docstring for what a subclass provides."""

    #: Size of the file streamed in uneven chunks by :meth:`test_large_file_in_chunks`.
    large_file_size: int = 20 * _MIB

    @pytest.fixture
    def artifact_store(self) -> ArtifactStore:
        raise NotImplementedError("subclasses provide an artifact_store fixture on an empty root")

    def corrupt(self, store: ArtifactStore, rel_path: str) -> None:
        """Change the bytes stored at ``rel_path`` behind ``store``'s back, keeping the size."""
        raise NotImplementedError("subclasses flip stored bytes directly, e.g. with flip_bytes")

    # -- writing and reading ---------------------------------------------------------

    def test_write_returns_size_and_sha256(self, artifact_store: ArtifactStore) -> None:
        data = b"conveyor artifact\n" * 100
        assert artifact_store.write_bytes("a/b.txt", data) == (len(data), _sha(data))

    def test_round_trip(self, artifact_store: ArtifactStore) -> None:
        data = os.urandom(3 * _MIB + 17)
        artifact_store.write_bytes("model/weights.bin", data)
        assert artifact_store.read_bytes("model/weights.bin") == data
        assert b"".join(artifact_store.iter_bytes("model/weights.bin")) == data
        assert artifact_store.size("model/weights.bin") == len(data)
        assert artifact_store.exists("model/weights.bin")

    def test_iter_bytes_respects_chunk_size(self, artifact_store: ArtifactStore) -> None:
        data = os.urandom(10_000)
        artifact_store.write_bytes("x.bin", data)
        chunks = list(artifact_store.iter_bytes("x.bin", chunk_size=3000))
        assert all(len(chunk) <= 3000 for chunk in chunks)
        assert b"".join(chunks) == data

    def test_empty_file(self, artifact_store: ArtifactStore) -> None:
        assert artifact_store.write("empty", iter(())) == (0, _sha(b""))
        assert artifact_store.read_bytes("empty") == b""
        assert artifact_store.size("empty") == 0
        assert artifact_store.list("") == [("empty", False, 0)]

    def test_large_file_in_chunks(self, artifact_store: ArtifactStore) -> None:
        block = os.urandom(_MIB + 7)  # uneven, so chunks never line up with upload blocks
        count = self.large_file_size // len(block) + 1
        expected = hashlib.sha256()
        for _ in range(count):
            expected.update(block)
        size, sha = artifact_store.write("big/file.bin", (block for _ in range(count)))
        assert (size, sha) == (len(block) * count, expected.hexdigest())
        artifact_store.verify("big/file.bin", sha, size)
        streamed = hashlib.sha256()
        for chunk in artifact_store.iter_bytes("big/file.bin"):
            streamed.update(chunk)
        assert streamed.hexdigest() == sha

    def test_accepts_any_bytes_like_chunk(self, artifact_store: ArtifactStore) -> None:
        chunks = [b"ab", bytearray(b"cd"), memoryview(b"xxefxx")[2:4]]
        assert artifact_store.write("mixed", chunks) == (6, _sha(b"abcdef"))
        assert artifact_store.read_bytes("mixed") == b"abcdef"

    def test_rejects_non_bytes_chunk(self, artifact_store: ArtifactStore) -> None:
        with pytest.raises(InvalidInput, match="bytes-like"):
            artifact_store.write("text", ["not bytes"])  # type: ignore[list-item]
        assert not artifact_store.exists("text")

    def test_overwrite_replaces(self, artifact_store: ArtifactStore) -> None:
        artifact_store.write_bytes("f.txt", b"a much longer first version")
        assert artifact_store.write_bytes("f.txt", b"short") == (5, _sha(b"short"))
        assert artifact_store.read_bytes("f.txt") == b"short"
        assert artifact_store.list("") == [("f.txt", False, 5)]

    def test_failed_write_leaves_nothing(self, artifact_store: ArtifactStore) -> None:
        def broken() -> Iterator[bytes]:
            yield os.urandom(9 * _MIB)  # past one upload block, so some bytes were sent
            raise OSError("source went away")

        artifact_store.write_bytes("kept.bin", b"old")
        for path in ("new.bin", "kept.bin"):
            with pytest.raises(OSError, match="source went away"):
                artifact_store.write(path, broken())
        assert not artifact_store.exists("new.bin")
        assert artifact_store.read_bytes("kept.bin") == b"old"
        assert artifact_store.list("") == [("kept.bin", False, 3)]

    def test_write_file_and_download(self, artifact_store: ArtifactStore, tmp_path: Path) -> None:
        data = os.urandom(2 * _MIB + 5)
        source = tmp_path / "source.bin"
        source.write_bytes(data)
        size, sha = artifact_store.write_file("up/source.bin", source)
        assert (size, sha) == (len(data), _sha(data))
        target = tmp_path / "out" / "copy.bin"
        artifact_store.download("up/source.bin", target, sha)
        assert target.read_bytes() == data
        assert sorted(p.name for p in target.parent.iterdir()) == ["copy.bin"]

    def test_write_file_missing_source(self, artifact_store: ArtifactStore, tmp_path: Path) -> None:
        with pytest.raises(InvalidInput, match="Cannot read local file"):
            artifact_store.write_file("x", tmp_path / "absent")

    # -- listing and deleting --------------------------------------------------------

    def test_nested_listing(self, artifact_store: ArtifactStore) -> None:
        artifact_store.write_bytes("run/model/MLmodel", b"12345")
        artifact_store.write_bytes("run/model/data/weights.bin", b"1")
        artifact_store.write_bytes("run/metrics.json", b"{}")
        assert artifact_store.list("") == [("run", True, None)]
        assert artifact_store.list("run") == [
            ("run/metrics.json", False, 2),
            ("run/model", True, None),
        ]
        assert artifact_store.list("run/model/") == [
            ("run/model/MLmodel", False, 5),
            ("run/model/data", True, None),
        ]

    def test_list_missing_folder_is_empty(self, artifact_store: ArtifactStore) -> None:
        assert artifact_store.list("nothing/here") == []
        artifact_store.write_bytes("file.txt", b"x")
        assert artifact_store.list("file.txt") == []

    def test_delete(self, artifact_store: ArtifactStore) -> None:
        artifact_store.write_bytes("a/one", b"1")
        artifact_store.write_bytes("a/two", b"2")
        artifact_store.delete("a/one")
        assert not artifact_store.exists("a/one")
        assert artifact_store.list("a") == [("a/two", False, 1)]

    def test_delete_prefix_keeps_siblings(self, artifact_store: ArtifactStore) -> None:
        for path in ("a/b/1", "a/b/c/2", "a/bc.txt", "a/bb/3"):
            artifact_store.write_bytes(path, b"x")
        artifact_store.delete_prefix("a/b")
        assert not artifact_store.exists("a/b/1")
        assert not artifact_store.exists("a/b/c/2")
        assert artifact_store.list("a/b") == []
        assert artifact_store.list("a") == [("a/bb", True, None), ("a/bc.txt", False, 1)]

    def test_delete_prefix_missing_is_noop(self, artifact_store: ArtifactStore) -> None:
        artifact_store.delete_prefix("never/written")

    def test_delete_prefix_refuses_root(self, artifact_store: ArtifactStore) -> None:
        with pytest.raises(InvalidInput, match="Invalid path"):
            artifact_store.delete_prefix("")

    # -- failure behaviour -----------------------------------------------------------

    @pytest.mark.parametrize("path", UNSAFE_PATHS)
    def test_traversal_rejected(self, artifact_store: ArtifactStore, path: str) -> None:
        calls = [
            lambda: artifact_store.write_bytes(path, b"x"),
            lambda: artifact_store.read_bytes(path),
            lambda: artifact_store.iter_bytes(path),
            lambda: artifact_store.exists(path),
            lambda: artifact_store.delete(path),
            lambda: artifact_store.delete_prefix(path),
        ]
        for call in calls:
            with pytest.raises(InvalidInput, match=r"^Invalid path"):
                call()

    def test_missing_file(self, artifact_store: ArtifactStore, tmp_path: Path) -> None:
        sha = _sha(b"")
        calls = [
            lambda: artifact_store.read_bytes("no/such.bin"),
            lambda: artifact_store.iter_bytes("no/such.bin"),
            lambda: artifact_store.size("no/such.bin"),
            lambda: artifact_store.verify("no/such.bin", sha),
            lambda: artifact_store.read_verified("no/such.bin", sha),
            lambda: artifact_store.download("no/such.bin", tmp_path / "out.bin", sha),
            lambda: artifact_store.delete("no/such.bin"),
        ]
        for call in calls:
            with pytest.raises(ArtifactNotFound, match=r"no/such\.bin"):
                call()
        assert not artifact_store.exists("no/such.bin")
        assert not (tmp_path / "out.bin").exists()

    def test_folder_is_not_a_file(self, artifact_store: ArtifactStore) -> None:
        artifact_store.write_bytes("dir/file", b"x")
        assert not artifact_store.exists("dir")
        with pytest.raises(ArtifactNotFound):
            artifact_store.read_bytes("dir")
        with pytest.raises(ArtifactNotFound):
            artifact_store.size("dir")

    def test_verify_accepts_intact_file(self, artifact_store: ArtifactStore) -> None:
        size, sha = artifact_store.write_bytes("ok.bin", b"intact")
        artifact_store.verify("ok.bin", sha, size)
        artifact_store.verify("ok.bin", sha.upper())
        assert artifact_store.read_verified("ok.bin", sha) == b"intact"

    def test_verify_rejects_wrong_size(self, artifact_store: ArtifactStore) -> None:
        size, sha = artifact_store.write_bytes("ok.bin", b"intact")
        with pytest.raises(IntegrityError, match=f"expected {size + 1} bytes, found {size}"):
            artifact_store.verify("ok.bin", sha, size + 1)

    def test_corruption_detected(self, artifact_store: ArtifactStore, tmp_path: Path) -> None:
        data = os.urandom(64 * 1024)
        size, sha = artifact_store.write_bytes("x/y.bin", data)
        self.corrupt(artifact_store, "x/y.bin")
        message = f"artifact 'x/y.bin' is corrupted: expected sha256 {sha}, found [0-9a-f]{{64}}"
        with pytest.raises(IntegrityError, match=message):
            artifact_store.verify("x/y.bin", sha, size)
        with pytest.raises(IntegrityError, match=message):
            artifact_store.read_verified("x/y.bin", sha)
        target = tmp_path / "downloads" / "y.bin"
        target.parent.mkdir()
        target.write_bytes(b"previous")
        with pytest.raises(IntegrityError, match=message):
            artifact_store.download("x/y.bin", target, sha)
        assert target.read_bytes() == b"previous"
        assert [p.name for p in target.parent.iterdir()] == ["y.bin"]

    def test_rejects_malformed_sha256(self, artifact_store: ArtifactStore) -> None:
        artifact_store.write_bytes("f", b"x")
        with pytest.raises(InvalidInput, match="SHA-256"):
            artifact_store.verify("f", "abc")

    def test_uri_for(self, artifact_store: ArtifactStore) -> None:
        assert artifact_store.uri_for("a/b.bin") == artifact_store.root_uri.rstrip("/") + "/a/b.bin"
