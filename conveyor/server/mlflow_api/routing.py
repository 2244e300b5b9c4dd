"""How the MLflow-compatible endpoints are declared, documented and mounted.

Each capability module returns a list of :class:`Endpoint`; :func:`mount` adds every one
under ``/api/2.0`` (documented in the OpenAPI schema) and :func:`mount_ui_copies` again
under ``/ajax-api/2.0`` (MLflow's UI prefix, hidden from the schema, after all public
routes); the few MLflow 3 routes go under ``3.0`` instead.

Handlers take the raw :class:`~fastapi.Request` and return a ready
:class:`~fastapi.Response`: FastAPI then skips body models and response serialisation,
which would cost more than the store call on the logging hot paths. The OpenAPI schema
is still described, from each endpoint's short field list.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio.to_thread
from fastapi import APIRouter, Request, Response

from conveyor.errors import BackendUnavailable
from conveyor.registry import RegistryService
from conveyor.store.sql.logged_models import SqlLoggedModelStore
from conveyor.tracking.service import TrackingService

T = TypeVar("T")
Handler = Callable[[Request], Awaitable[Response]]

#: Public and UI prefixes, in that order; ``{version}`` is the endpoint's API version.
PREFIXES = ("/api/{version}", "/ajax-api/{version}")
#: Where MLflow servers before 2.0 served the registry; clients fall back to it.
PREVIEW_PREFIX = "/api/{version}/preview"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One route: ``path`` follows the version prefix (``/mlflow/runs/create``).

    ``fields`` maps request field names to JSON schema types, for the OpenAPI document
    only; validation happens in the handler. ``version`` is MLflow's API version of the
    route (``2.0`` for almost all; ``3.0`` for MLflow 3 additions such as server-info).
    """

    method: str
    path: str
    handler: Handler
    summary: str
    fields: Mapping[str, str] = field(default_factory=dict)
    version: str = "2.0"


@dataclass(frozen=True, slots=True)
class Context:
    """What handlers work with: the tracking service and, on SQL stores, the logged models
    and the model registry."""

    service: TrackingService
    models: SqlLoggedModelStore | None
    registry: RegistryService | None = None

    @classmethod
    def for_service(cls, service: TrackingService, registry: RegistryService | None = None) -> Context:
        """Bind to ``service``; without ``registry``, one is built on the same SQL store.

        The built registry refuses local-path sources: a request must never make the
        server read its own disk.
        """
        from conveyor.store.sql.store import SqlStore

        store = service.store
        if not isinstance(store, SqlStore):
            return cls(service, None, registry)
        if registry is None:
            registry = RegistryService(store, service.artifacts, allow_local_sources=False)
        return cls(service, SqlLoggedModelStore(store), registry)

    def logged_models(self) -> SqlLoggedModelStore:
        if self.models is None:
            raise BackendUnavailable(
                "Logged models need the SQL metadata store; this server runs on another back end."
            )
        return self.models

    def model_registry(self) -> RegistryService:
        if self.registry is None:
            raise BackendUnavailable(
                "The model registry needs the SQL metadata store; this server runs on another back end."
            )
        return self.registry


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run blocking store or storage work in the thread pool, keeping the event loop free."""
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))


def _openapi(endpoint: Endpoint) -> dict[str, Any]:
    """Parameters and body schema for the OpenAPI document, from the path and ``fields``."""
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)(?::\w+)?}", endpoint.path)
    ]
    extra: dict[str, Any] = {}
    if endpoint.method == "GET":
        parameters += [
            {"name": name, "in": "query", "required": False, "schema": _schema(kind)}
            for name, kind in endpoint.fields.items()
        ]
    elif endpoint.fields:
        properties = {name: _schema(kind) for name, kind in endpoint.fields.items()}
        schema = {"type": "object", "properties": properties}
        extra["requestBody"] = {"content": {"application/json": {"schema": schema}}}
    if parameters:
        extra["parameters"] = parameters
    return extra


def _schema(kind: str) -> dict[str, Any]:
    if kind.endswith("[]"):
        return {"type": "array", "items": {"type": kind[:-2]}}
    return {"type": kind}


def _operation_id(endpoint: Endpoint) -> str:
    words = re.sub(r"[^0-9a-zA-Z]+", "_", endpoint.path).strip("_")
    return f"{endpoint.method.lower()}_v{endpoint.version[0]}_{words}"


def mount(router: APIRouter, endpoints: list[Endpoint], tag: str) -> None:
    """Add each endpoint under the public prefix of its API version, documented."""
    for endpoint in endpoints:
        _add(router, endpoint, tag, PREFIXES[0], documented=True)


def mount_ui_copies(router: APIRouter, endpoints: list[Endpoint]) -> None:
    """Add the same endpoints under MLflow's UI prefix, undocumented.

    Call it after every :func:`mount`: FastAPI tries routes in order (twice per request
    in 0.165), so the routes clients hit most are added first and the UI copies last.
    """
    for endpoint in endpoints:
        _add(router, endpoint, "mlflow: ui", PREFIXES[1], documented=False)


def mount_preview_copies(router: APIRouter, endpoints: list[Endpoint]) -> None:
    """Add the registry's endpoints under ``/api/2.0/preview`` too, undocumented.

    Why: MLflow's registry client tries each path a method lists and falls back to the
    ``preview`` one on ``ENDPOINT_NOT_FOUND``; older clients and scripts call it directly.
    """
    for endpoint in endpoints:
        _add(router, endpoint, "mlflow: preview", PREVIEW_PREFIX, documented=False, suffix="_preview")


def _add(
    router: APIRouter,
    endpoint: Endpoint,
    tag: str,
    prefix: str,
    *,
    documented: bool,
    suffix: str | None = None,
) -> None:
    if suffix is None:
        suffix = "" if documented else "_ajax"
    router.add_api_route(
        prefix.format(version=endpoint.version) + endpoint.path,
        endpoint.handler,
        methods=[endpoint.method],
        summary=endpoint.summary,
        tags=[tag],
        response_class=Response,
        response_model=None,
        include_in_schema=documented,
        openapi_extra=_openapi(endpoint) if documented else None,
        name=endpoint.handler.__name__ + suffix,
        operation_id=_operation_id(endpoint) + suffix,
    )
