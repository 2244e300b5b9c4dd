"""How the client moves artifact bytes: straight into the stores, or through a server.

Both sides end in :class:`~conveyor.tracking.service.TrackingService`, so a file logged
either way is hashed, indexed and verified identically.
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import orjson

from conveyor.errors import IntegrityError
from conveyor.store.rest import RestStore
from conveyor.tracking.service import FileInfo, TrackingService

CHUNK = 1 << 20


def file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


class ArtifactRepository(ABC):
    @abstractmethod
    def upload(self, run_id: str, artifact_path: str, local_file: Path) -> None: ...

    @abstractmethod
    def download(self, run_id: str, artifact_path: str, local_file: Path) -> None:
        """Write the verified file to ``local_file``; a corrupted artifact raises ``IntegrityError``."""

    @abstractmethod
    def list(self, run_id: str, path: str = "") -> list[FileInfo]: ...


class LocalArtifactRepository(ArtifactRepository):
    def __init__(self, service: TrackingService) -> None:
        self.service = service

    def upload(self, run_id: str, artifact_path: str, local_file: Path) -> None:
        self.service.log_artifact(run_id, artifact_path, file_chunks(local_file))

    def download(self, run_id: str, artifact_path: str, local_file: Path) -> None:
        record = self.service.artifact_record(self.service.run_artifact_path(run_id, artifact_path))
        self.service.artifacts.download(record.path, str(local_file), record.sha256)

    def list(self, run_id: str, path: str = "") -> list[FileInfo]:
        return self.service.list_artifacts(self.service.run_artifact_path(run_id, path))


class RemoteArtifactRepository(ArtifactRepository):
    def __init__(self, store: RestStore) -> None:
        self.store = store

    def upload(self, run_id: str, artifact_path: str, local_file: Path) -> None:
        self.store.request(
            "PUT",
            f"/runs/{run_id}/artifacts/{quote(artifact_path)}",
            content=file_chunks(local_file),
            headers={"Content-Length": str(os.path.getsize(local_file))},
        )

    def download(self, run_id: str, artifact_path: str, local_file: Path) -> None:
        # The server verifies the stored bytes before sending; this check guards the wire.
        response = self.store.request("GET", f"/runs/{run_id}/artifacts/{quote(artifact_path)}")
        expected = response.headers.get("X-Content-SHA256")
        found = hashlib.sha256(response.content).hexdigest()
        if expected and found != expected:
            raise IntegrityError(
                f"artifact '{artifact_path}' of run {run_id} arrived corrupted: "
                f"expected sha256 {expected}, found {found}"
            )
        partial = local_file.with_name(local_file.name + ".partial")
        partial.write_bytes(response.content)
        partial.replace(local_file)

    def list(self, run_id: str, path: str = "") -> list[FileInfo]:
        response = self.store.request("GET", f"/runs/{run_id}/artifact-list", params={"path": path})
        return [FileInfo(**f) for f in orjson.loads(response.content)["files"]]
