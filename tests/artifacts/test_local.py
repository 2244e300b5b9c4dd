"""The conformance suite on a local folder, plus what only a local root can show."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from conveyor.artifacts import ArtifactStore
from conveyor.artifacts.store import PARTIAL_PREFIX
from conveyor.errors import InvalidInput
from conveyor.testing.artifact_checks import ArtifactStoreChecks, flip_bytes


class TestLocalStore(ArtifactStoreChecks):
    @pytest.fixture
    def artifact_store(self, tmp_path: Path) -> ArtifactStore:
        return ArtifactStore(str(tmp_path / "root"))

    def corrupt(self, store: ArtifactStore, rel_path: str) -> None:
        path = Path(store.root_uri, rel_path)
        path.write_bytes(flip_bytes(path.read_bytes()))


class TestFileUriStore(TestLocalStore):
    """Same suite, root given as a ``file://`` URI."""

    @pytest.fixture
    def artifact_store(self, tmp_path: Path) -> ArtifactStore:
        return ArtifactStore((tmp_path / "root").as_uri())

    def corrupt(self, store: ArtifactStore, rel_path: str) -> None:
        path = Path(store.root_uri.removeprefix("file://"), rel_path)
        path.write_bytes(flip_bytes(path.read_bytes()))


def test_constructor_does_no_io(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "later"), {"unused": True})
    assert vars(store) == {
        "root_uri": str(tmp_path / "later"),
        "storage_options": {"unused": True},
        "durable": True,
    }
    assert not (tmp_path / "later").exists()


def test_unsynced_writes_are_atomic_and_sync_makes_them_durable(tmp_path: Path) -> None:
    fast = ArtifactStore(str(tmp_path), durable=False)
    size, sha = fast.write_bytes("a/b.bin", b"payload")

    assert (size, sha) == ArtifactStore(str(tmp_path / "other")).write_bytes("a/b.bin", b"payload")
    assert fast.read_verified("a/b.bin", sha) == b"payload"
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["b.bin"]  # no partial file left
    fast.sync()  # one syncfs for everything written so far
    ArtifactStore("memory://unsynced", durable=False).sync()  # object stores: nothing to do


def test_repr_hides_storage_options() -> None:
    store = ArtifactStore("az://c/p", {"account_key": "s3cr3t"})
    assert repr(store) == "ArtifactStore('az://c/p')"


def test_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))

    def broken() -> object:
        yield b"partial"
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        store.write("d/f.bin", broken())  # type: ignore[arg-type]
    assert os.listdir(tmp_path / "d") == []


def test_crash_leftovers_are_hidden_and_reserved(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    store.write_bytes("d/real.bin", b"1")
    (tmp_path / "d" / f"{PARTIAL_PREFIX}0123456789abcdef").write_bytes(b"half")
    assert store.list("d") == [("d/real.bin", False, 1)]
    with pytest.raises(InvalidInput, match="reserved"):
        store.write_bytes(f"d/{PARTIAL_PREFIX}x", b"x")


def test_written_file_follows_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        ArtifactStore(str(tmp_path)).write_bytes("f", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o644


def test_parent_that_is_a_file_is_invalid_input(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    store.write_bytes("a", b"file")
    with pytest.raises(InvalidInput, match="clashes"):
        store.write_bytes("a/b", b"x")


def test_writes_nothing_outside_the_root(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "root"))
    with pytest.raises(InvalidInput):
        store.write_bytes("../outside", b"x")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
