"""The conformance suite on fsspec's in-memory file system (the ``move`` write mode)."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import uuid4

import fsspec
import pytest

from conveyor.artifacts import ArtifactStore
from conveyor.testing.artifact_checks import ArtifactStoreChecks, flip_bytes


class TestMemoryStore(ArtifactStoreChecks):
    @pytest.fixture
    def artifact_store(self) -> Iterator[ArtifactStore]:
        root = f"memory://conveyor-test-{uuid4().hex}"
        yield ArtifactStore(root)
        fs, path = fsspec.core.url_to_fs(root)
        if fs.exists(path):
            fs.rm(path, recursive=True)

    def corrupt(self, store: ArtifactStore, rel_path: str) -> None:
        fs, path = fsspec.core.url_to_fs(store.uri_for(rel_path))
        fs.pipe_file(path, flip_bytes(fs.cat_file(path)))
