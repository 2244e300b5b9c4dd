"""How the MLflow-compatible endpoints are declared, documented and mounted.

Each capability module returns a list of :class:`Endpoint`; :func:`mount` adds every one
under ``/api/2.0`` (documented in the OpenAPI schema) and again under ``/ajax-api/2.0``
(MLflow's UI prefix, hidden from the schema so operation ids stay unique).

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
from conveyor.store.sql.logged_models import SqlLoggedModelStore
from conveyor.tracking.service import TrackingService

T = TypeVar("T")
Handler = Callable[[Request], Awaitable[Response]]

PREFIXES = ("/api/2.0", "/ajax-api/2.0")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One route: ``path`` follows the version prefix (``/mlflow/runs/create``).

    ``fields`` maps request field names to JSON schema types, for the OpenAPI document
    only; validation happens in the handler.
    """

    method: str
    path: str
    handler: Handler
    summary: str
    fields: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Context:
    """What handlers work with: the tracking service and, on SQL stores, the logged models."""

    service: TrackingService
    models: SqlLoggedModelStore | None

    @classmethod
    def for_service(cls, service: TrackingService) -> Context:
        from conveyor.store.sql.store import SqlStore

        store = service.store
        return cls(service, SqlLoggedModelStore(store) if isinstance(store, SqlStore) else None)

    def logged_models(self) -> SqlLoggedModelStore:
        if self.models is None:
            raise BackendUnavailable(
                "Logged models need the SQL metadata store; this server runs on another back end."
            )
        return self.models


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run blocking store or storage work in the thread pool, keeping the event loop free."""
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))


def _openapi(endpoint: Endpoint) -> dict[str, Any]:
    if not endpoint.fields:
        return {}
    if endpoint.method == "GET":
        return {
            "parameters": [
                {"name": name, "in": "query", "required": False, "schema": _schema(kind)}
                for name, kind in endpoint.fields.items()
            ]
        }
    properties = {name: _schema(kind) for name, kind in endpoint.fields.items()}
    schema = {"type": "object", "properties": properties}
    return {"requestBody": {"content": {"application/json": {"schema": schema}}}}


def _schema(kind: str) -> dict[str, Any]:
    if kind.endswith("[]"):
        return {"type": "array", "items": {"type": kind[:-2]}}
    return {"type": kind}


def _operation_id(endpoint: Endpoint) -> str:
    words = re.sub(r"[^0-9a-zA-Z]+", "_", endpoint.path).strip("_")
    return f"{endpoint.method.lower()}_{words}"


def mount(router: APIRouter, endpoints: list[Endpoint], tag: str) -> None:
    """Add each endpoint under both prefixes."""
    for endpoint in endpoints:
        for prefix in PREFIXES:
            documented = prefix == PREFIXES[0]
            suffix = "" if documented else "_ajax"
            router.add_api_route(
                prefix + endpoint.path,
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
