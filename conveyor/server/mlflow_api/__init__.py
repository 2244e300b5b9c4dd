"""The MLflow REST API 2.0 tracking surface, so unmodified MLflow clients work against Conveyor.

Point any MLflow client at the server (``MLFLOW_TRACKING_URI=http://host:port``) and
experiments, runs, metrics, params, tags, dataset inputs, artifacts and MLflow 3 logged
models land in Conveyor's one store. Modules, one concern each:

- :mod:`.wire`: request parsing and entity JSON, with MLflow's field names and messages;
- :mod:`.routing`: endpoint declarations, the thread-pool bridge, mounting under
  ``/api/2.0`` and ``/ajax-api/2.0``;
- :mod:`.streaming`: upload bodies piped into the blocking artifact service;
- :mod:`.experiments`, :mod:`.runs`, :mod:`.run_data`, :mod:`.history`,
  :mod:`.artifacts`, :mod:`.logged_models`, :mod:`.server_info`: the endpoints;
- :mod:`.registry_models`, :mod:`.registry_versions` (wire format in
  :mod:`.registry_wire`): the model registry, also under ``/api/2.0/preview``;
- :mod:`.webhooks`: registry webhooks (server administrators only).
"""

from __future__ import annotations

from fastapi import APIRouter

from conveyor.registry import RegistryService
from conveyor.server.mlflow_api import (
    artifacts,
    experiments,
    history,
    logged_models,
    registry_models,
    registry_versions,
    run_data,
    runs,
    server_info,
    webhooks,
)
from conveyor.server.mlflow_api.routing import Context, mount, mount_preview_copies, mount_ui_copies
from conveyor.tracking.service import TrackingService

__all__ = ["build_router"]


def build_router(service: TrackingService, registry: RegistryService | None = None) -> APIRouter:
    """All MLflow-compatible routes, bound to one tracking service and its model registry.

    ``registry`` lets the caller add alias guards (approvals); by default one is built on
    the tracking service's SQL store, refusing local-path sources.

    Route order is speed: FastAPI tries routes one by one, so the logging endpoints that
    autologging calls thousands of times come first and the UI copies last.
    """
    ctx = Context.for_service(service, registry)
    registry_groups = [
        ("mlflow: registered models", registry_models.endpoints(ctx)),
        ("mlflow: model versions", registry_versions.endpoints(ctx)),
    ]
    groups = [
        ("mlflow: logging", run_data.endpoints(ctx)),
        ("mlflow: runs", runs.endpoints(ctx)),
        ("mlflow: metric history", history.endpoints(ctx)),
        ("mlflow: artifacts", artifacts.endpoints(ctx)),
        ("mlflow: experiments", experiments.endpoints(ctx)),
        ("mlflow: logged models", logged_models.endpoints(ctx)),
        *registry_groups,
        ("mlflow: webhooks", webhooks.endpoints(ctx)),
        ("mlflow: server info", server_info.endpoints(ctx)),
    ]
    router = APIRouter()
    for tag, endpoints in groups:
        mount(router, endpoints, tag)
    for _, endpoints in groups:
        mount_ui_copies(router, endpoints)
    for _, endpoints in registry_groups:
        mount_preview_copies(router, endpoints)
    return router
