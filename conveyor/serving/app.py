"""The serving app: both protocols, health, metrics and docs over one runtime.

It is a separate app from the tracking server (``conveyor.server``): a model server
scales, restarts and is exposed on its own, and it needs none of the tracking routes.
``conveyor serve`` runs it with uvicorn; each worker process builds its own through
:func:`app_from_environment`, from the deployment the command put in the environment.

Routes:

- Open Inference Protocol: ``/v2``, ``/v2/health/{live,ready}``,
  ``/v2/models/{name}[/versions/{v}][/ready|/infer]`` (:mod:`conveyor.serving.oip`);
- MLflow scoring: ``/invocations``, ``/models/{name}[/versions/{v}]/invocations``,
  ``/ping``, ``/health``, ``/version`` (:mod:`conveyor.serving.invocations`);
- ``/metrics`` (Prometheus), ``/docs`` and ``/openapi.json``.

The inference routes are plain ASGI, recognised before FastAPI's middleware and router
(:class:`~conveyor.serving.http.InferenceRoutes`): FastAPI's layers would cost more
than a small model's ``predict``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from conveyor._version import __version__
from conveyor.errors import ConveyorError
from conveyor.serving import invocations, oip
from conveyor.serving.deployment import Deployment, deployment_from_environment
from conveyor.serving.http import (
    InferenceRoutes,
    RequestIdMiddleware,
    error_response,
    json_response,
    read_body,
    request_id,
)
from conveyor.serving.metrics import CONTENT_TYPE_LATEST
from conveyor.serving.openapi import openapi_document
from conveyor.serving.runtime import ServingRuntime

if TYPE_CHECKING:
    from conveyor.config import Settings
    from conveyor.serving.loading import ModelSource

__all__ = ["ServingApp", "app_from_environment", "create_app"]

#: Largest ``POST /feedback`` body (about 10,000 labels).
FEEDBACK_LIMIT = 4 * 1024 * 1024
#: Set by ``conveyor serve --workers N`` (N > 1): see ``create_app(ready_before_serving=...)``.
READY_FIRST_VARIABLE = "CONVEYOR_SERVE_READY_BEFORE_SERVING"
_READY_POLL_S = 0.05


class ServingApp(FastAPI):
    """The FastAPI app, with inference requests answered before its middleware and router."""

    inference: InferenceRoutes | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        inference = self.inference
        if inference is not None:
            found = inference.match(scope)
            if found is not None:
                await inference.serve(scope, receive, send, found)
                return
        await super().__call__(scope, receive, send)


def create_app(
    deployment: Deployment,
    settings: Settings | None = None,
    *,
    source: ModelSource | None = None,
    ready_before_serving: bool = False,
    freeze_gc: bool = False,
) -> ServingApp:
    """The serving app for ``deployment``; models load in the background once it starts.

    Args:
        deployment: What to serve.
        settings: Where the registry and artifact store are (default: from the environment).
        source: Loads model URIs (default: a :class:`ModelSource` on ``settings``).
        ready_before_serving: Finish loading before the server accepts connections. For
            several workers on one socket: a request or readiness probe may land on any
            of them, so none may answer before its models are ready.
        freeze_gc: Once every model is loaded, collect garbage and freeze what is left
            (:func:`gc.freeze`), so that the cyclic garbage collector stops walking the
            imported libraries and the models on every full collection: a process that
            has imported scikit-learn, pandas and pydantic otherwise stalls for about
            0.1 s now and then under load. For a process that only serves (``conveyor
            serve``); objects alive at that moment are never collected as cycles.
    """
    from conveyor.config import Settings

    runtime = ServingRuntime(deployment, settings or Settings(), source=source)

    async def freeze_when_ready() -> None:
        while not runtime.ready:
            await asyncio.sleep(_READY_POLL_S)
        gc.collect()
        gc.freeze()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        freezing = asyncio.get_running_loop().create_task(freeze_when_ready()) if freeze_gc else None
        while ready_before_serving and not runtime.ready:
            await asyncio.sleep(_READY_POLL_S)
        if freezing is not None and ready_before_serving:
            await freezing
        try:
            yield
        finally:
            if freezing is not None:
                freezing.cancel()
            await runtime.stop()

    app = ServingApp(title="Conveyor serving", version=__version__, lifespan=lifespan, redoc_url=None)
    app.state.runtime = runtime
    app.inference = InferenceRoutes(
        runtime, invocations.MlflowScoring(), oip.OpenInferenceProtocol(), access=deployment.access_log
    )

    async def metrics(_: Request) -> Response:
        return Response(runtime.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    app.router.routes.extend(
        [
            *oip.routes(runtime),
            *invocations.routes(runtime),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/feedback", _feedback_endpoint(runtime), methods=["POST"]),
        ]
    )
    app.openapi = lambda: openapi_document(runtime)  # type: ignore[method-assign]
    app.add_middleware(RequestIdMiddleware, access=deployment.access_log)
    return app


def _feedback_endpoint(runtime: ServingRuntime) -> Callable[[Request], Awaitable[Response]]:
    """``POST /feedback``: ground-truth labels by request id, stored beside the prediction log."""
    from conveyor.serving.feedback import FeedbackStore, handle_feedback

    store = FeedbackStore(runtime.prediction_log_root)

    async def feedback(request: Request) -> Response:
        try:
            body = await read_body(request, FEEDBACK_LIMIT)
            summary = await asyncio.to_thread(handle_feedback, store, body, set(runtime.routes))
        except ConveyorError as exc:
            return error_response(exc, request_id(request.scope))
        return json_response(summary)

    return feedback


def app_from_environment() -> ServingApp:
    """Factory for ``uvicorn --factory``: every worker builds the app ``conveyor serve`` described."""
    from conveyor.config import Settings

    ready_first = os.environ.get(READY_FIRST_VARIABLE) == "1"
    return create_app(
        deployment_from_environment(), Settings(), ready_before_serving=ready_first, freeze_gc=True
    )
