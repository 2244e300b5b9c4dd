"""``conveyor serve``: serve models over the Open Inference Protocol and MLflow's protocol.

``conveyor serve models:/churn@champion [more URIs]`` serves each URI as a model named
after it; ``conveyor serve --config deployment.yaml`` serves a deployment file (canary
variants, shadows, batching, prediction log: see ``docs/serving.md``).

The deployment is checked, and its registry URIs resolved, here, before uvicorn
starts, so a typo fails at once with a message instead of in every worker. Then it is
written as JSON into ``CONVEYOR_SERVING_DEPLOYMENT``, and each worker process builds its
app from it through :func:`conveyor.serving.app.app_from_environment`, the way ``conveyor
server`` shares its settings with its workers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from conveyor.cli._common import ensure_home, load_settings
from conveyor.cli._output import console
from conveyor.errors import InvalidInput

if TYPE_CHECKING:
    from conveyor.config import Settings
    from conveyor.serving import Deployment

#: What uvicorn imports in each worker (``--factory``: called with no arguments).
APP_FACTORY = "conveyor.serving.app:app_from_environment"


def serve(
    uris: Annotated[
        list[str] | None,
        typer.Argument(
            help="Model URIs: models:/<name>@<alias>, models:/<name>/<version>, runs:/…, a folder."
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="A deployment YAML file, instead of URIs.")
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 8080,
    workers: Annotated[
        int, typer.Option(min=1, help="Worker processes, each with its own copy of the models.")
    ] = 1,
    access_log: Annotated[
        bool, typer.Option(help="One JSON line per request on stdout (logger conveyor.serving.access).")
    ] = True,
    shutdown_timeout: Annotated[
        float, typer.Option(min=0, help="Seconds in-flight requests get to finish on SIGTERM.")
    ] = 30.0,
) -> None:
    """Serve models (Open Inference Protocol and MLflow /invocations) until stopped."""
    from conveyor.serving.app import READY_FIRST_VARIABLE
    from conveyor.serving.deployment import DEPLOYMENT_VARIABLE, deployment_from_uris, load_deployment

    if config is not None and uris:
        raise InvalidInput("Give model URIs or --config, not both")
    deployment = load_deployment(config) if config is not None else deployment_from_uris(list(uris or []))
    if not access_log:
        deployment = deployment.model_copy(update={"access_log": False})
    settings = load_settings()
    ensure_home(settings)
    _check_sources(deployment, settings)
    os.environ[DEPLOYMENT_VARIABLE] = deployment.to_json()
    if workers > 1:
        os.environ[READY_FIRST_VARIABLE] = "1"
    _banner(deployment, host, port, workers)

    import uvicorn

    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,  # ours is structured and carries the request id
        log_config=log_config(),
        timeout_graceful_shutdown=shutdown_timeout,
        **server_stack(),
    )


def server_stack() -> dict[str, Any]:
    """uvloop and httptools when installed (``uvicorn[standard]``), else asyncio and h11.

    With httptools, the protocol sends each response's head and body in one write
    (:mod:`conveyor.serving.uvicorn_http`).
    """
    import importlib.util

    stack: dict[str, Any] = {}
    if importlib.util.find_spec("uvloop") is not None:
        stack["loop"] = "uvloop"
    if importlib.util.find_spec("httptools") is not None:
        from conveyor.serving.uvicorn_http import CoalescingHttpToolsProtocol

        stack["http"] = CoalescingHttpToolsProtocol
    return stack


def _check_sources(deployment: Deployment, settings: Settings) -> None:
    """Fail now on a URI that names nothing: an unknown model, version, alias or folder."""
    from conveyor.serving.loading import ModelSource

    source = ModelSource(settings)
    try:
        for model in deployment.models:
            uris = [v.uri for v in model.served_variants()] + ([model.shadow.uri] if model.shadow else [])
            for uri in uris:
                if uri.startswith("models:/"):
                    source.resolve(uri)
                elif "://" not in uri and ":/" not in uri and not Path(uri).exists():
                    raise InvalidInput(f"Model {model.name!r}: no model folder at {uri}")
    finally:
        source.close()


def _banner(deployment: Deployment, host: str, port: int, workers: int) -> None:
    out = console(stderr=True)
    out.soft_wrap = True
    out.print(f"[bold]Conveyor model server[/bold] on http://{host}:{port}  ({workers} worker(s))")
    for model in deployment.models:
        variants = ", ".join(f"{v.name}={v.uri} ({v.weight:g})" for v in model.served_variants())
        out.print(f"  {model.name}: {variants}", markup=False)
        if model.shadow is not None:
            out.print(
                f"    shadow {model.shadow.name}={model.shadow.uri} ({model.shadow.mirror:.0%})", markup=False
            )
    out.print(
        f"  ready:    http://{host}:{port}/v2/health/ready   docs: http://{host}:{port}/docs", markup=False
    )


def log_config() -> dict[str, Any]:
    """uvicorn's logging, plus the serving log on stderr and the JSON access log on stdout."""
    from uvicorn.config import LOGGING_CONFIG

    logging = {**LOGGING_CONFIG}
    logging["formatters"] = {
        **LOGGING_CONFIG["formatters"],
        "plain": {"format": "%(message)s"},
        "serving": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    }
    logging["handlers"] = {
        **LOGGING_CONFIG["handlers"],
        "access_json": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stdout"},
        "serving": {"class": "logging.StreamHandler", "formatter": "serving", "stream": "ext://sys.stderr"},
    }
    logging["loggers"] = {
        **LOGGING_CONFIG["loggers"],
        "conveyor.serving": {"handlers": ["serving"], "level": "INFO", "propagate": False},
        "conveyor.serving.access": {"handlers": ["access_json"], "level": "INFO", "propagate": False},
    }
    return logging
