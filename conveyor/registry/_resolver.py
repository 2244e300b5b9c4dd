"""``models:/`` URIs for :func:`conveyor.models.load`, answered by the registry.

The resolver returns the version's folder together with the digest recorded at
registration, so ``load`` refuses a version whose bytes were changed since.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from conveyor.errors import InvalidInput
from conveyor.models import ResolvedModel, ResolveRequest
from conveyor.registry.service import RegistryService
from conveyor.store.sql.store import SqlStore
from conveyor.tracking.artifact_repo import LocalArtifactRepository


def resolve_models_uri(request: ResolveRequest) -> ResolvedModel:
    """Resolve ``models:/<name>/<version>`` or ``models:/<name>@<alias>``; see the module docstring."""
    with _service(request) as service:
        return service.fetch(service.resolve(request.uri), request.scratch)


@contextmanager
def _service(request: ResolveRequest) -> Iterator[RegistryService]:
    """The caller's local stores when its client has them, else the configured ones."""
    client = request.client
    if client is not None:
        if not (isinstance(client.store, SqlStore) and isinstance(client.artifacts, LocalArtifactRepository)):
            raise InvalidInput(
                f"Cannot resolve {request.uri!r} through a Conveyor server yet: load it where the "
                "registry's database is reachable, or by runs:/<run_id>/<path>"
            )
        yield RegistryService(client.store, client.artifacts.service.artifacts)
        return
    from conveyor.config import Settings

    service = RegistryService.from_settings(Settings())
    try:
        yield service
    finally:
        service.store.close()
