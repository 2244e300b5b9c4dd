"""The conformance suite on S3, served by moto's standalone server (the ``commit`` mode)."""

from __future__ import annotations

from uuid import uuid4

import pytest

from conveyor.artifacts import ArtifactStore
from conveyor.errors import ArtifactNotFound, ConveyorError
from conveyor.testing.artifact_checks import ArtifactStoreChecks, flip_bytes
from conveyor.testing.s3 import S3Handle

pytestmark = pytest.mark.slow


class TestS3Store(ArtifactStoreChecks):
    @pytest.fixture
    def artifact_store(self, s3: S3Handle, s3_bucket: str) -> ArtifactStore:
        return ArtifactStore(f"s3://{s3_bucket}/{uuid4().hex}", s3.storage_options)

    def corrupt(self, store: ArtifactStore, rel_path: str) -> None:
        import s3fs

        # A separate file system object, so nothing is shared with the store's cache.
        fs = s3fs.S3FileSystem(skip_instance_cache=True, **(store.storage_options or {}))
        path = store.uri_for(rel_path)
        fs.pipe_file(path, flip_bytes(fs.cat_file(path)))


def test_failed_write_aborts_multipart_upload(s3: S3Handle, s3_bucket: str) -> None:
    """An aborted write leaves no object and no pending multipart upload behind."""
    prefix = uuid4().hex
    store = ArtifactStore(f"s3://{s3_bucket}/{prefix}", s3.storage_options)

    def broken():  # type: ignore[no-untyped-def]
        yield b"x" * (9 << 20)  # past one upload block, so a multipart upload was started
        raise OSError("source went away")

    with pytest.raises(OSError, match="source went away"):
        store.write("a.bin", broken())
    client = s3.client()
    try:
        uploads = client.list_multipart_uploads(Bucket=s3_bucket, Prefix=prefix).get("Uploads", [])
        objects = client.list_objects_v2(Bucket=s3_bucket, Prefix=prefix).get("Contents", [])
    finally:
        client.close()
    assert uploads == []
    assert objects == []


def test_missing_bucket(s3: S3Handle) -> None:
    store = ArtifactStore(f"s3://absent-{uuid4().hex[:8]}/x", s3.storage_options)
    with pytest.raises(ConveyorError, match="artifact root does not exist"):
        store.write_bytes("a.txt", b"x")
    with pytest.raises(ArtifactNotFound):
        store.read_bytes("a.txt")
    assert store.list("") == []
