"""Where served models come from: the registry, a run, or a folder.

A ``models:/name@alias`` URI is resolved to a version number first and that exact
version is loaded (``models:/name/<n>``), so the version a server reports is the one it
loaded even when the alias moves in between. The same registry answers the hot-swap
watcher's question, "where does ``champion`` point now?".
"""

from __future__ import annotations

import logging
import threading
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from conveyor.errors import InvalidInput
from conveyor.serving.deployment import uri_alias

if TYPE_CHECKING:
    from conveyor.config import Settings
    from conveyor.models import LoadedModel
    from conveyor.registry import RegistryService
    from conveyor.tracking.client import Client

__all__ = ["ModelSource", "Resolved"]

log = logging.getLogger("conveyor.serving")


@dataclass(frozen=True, slots=True)
class Resolved:
    """What a URI names right now: the version to load, the alias it came through."""

    #: Registry version number, or the first 12 hex digits of the digest for a folder or run.
    version: str
    alias: str | None
    #: The URI to load: version-pinned for the registry, the URI itself otherwise.
    load_uri: str


class ModelSource:
    """Resolves and loads model URIs; opens the metadata store only when a URI needs it.

    Args:
        settings: Where the registry's database and the artifact store are.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: Client | None = None
        self._registry: RegistryService | None = None
        self._lock = threading.Lock()

    def resolve(self, uri: str) -> Resolved:
        """The version ``uri`` names now (registry URIs), or the URI itself.

        Raises:
            NotFound: no such registered model, version or alias.
            InvalidState: the version is not ready.
        """
        parts = uri_alias(uri)
        if parts is None:
            return Resolved(version="", alias=None, load_uri=uri)
        name, _, alias = parts
        found = self.registry().resolve(uri)
        return Resolved(str(found.version), alias, f"models:/{name}/{found.version}")

    def load(
        self, resolved: Resolved, *, allow_pickle: bool = False, trusted_types: tuple[str, ...] = ()
    ) -> tuple[LoadedModel, str]:
        """The loaded model, every file verified, and the version to report for it."""
        from conveyor import models

        needs_client = resolved.load_uri.startswith(("models:/", "runs:/"))
        with warnings.catch_warnings(record=True) as caught:
            # The deployment opted in to pickle; say so in the server's log, not as a warning.
            warnings.simplefilter("always", models.PickleWarning)
            loaded = models.load(
                resolved.load_uri,
                allow_pickle=allow_pickle,
                trusted_types=trusted_types,
                client=self.client() if needs_client else None,
            )
        for warning in caught:
            log.warning("%s", warning.message)
        return loaded, resolved.version or loaded.manifest.digest[:12]

    def client(self) -> Client:
        """The tracking client on the local store, opened on first use."""
        with self._lock:
            if self._client is None:
                from conveyor.tracking.client import Client

                self._client = Client(settings=self.settings)
            return self._client

    def registry(self) -> RegistryService:
        """The registry on the client's database.

        Raises:
            InvalidInput: the tracking URI is a server's, where the registry cannot be read.
        """
        client = self.client()
        with self._lock:
            if self._registry is None:
                from conveyor.registry import RegistryService
                from conveyor.store.sql.store import SqlStore
                from conveyor.tracking.artifact_repo import LocalArtifactRepository

                if not isinstance(client.store, SqlStore) or not isinstance(
                    client.artifacts, LocalArtifactRepository
                ):
                    raise InvalidInput(
                        "Serving models:/ URIs reads the registry's database: set CONVEYOR_DATABASE_URL "
                        "(not a server URL in CONVEYOR_TRACKING_URI)"
                    )
                self._registry = RegistryService(client.store, client.artifacts.service.artifacts)
            return self._registry

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
            self._client = self._registry = None
