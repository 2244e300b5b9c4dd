"""What monitor jobs work on: the registry, the monitoring tables and where predictions are logged.

One frozen object, built once at the edge (CLI, pipeline step, server) and passed to
:func:`~conveyor.monitoring.jobs.run_monitor` and
:func:`~conveyor.monitoring.profiles.profile_version`, so every job sees the same stores.

Example::

    ctx = MonitorContext.from_settings(Settings())
    try:
        run_monitor(ctx, "models:/churn@champion", window="1h")
    finally:
        ctx.close()
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conveyor.errors import InvalidInput
from conveyor.store.sql.monitoring import SqlMonitorStore
from conveyor.store.sql.monitoring_alerts import SqlAlertStore
from conveyor.store.sql.store import SqlStore

if TYPE_CHECKING:
    from conveyor.config import Settings
    from conveyor.registry import RegistryService
    from conveyor.store.sql.webhooks import EventHook

#: Where the prediction log lives under the artifact root when nothing else is said.
PREDICTIONS_FOLDER = "predictions"


@dataclass(frozen=True)
class MonitorContext:
    """The stores a monitor job reads and writes.

    Attributes:
        registry: resolves ``models:/`` URIs, loads models, holds the artifact store.
        records: profiles, runs and points.
        alerts: alert rules and alerts (webhook events queued in their transactions).
        log_root: the prediction log's root (and the feedback beside it).
        storage_options: fsspec options of ``log_root``.
    """

    registry: RegistryService
    records: SqlMonitorStore
    alerts: SqlAlertStore
    log_root: str
    storage_options: Mapping[str, Any] | None = None

    @classmethod
    def for_registry(
        cls,
        registry: RegistryService,
        *,
        log_root: str | None = None,
        storage_options: Mapping[str, Any] | None = None,
        events: Sequence[EventHook] | None = None,
    ) -> MonitorContext:
        """A context on ``registry``'s stores; ``log_root`` defaults to ``<artifact root>/predictions``.

        ``events`` as for :class:`~conveyor.store.sql.monitoring_alerts.SqlAlertStore`
        (None: the webhooks' outbox; ``()``: no events).
        """
        root = log_root or f"{registry.artifacts.root_uri.rstrip('/')}/{PREDICTIONS_FOLDER}"
        options = storage_options if log_root else (storage_options or registry.artifacts.storage_options)
        return cls(
            registry=registry,
            records=SqlMonitorStore(registry.store),
            alerts=SqlAlertStore(registry.store, events),
            log_root=root,
            storage_options=options,
        )

    @classmethod
    def from_settings(cls, settings: Settings, *, log_root: str | None = None) -> MonitorContext:
        """Open the stores the settings name (the registry's database and artifact root).

        Raises:
            InvalidInput: the settings name a server rather than a database.
        """
        from conveyor.registry import RegistryService

        return cls.for_registry(RegistryService.from_settings(settings), log_root=log_root)

    @property
    def store(self) -> SqlStore:
        return self.registry.store

    def close(self) -> None:
        """Close the metadata store (the context is unusable afterwards)."""
        self.registry.store.close()


def monitor_records(store: SqlStore | SqlMonitorStore | MonitorContext) -> SqlMonitorStore:
    """The monitoring tables of a SQL store, a monitor store or a context.

    Raises:
        InvalidInput: a store that is not the SQL store (a server's REST client).
    """
    if isinstance(store, MonitorContext):
        return store.records
    if isinstance(store, SqlMonitorStore):
        return store
    if isinstance(store, SqlStore):
        return SqlMonitorStore(store)
    raise InvalidInput(
        f"Monitoring results live in the SQL metadata store, not in a {type(store).__name__}: "
        "use the database URL (CONVEYOR_DATABASE_URL), or the server's /api/conveyor/v1/monitoring API"
    )


def alert_records(store: SqlStore | SqlAlertStore | MonitorContext) -> SqlAlertStore:
    """The alert tables of a SQL store, an alert store or a context (see :func:`monitor_records`)."""
    if isinstance(store, MonitorContext):
        return store.alerts
    if isinstance(store, SqlAlertStore):
        return store
    if isinstance(store, SqlStore):
        return SqlAlertStore(store)
    raise InvalidInput(f"Alerts live in the SQL metadata store, not in a {type(store).__name__}")
