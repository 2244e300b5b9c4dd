"""Builds the ASGI application: one service layer, one router module per API.

The server depends on capabilities (``conveyor.tracking``), never the reverse; routers
translate HTTP to service calls and back and never touch SQL or fsspec.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

from conveyor._version import __version__
from conveyor.config import Settings
from conveyor.errors import BackendUnavailable
from conveyor.server.actor import ActorMiddleware
from conveyor.server.errors import install_error_handlers
from conveyor.server.responses import JSON
from conveyor.tracking.service import TrackingService


def create_app(settings: Settings | None = None, service: TrackingService | None = None) -> FastAPI:
    """The Conveyor server app; pass ``service`` to serve stores built elsewhere (tests, embedding)."""
    from conveyor.server import mlflow_api, native

    settings = settings or Settings()
    service = service or TrackingService.from_settings(settings)
    app = FastAPI(
        title="Conveyor",
        version=__version__,
        description="Experiment tracking with an MLflow-compatible API.",
        default_response_class=JSON,
        lifespan=_webhooks_lifespan,
    )
    app.state.service = service
    install_error_handlers(app)
    # MLflow's routes first: its clients send the most requests, and FastAPI tries routes in order.
    app.include_router(mlflow_api.build_router(service))
    app.include_router(native.build_router(service))
    _include_approvals(app, service)
    _include_cards(app, service)
    _include_audit(app, service)
    _include_monitoring(app, service)
    _include_metrics(app, service)
    # Added before auth, so it runs inside it and sees the principal auth found.
    app.add_middleware(ActorMiddleware)
    if settings.auth:
        _install_auth(app, service)

    @app.get("/health", response_class=PlainTextResponse, include_in_schema=False)
    def health() -> str:
        return "OK"

    @app.get("/version", response_class=PlainTextResponse, include_in_schema=False)
    def version() -> str:
        return __version__

    return app


def _include_approvals(app: FastAPI, service: TrackingService) -> None:
    """Serve the approval routes where the registry lives: the SQL store (not a REST one)."""
    from conveyor.registry import ApprovalService, RegistryService
    from conveyor.server import approvals_api
    from conveyor.store.sql.store import SqlStore

    if isinstance(service.store, SqlStore):
        registry = RegistryService(service.store, service.artifacts, allow_local_sources=False)
        approvals = ApprovalService(registry)
        app.include_router(approvals_api.build_router(approvals))
        app.include_router(approvals_api.build_policy_router(approvals))


def _include_cards(app: FastAPI, service: TrackingService) -> None:
    """Serve model cards where the registry and its source runs live: the SQL store."""
    from conveyor.registry import RegistryService
    from conveyor.server import cards_api
    from conveyor.store.sql.store import SqlStore

    if isinstance(service.store, SqlStore):
        registry = RegistryService(service.store, service.artifacts, allow_local_sources=False)
        app.include_router(cards_api.build_router(registry))


def _include_audit(app: FastAPI, service: TrackingService) -> None:
    """Serve the read-only audit routes where the log lives: the SQL store (not a REST one)."""
    from conveyor.server import audit_api
    from conveyor.store.sql.audit import AuditLog
    from conveyor.store.sql.store import SqlStore

    if isinstance(service.store, SqlStore):
        app.include_router(audit_api.build_router(AuditLog(service.store)))


def _include_monitoring(app: FastAPI, service: TrackingService) -> None:
    """Serve monitor results, runs and alert rules where their tables live: the SQL store."""
    from conveyor.server import monitoring_api
    from conveyor.store.sql.store import SqlStore

    if isinstance(service.store, SqlStore):
        app.include_router(monitoring_api.build_router(service.store))


def _include_metrics(app: FastAPI, service: TrackingService) -> None:
    """Serve Prometheus ``/metrics``: monitoring gauges read from the SQL store on each scrape.

    Not an open path: with ``--auth`` it needs ``read`` like any GET, because the gauges
    name models and features (Prometheus sends a token: ``authorization`` in its scrape
    config). ``app.state.metrics_registry`` holds the collectors, for embedders to extend.
    """
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    from conveyor.monitoring.exporter import MonitoringCollector
    from conveyor.store.sql.store import SqlStore

    if not isinstance(service.store, SqlStore):
        return
    app.state.metrics_registry = CollectorRegistry(auto_describe=True)
    app.state.metrics_registry.register(MonitoringCollector.for_store(service.store))

    # A plain (sync) route: FastAPI runs it in a thread, so the store read never blocks the loop.
    @app.get("/metrics", response_class=PlainTextResponse, include_in_schema=False)
    def metrics() -> PlainTextResponse:
        body = generate_latest(app.state.metrics_registry)
        return PlainTextResponse(body, media_type=CONTENT_TYPE_LATEST)


@contextlib.asynccontextmanager
async def _webhooks_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Send registry webhooks in the background while the server runs (SQL store only)."""
    from conveyor.registry.webhooks import WebhookDispatcher
    from conveyor.store.sql.store import SqlStore

    store = app.state.service.store
    dispatcher = WebhookDispatcher(store) if isinstance(store, SqlStore) else None
    if dispatcher is not None:
        dispatcher.start()
    try:
        yield
    finally:
        if dispatcher is not None:
            dispatcher.stop()


def _install_auth(app: FastAPI, service: TrackingService) -> None:
    """Authenticate every request, and serve the identity admin API (admins only).

    Authentication needs the identity tables, so the tracking store must be the SQL store.
    """
    from conveyor.identity import IdentityService
    from conveyor.server import identity_api
    from conveyor.server.auth import AuthMiddleware
    from conveyor.store.sql.store import SqlStore

    if not isinstance(service.store, SqlStore):
        raise BackendUnavailable(
            "Authentication (--auth) needs the SQL metadata store (sqlite:/// or postgresql+psycopg://)."
        )
    identity = IdentityService.for_store(service.store)
    app.include_router(identity_api.build_router(identity))
    app.add_middleware(AuthMiddleware, identity=identity)


def app_from_environment() -> FastAPI:
    """Factory for ``uvicorn --factory`` so every worker process builds its own app from the environment."""
    return create_app(Settings())
