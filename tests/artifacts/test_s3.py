"""The conformance suite on S3, served by moto's standalone server (the ``commit`` mode)."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import uuid4

import pytest

from conveyor.artifacts import ArtifactStore
from conveyor.errors import ArtifactNotFound, BackendUnavailable, ConveyorError
from conveyor.testing.artifact_checks import ArtifactStoreChecks, flip_bytes
from conveyor.testing.s3 import S3Handle
from conveyor.testing.servers import free_port

pytestmark = pytest.mark.slow


class TestS3Store(ArtifactStoreChecks):
    @pytest.fixture
    def artifact_store(self, s3: S3Handle, s3_bucket: str) -> ArtifactStore:
        return ArtifactStore(f"s3://{s3_bucket}/{uuid4().hex}", s3.storage_options)

    def corrupt(self, store: ArtifactStore, rel_path: str) -> None:
        import s3fs

        # A file system object of its own, so the store's listing cache is not touched.
        fs = s3fs.S3FileSystem(skip_instance_cache=True, **(store.storage_options or {}))
        path = store.uri_for(rel_path)
        fs.pipe_file(path, flip_bytes(fs.cat_file(path)))


def test_failed_write_aborts_multipart_upload(s3: S3Handle, s3_bucket: str) -> None:
    """A write that fails mid-way publishes nothing and leaves no multipart upload open."""
    prefix = uuid4().hex
    store = ArtifactStore(f"s3://{s3_bucket}/{prefix}", s3.storage_options)
    client = s3.client()
    pending_mid_write: list[str] = []

    def broken() -> Iterator[bytes]:
        yield b"x" * (9 << 20)  # past one 8 MiB upload block: a multipart upload starts
        uploads = client.list_multipart_uploads(Bucket=s3_bucket, Prefix=prefix)
        pending_mid_write.extend(u["Key"] for u in uploads.get("Uploads", []))
        raise OSError("source went away")

    try:
        with pytest.raises(OSError, match="source went away"):
            store.write("a.bin", broken())
        uploads = client.list_multipart_uploads(Bucket=s3_bucket, Prefix=prefix)
        objects = client.list_objects_v2(Bucket=s3_bucket, Prefix=prefix)
    finally:
        client.close()
    assert pending_mid_write == [f"{prefix}/a.bin"]  # the multipart path was exercised
    assert uploads.get("Uploads", []) == []
    assert objects.get("Contents", []) == []


def test_missing_bucket(s3: S3Handle) -> None:
    store = ArtifactStore(f"s3://absent-{uuid4().hex[:8]}/x", s3.storage_options)
    with pytest.raises(ConveyorError, match="artifact root does not exist"):
        store.write_bytes("a.txt", b"x")
    with pytest.raises(ArtifactNotFound):
        store.read_bytes("a.txt")
    assert store.list("") == []


def test_unreachable_endpoint_is_backend_unavailable(s3: S3Handle) -> None:
    """A down S3 endpoint is reported as such, never as a missing artifact or empty folder."""
    options = s3.storage_options
    options["client_kwargs"]["endpoint_url"] = f"http://127.0.0.1:{free_port()}"
    options["config_kwargs"] = {"retries": {"max_attempts": 1}}  # fail fast
    store = ArtifactStore("s3://conveyor-test/x", options)
    calls = [
        lambda: store.read_bytes("a"),
        lambda: store.write_bytes("a", b"x"),
        lambda: store.list(""),
    ]
    for call in calls:
        with pytest.raises(BackendUnavailable, match="Cannot reach"):
            call()
