"""The MLflow REST API 2.0 tracking surface, so unmodified MLflow clients work against Conveyor.

Point any MLflow client at the server (``MLFLOW_TRACKING_URI=http://host:port``) and
experiments, runs, metrics, params, tags, dataset inputs, artifacts and MLflow 3 logged
models land in Conveyor's one store. Modules, one concern each:

- :mod:`.wire`: request parsing and entity JSON, with MLflow's field names and messages;
- :mod:`.routing`: endpoint declarations, the thread-pool bridge, mounting under
  ``/api/2.0`` and ``/ajax-api/2.0``;
- :mod:`.experiments`, :mod:`.runs`, :mod:`.run_data`, :mod:`.history`,
  :mod:`.artifacts`, :mod:`.logged_models`: the endpoints.
"""

from __future__ import annotations

from fastapi import APIRouter

from conveyor.server.mlflow_api import artifacts, experiments, history, logged_models, run_data, runs
from conveyor.server.mlflow_api.routing import Context, mount
from conveyor.tracking.service import TrackingService

__all__ = ["build_router"]


def build_router(service: TrackingService) -> APIRouter:
    """All MLflow-compatible routes, bound to one tracking service."""
    ctx = Context.for_service(service)
    router = APIRouter()
    mount(router, experiments.endpoints(ctx), "mlflow: experiments")
    mount(router, runs.endpoints(ctx), "mlflow: runs")
    mount(router, run_data.endpoints(ctx), "mlflow: logging")
    mount(router, history.endpoints(ctx), "mlflow: metric history")
    mount(router, artifacts.endpoints(ctx), "mlflow: artifacts")
    mount(router, logged_models.endpoints(ctx), "mlflow: logged models")
    return router
