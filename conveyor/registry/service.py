"""The registry's service layer: what the CLI, the server and Python code call.

It adds to the SQL store what needs more than the database: verifying a model's files
when a version is registered (so the recorded digest is the digest of real, intact
bytes), fetching a version for ``conveyor.models.load`` with that digest as the expected
one, the actor of each change, and the guards that may refuse an alias move.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.artifacts import ArtifactStore
from conveyor.errors import InvalidInput, InvalidState
from conveyor.models import ResolvedModel, parse_models_uri, read_model_manifest
from conveyor.registry import _sources
from conveyor.store.base import MANAGED_ARTIFACT_SCHEME
from conveyor.store.entities import Page
from conveyor.store.sql.approvals import ProtectedAliasGuard
from conveyor.store.sql.registry import AliasGuard, SqlRegistryStore
from conveyor.store.sql.registry_entities import (
    DEFAULT_MODEL_RESULTS,
    DEFAULT_VERSION_RESULTS,
    AliasEvent,
    ModelVersion,
    RegisteredModel,
    VersionStatus,
)
from conveyor.store.sql.store import SqlStore
from conveyor.store.sql.webhooks import EventHook, SqlWebhookStore
from conveyor.tracking.context import current_user

if TYPE_CHECKING:
    from conveyor.config import Settings


class RegistryService:
    """Registered models, immutable versions, aliases with history, MLflow stages.

    Args:
        store: The SQL metadata store (opened).
        artifacts: The managed artifact store, where ``runs:/`` and ``mlflow-artifacts:/``
            sources live.
        allow_local_sources: Accept local folders as sources (the embedded default); the
            server passes False so a request cannot make it read its own disk.
        alias_guards: Called inside each alias move's transaction with the
            :class:`AliasMove`; raising refuses the move. None (the default) installs
            :class:`~conveyor.store.sql.approvals.ProtectedAliasGuard`, so protected
            aliases (``champion``, ``production``) move only under an approval whoever
            builds the service; pass ``()`` to opt out (tests, migrations of history).
        events: Webhooks: called inside each change's transaction with ``(conn, event,
            payload)`` (see :data:`~conveyor.store.sql.webhooks.EVENTS`). None (the
            default) queues deliveries in the webhooks' outbox; pass ``()`` to opt out.
    """

    def __init__(
        self,
        store: SqlStore,
        artifacts: ArtifactStore,
        *,
        allow_local_sources: bool = True,
        alias_guards: Sequence[AliasGuard] | None = None,
        events: Sequence[EventHook] | None = None,
    ) -> None:
        self.store = store
        self.artifacts = artifacts
        self.allow_local_sources = allow_local_sources
        self.alias_guards = (ProtectedAliasGuard(store),) if alias_guards is None else tuple(alias_guards)
        self.records = SqlRegistryStore(store)
        # Webhooks: the outbox hook, unless the caller chose its own (or none).
        self.events = (SqlWebhookStore(store).enqueue,) if events is None else tuple(events)

    @classmethod
    def from_settings(cls, settings: Settings) -> RegistryService:
        """Open the stores the settings name (migrating a fresh database)."""
        from conveyor.store import open_store

        store = open_store(settings.resolved_database_url(), upgrade=settings.auto_upgrade)
        if not isinstance(store, SqlStore):
            raise InvalidInput("The model registry needs a database URL, not a server URL, for now")
        return cls(store, ArtifactStore(settings.resolved_artifact_root(), settings.artifact_storage_options))

    # -- registered models -------------------------------------------------------------------

    def create_model(
        self,
        name: str,
        *,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        actor: str | None = None,
    ) -> RegisteredModel:
        """Create an empty registered model; see ``SqlRegistryStore.create_model``."""
        return self.records.create_model(
            name, actor=actor or current_user(), description=description, tags=tags
        )

    def get_model(self, name: str) -> RegisteredModel:
        return self.records.get_model(name)

    def search_models(
        self,
        filter_string: str | None = None,
        *,
        max_results: int = DEFAULT_MODEL_RESULTS,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> Page[RegisteredModel]:
        return self.records.search_models(
            filter_string, max_results=max_results, order_by=order_by, page_token=page_token
        )

    def delete_model(self, name: str, *, actor: str | None = None) -> None:
        """Delete the model and its versions; the alias history and audit records remain."""
        self.records.delete_model(name, actor=actor or current_user())

    def rename_model(self, name: str, new_name: str, *, actor: str | None = None) -> RegisteredModel:
        """Rename; versions, aliases and their history follow the model."""
        return self.records.rename_model(name, new_name, actor=actor or current_user())

    def update_model(
        self, name: str, description: str | None, *, actor: str | None = None
    ) -> RegisteredModel:
        return self.records.update_model(name, actor=actor or current_user(), description=description)

    def set_model_tag(self, name: str, key: str, value: str, *, actor: str | None = None) -> None:
        self.records.set_model_tag(name, key, value, actor=actor or current_user())

    def delete_model_tag(self, name: str, key: str, *, actor: str | None = None) -> None:
        self.records.delete_model_tag(name, key, actor=actor or current_user())

    # -- versions ----------------------------------------------------------------------------

    def create_version(
        self,
        name: str,
        source: str,
        *,
        run_id: str | None = None,
        run_link: str | None = None,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        actor: str | None = None,
    ) -> ModelVersion:
        """Register the model at ``source`` as the model's next version.

        The source's files are fetched and verified against the model's manifest (or
        hashed, for an MLflow-format directory) before anything is recorded, and the
        version keeps that digest for good: loading it later refuses any other bytes.

        Raises:
            NotFound: no such registered model, run, or model files at the source.
            InvalidInput: an unsupported source, or ``run_id`` differs from the run the
                source belongs to.
            IntegrityError: the source's files do not match their manifest or hashes.
        """
        parsed = _sources.parse_source(
            source, self.store, self.artifacts, allow_local=self.allow_local_sources
        )
        if run_id and parsed.run_id and run_id != parsed.run_id:
            raise InvalidInput(
                f"run_id {run_id!r} differs from the run of source {source!r} ({parsed.run_id})"
            )
        self.records.get_model(name)  # fail fast, before downloading the files
        with tempfile.TemporaryDirectory(prefix="conveyor-register-") as scratch:
            digest = read_model_manifest(
                _sources.fetch(parsed, self.store, self.artifacts, Path(scratch))
            ).digest
        return self.records.create_version(
            name,
            source,
            actor=actor or current_user(),
            model_digest=digest,
            run_id=run_id or parsed.run_id,
            run_link=run_link,
            description=description,
            tags=tags,
            events=self.events,
        )

    def get_version(self, name: str, version: int | str) -> ModelVersion:
        return self.records.get_version(name, version)

    def search_versions(
        self,
        filter_string: str | None = None,
        *,
        max_results: int = DEFAULT_VERSION_RESULTS,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> Page[ModelVersion]:
        return self.records.search_versions(
            filter_string, max_results=max_results, order_by=order_by, page_token=page_token
        )

    def delete_version(self, name: str, version: int | str, *, actor: str | None = None) -> None:
        """Flag the version deleted; its number is never given out again."""
        self.records.delete_version(name, version, actor=actor or current_user())

    def update_version(
        self, name: str, version: int | str, description: str | None, *, actor: str | None = None
    ) -> ModelVersion:
        """Change the description; the source, run and digest cannot change."""
        return self.records.update_version(
            name, version, actor=actor or current_user(), description=description
        )

    def set_version_tag(
        self, name: str, version: int | str, key: str, value: str, *, actor: str | None = None
    ) -> None:
        self.records.set_version_tag(name, version, key, value, actor=actor or current_user())

    def delete_version_tag(
        self, name: str, version: int | str, key: str, *, actor: str | None = None
    ) -> None:
        self.records.delete_version_tag(name, version, key, actor=actor or current_user())

    def transition_stage(
        self,
        name: str,
        version: int | str,
        stage: str,
        *,
        archive_existing: bool = False,
        actor: str | None = None,
    ) -> ModelVersion:
        """MLflow's deprecated stages, for its clients; prefer aliases, which keep history."""
        return self.records.transition_stage(
            name, version, stage, actor=actor or current_user(), archive_existing=archive_existing
        )

    def latest_versions(self, name: str, stages: Sequence[str] | None = None) -> list[ModelVersion]:
        return self.records.latest_versions(name, stages)

    def download_uri(self, name: str, version: int | str) -> str:
        """Where the version's files are, as MLflow's ``get-download-uri`` answers."""
        found = self.records.get_version(name, version)
        parsed = _sources.parse_source(found.source, self.store, self.artifacts, allow_local=True)
        if parsed.managed is not None:
            return f"{MANAGED_ARTIFACT_SCHEME}/{parsed.managed}"
        return found.source

    # -- aliases -----------------------------------------------------------------------------

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int | str,
        *,
        reason: str | None = None,
        approval_id: str | None = None,
        actor: str | None = None,
    ) -> AliasEvent:
        """Point ``alias`` at ``version``; the move, its reason and approval are recorded.

        Raises:
            InvalidInput: a reserved (``latest``, ``v<n>``) or malformed alias.
            NotFound: no such model or version.
            ConveyorError: what an alias guard raises (the move is not written).
        """
        return self.records.set_alias(
            name,
            alias,
            version,
            actor=actor or current_user(),
            reason=reason,
            approval_id=approval_id,
            guards=self.alias_guards,
            events=self.events,
        )

    def delete_alias(
        self,
        name: str,
        alias: str,
        *,
        reason: str | None = None,
        approval_id: str | None = None,
        actor: str | None = None,
    ) -> AliasEvent:
        """Remove ``alias``; recorded as a move to no version."""
        return self.records.delete_alias(
            name,
            alias,
            actor=actor or current_user(),
            reason=reason,
            approval_id=approval_id,
            guards=self.alias_guards,
            events=self.events,
        )

    def get_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        return self.records.get_version_by_alias(name, alias)

    def alias_history(
        self, name: str, alias: str | None = None, *, at: datetime | int | None = None
    ) -> list[AliasEvent]:
        """Every move of the model's aliases (or one alias), oldest first, up to ``at``."""
        return self.records.alias_history(name, alias, at=_ms(at))

    def alias_at(self, name: str, alias: str, at: datetime | int) -> AliasEvent | None:
        """The move that set what ``alias`` named at time ``at``: which version
        (``new_version``; None if it was removed), who moved it, when, why, under which
        approval. None if the alias had never been set by then."""
        events = self.records.alias_history(name, alias, at=_ms(at))
        return events[-1] if events else None

    # -- loading -----------------------------------------------------------------------------

    def resolve(self, uri: str) -> ModelVersion:
        """The version ``models:/<name>/<version>`` or ``models:/<name>@<alias>`` names.

        Raises:
            InvalidInput: not a registry URI.
            NotFound: no such model, version or alias.
            InvalidState: the version is not READY.
        """
        name, version, alias = parse_models_uri(uri)
        found = self.get_version(name, version) if version else self.get_version_by_alias(name, alias or "")
        if found.status is not VersionStatus.READY or not found.model_digest:
            raise InvalidState(f"Model version {found.name}/{found.version} is {found.status}, not READY")
        return found

    def fetch(self, version: ModelVersion, scratch: Path) -> ResolvedModel:
        """The version's files in a local folder (downloaded into ``scratch`` when they are
        managed), with the digest they must have, for ``conveyor.models.load``."""
        parsed = _sources.parse_source(version.source, self.store, self.artifacts, allow_local=True)
        return ResolvedModel(
            _sources.fetch(parsed, self.store, self.artifacts, scratch), expected_digest=version.model_digest
        )


def _ms(at: datetime | int | None) -> int | None:
    """Milliseconds since the epoch; a naive datetime is refused rather than guessed."""
    if at is None or isinstance(at, int):
        return at
    if at.tzinfo is None:
        raise InvalidInput(f"Time {at.isoformat()} has no time zone; give one (e.g. 2026-03-01T10:00Z)")
    return int(at.timestamp() * 1000)
