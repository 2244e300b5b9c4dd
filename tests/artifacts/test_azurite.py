"""The conformance suite on Azure Blob storage, served by Azurite (the ``commit`` mode)."""

from __future__ import annotations

from uuid import uuid4

import pytest

from conveyor.artifacts import ArtifactStore
from conveyor.errors import ArtifactNotFound, ConveyorError
from conveyor.testing.artifact_checks import ArtifactStoreChecks, flip_bytes
from conveyor.testing.azurite import AzuriteHandle

pytestmark = [pytest.mark.azurite, pytest.mark.slow]


class TestAzuriteStore(ArtifactStoreChecks):
    @pytest.fixture
    def artifact_store(self, azurite: AzuriteHandle, azurite_container: str) -> ArtifactStore:
        root = f"az://{azurite_container}/{uuid4().hex}"
        return ArtifactStore(root, {"connection_string": azurite.connection_string})

    def corrupt(self, store: ArtifactStore, rel_path: str) -> None:
        from azure.storage.blob import BlobServiceClient

        container, _, blob = store.uri_for(rel_path).removeprefix("az://").partition("/")
        conn = str((store.storage_options or {})["connection_string"])
        with BlobServiceClient.from_connection_string(conn) as service:
            client = service.get_blob_client(container, blob)
            data = client.download_blob().readall()
            client.upload_blob(flip_bytes(data), overwrite=True)


@pytest.mark.parametrize("scheme", ["abfs", "abfss"])
def test_other_azure_schemes(scheme: str, azurite: AzuriteHandle, azurite_container: str) -> None:
    root = f"{scheme}://{azurite_container}/{uuid4().hex}"
    store = ArtifactStore(root, {"connection_string": azurite.connection_string})
    size, sha = store.write_bytes("a.txt", b"azure")
    assert store.read_verified("a.txt", sha) == b"azure"
    assert store.list("") == [("a.txt", False, size)]


def test_missing_container(azurite: AzuriteHandle) -> None:
    store = ArtifactStore(
        f"az://absent-{uuid4().hex[:8]}/x", {"connection_string": azurite.connection_string}
    )
    with pytest.raises(ConveyorError, match="artifact root does not exist"):
        store.write_bytes("a.txt", b"x")
    with pytest.raises(ArtifactNotFound):
        store.read_bytes("a.txt")
    assert store.list("") == []
