"""The tracking service: metadata store plus artifact store, with the rules that span both.

Both HTTP APIs (Conveyor's own and the MLflow-compatible one) and the in-process client
call this one layer, so an artifact is hashed, indexed and verified the same way whoever
sends it. Artifact paths here are relative to the artifact root, e.g.
``3/<run_id>/artifacts/model/model.pkl``.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from conveyor.artifacts import ArtifactStore, safe_relpath
from conveyor.config import Settings
from conveyor.errors import ArtifactNotFound, InvalidInput, InvalidState
from conveyor.store.base import MANAGED_ARTIFACT_SCHEME, TrackingStore, now_ms
from conveyor.store.entities import ArtifactRecord, LifecycleStage, Run
from conveyor.tracking import reproducibility

_RUN_ARTIFACT_PATH = re.compile(r"^(?P<experiment>[0-9]+)/(?P<run>[0-9a-f]{32})/artifacts(?:/|$)")


@dataclass(frozen=True, slots=True)
class FileInfo:
    """One entry of an artifact listing; ``path`` is relative to the folder that was listed."""

    path: str
    is_dir: bool
    file_size: int | None


class TrackingService:
    """Tracking operations that need the metadata store and the artifact store together."""

    def __init__(self, store: TrackingStore, artifacts: ArtifactStore) -> None:
        self.store = store
        self.artifacts = artifacts

    @classmethod
    def from_settings(cls, settings: Settings) -> TrackingService:
        """Open the stores the settings name (migrating a fresh database)."""
        from conveyor.store import open_store

        store = open_store(settings.resolved_database_url(), upgrade=settings.auto_upgrade)
        return cls(store, ArtifactStore(settings.resolved_artifact_root(), settings.artifact_storage_options))

    # -- runs ----------------------------------------------------------------------------------

    def create_run_for_client(
        self,
        experiment_id: str,
        *,
        user_id: str,
        start_time: int | None,
        tags: dict[str, str],
        run_name: str | None,
    ) -> Run:
        """Start a run a remote client asked for, with a reproducibility record either way.

        Conveyor's clients send the record they captured; for any other (an ``mlflow``
        client) the server stores what it can vouch for, graded C with the reason.
        """
        if reproducibility.GRADE_TAG not in tags:
            tags = {**reproducibility.remote_record_tags(tags), **tags}
        return self.store.create_run(
            experiment_id, user_id=user_id, start_time=start_time, tags=tags, run_name=run_name
        )

    # -- locating artifacts ----------------------------------------------------------------

    @staticmethod
    def run_artifact_root(run: Run) -> str:
        """The run's artifact folder relative to the root, for runs whose artifacts we manage."""
        uri = run.info.artifact_uri
        if not uri.startswith(MANAGED_ARTIFACT_SCHEME):
            raise InvalidInput(
                f"Run {run.info.run_id} stores its artifacts at {uri!r}, outside this server's "
                "artifact root; read them from there directly."
            )
        return uri[len(MANAGED_ARTIFACT_SCHEME) :].strip("/")

    def run_artifact_path(self, run_id: str, path: str = "") -> str:
        root = self.run_artifact_root(self.store.get_run(run_id))
        return posixpath.join(root, safe_relpath(path)) if path else root

    def _owning_run(self, rel_path: str) -> str | None:
        """The run an upload belongs to, which must be active; ``None`` for non-run paths."""
        match = _RUN_ARTIFACT_PATH.match(rel_path)
        if match is None:
            return None
        run = self.store.get_run(match["run"])
        if run.info.lifecycle_stage != LifecycleStage.ACTIVE:
            raise InvalidInput(f"Cannot upload artifacts to run {run.info.run_id}: it is deleted.")
        return run.info.run_id

    # -- writing ---------------------------------------------------------------------------

    def put_artifact(self, rel_path: str, chunks: Iterable[bytes]) -> ArtifactRecord:
        """Store bytes, hashing them on the way, then index them; the index entry is the acknowledgement."""
        rel_path = safe_relpath(rel_path)
        run_id = self._owning_run(rel_path)
        size, sha256 = self.artifacts.write(rel_path, chunks)
        record = ArtifactRecord(path=rel_path, size=size, sha256=sha256, run_id=run_id, created_time=now_ms())
        self.store.record_artifact(record)
        return record

    def log_artifact(self, run_id: str, artifact_path: str, chunks: Iterable[bytes]) -> ArtifactRecord:
        return self.put_artifact(self.run_artifact_path(run_id, artifact_path), chunks)

    # -- reading ---------------------------------------------------------------------------

    def artifact_record(self, rel_path: str) -> ArtifactRecord:
        rel_path = safe_relpath(rel_path)
        record = self.store.get_artifact_record(rel_path)
        if record is None:
            raise ArtifactNotFound(f"No artifact at '{rel_path}'")
        return record

    def read_artifact(self, rel_path: str) -> bytes:
        """The artifact's bytes, refused with ``IntegrityError`` if they no longer match their hash."""
        record = self.artifact_record(rel_path)
        return self.artifacts.read_verified(record.path, record.sha256)

    def stream_artifact(
        self, rel_path: str, chunk_size: int = 1 << 20
    ) -> tuple[ArtifactRecord, Iterator[bytes]]:
        """Verify first, then stream: a corrupted file is refused before any byte is sent."""
        record = self.artifact_record(rel_path)
        self.artifacts.verify(record.path, record.sha256, record.size)
        return record, self.artifacts.iter_bytes(record.path, chunk_size)

    def list_artifacts(self, rel_dir: str) -> list[FileInfo]:
        """Direct children of a folder, from the index (fast on blob storage, and only acknowledged files)."""
        rel_dir = safe_relpath(rel_dir) if rel_dir else ""
        prefix = f"{rel_dir}/" if rel_dir else ""
        entries: dict[str, FileInfo] = {}
        for record in self.store.list_artifact_records(prefix):
            rest = record.path[len(prefix) :]
            head, _, tail = rest.partition("/")
            if tail:
                entries.setdefault(head, FileInfo(head, True, None))
            else:
                entries[head] = FileInfo(head, False, record.size)
        return sorted(entries.values(), key=lambda info: info.path)

    # -- deleting --------------------------------------------------------------------------

    def delete_artifact(self, rel_path: str) -> int:
        """Remove a file or a folder (bytes and index entries); returns how many files went."""
        rel_path = safe_relpath(rel_path)
        removed = self.store.delete_artifact_records(rel_path)
        if removed == 0:
            raise ArtifactNotFound(f"No artifact at '{rel_path}'")
        if self.artifacts.exists(rel_path):
            self.artifacts.delete(rel_path)
        else:
            self.artifacts.delete_prefix(rel_path)
        return removed

    def collect_garbage(self, older_than_ms: int | None = None) -> tuple[list[str], list[str]]:
        """Remove soft-deleted runs and logged models for good; returns both lists of ids."""
        removed = []
        for run_id in self.store.deleted_run_ids(older_than_ms):
            self.purge_run(run_id)
            removed.append(run_id)
        return removed, self.purge_deleted_models(older_than_ms)

    def purge_deleted_models(self, older_than_ms: int | None = None) -> list[str]:
        """Remove soft-deleted MLflow 3 logged models: files, index entries, then rows.

        Logged models live in the SQL store only; other back ends have none to collect.
        """
        from conveyor.store.sql.logged_models import SqlLoggedModelStore
        from conveyor.store.sql.store import SqlStore

        if not isinstance(self.store, SqlStore):
            return []
        models = SqlLoggedModelStore(self.store)
        removed = []
        for model_id, location in models.deleted(older_than_ms):
            if location.startswith(MANAGED_ARTIFACT_SCHEME):
                # ``<experiment>/models/<id>/artifacts``: remove the model's whole folder.
                folder = posixpath.dirname(location[len(MANAGED_ARTIFACT_SCHEME) :].strip("/"))
                self.artifacts.delete_prefix(folder)
                self.store.delete_artifact_records(folder)
            models.hard_delete(model_id)
            removed.append(model_id)
        return removed

    def purge_run(self, run_id: str) -> None:
        """Remove one soft-deleted run: artifacts first, so nothing is left orphaned in storage."""
        run = self.store.get_run(run_id)
        if run.info.lifecycle_stage != LifecycleStage.DELETED:
            raise InvalidState(f"Run {run_id} must be deleted before it can be removed for good.")
        if run.info.artifact_uri.startswith(MANAGED_ARTIFACT_SCHEME):
            # The run's folder (``<experiment>/<run>``), not only its ``artifacts`` child.
            self.artifacts.delete_prefix(posixpath.dirname(self.run_artifact_root(run)))
        self.store.hard_delete_run(run_id)
