"""``conveyor server``: run the tracking server with uvicorn.

Workers are separate processes, each building its app from the environment through
:func:`conveyor.server.app.app_from_environment`. So the flags are written into the
``CONVEYOR_*`` variables before uvicorn starts: every worker then reads the same
settings, and a flag beats a variable the user had set.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from conveyor.cli._common import ensure_home, load_settings
from conveyor.cli._output import console

if TYPE_CHECKING:
    from conveyor.config import Settings

#: What uvicorn imports in each worker (``--factory``: called with no arguments).
APP_FACTORY = "conveyor.server.app:app_from_environment"


def serve(
    host: Annotated[
        str | None, typer.Option(help="Interface to bind; env CONVEYOR_HOST, default 127.0.0.1.")
    ] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port; env CONVEYOR_PORT, default 5000.")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Worker processes; env CONVEYOR_WORKERS, default 1.")
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            help="SQLAlchemy URL of the metadata store; env CONVEYOR_DATABASE_URL, "
            "default sqlite:///<home>/conveyor.db."
        ),
    ] = None,
    artifact_root: Annotated[
        str | None,
        typer.Option(
            help="Artifact root (a folder, az://container/prefix, s3://bucket/prefix); "
            "env CONVEYOR_ARTIFACT_ROOT, default <home>/artifacts."
        ),
    ] = None,
    home: Annotated[
        Path | None,
        typer.Option(help="Data folder for the local defaults; env CONVEYOR_HOME, default ./.conveyor."),
    ] = None,
    access_log: Annotated[
        bool,
        typer.Option(
            help="Log every request (costs about 0.15 ms per request; put a proxy's log in front "
            "for production instead)."
        ),
    ] = False,
    auth: Annotated[
        bool | None,
        typer.Option(
            "--auth/--no-auth",
            help="Require an API token or password on every request (env CONVEYOR_AUTH); "
            "create the first admin with `conveyor users create <name> --admin`.",
        ),
    ] = None,
    scheduler: Annotated[
        bool,
        typer.Option(
            "--scheduler",
            help="Also fire pipeline schedules (as `conveyor scheduler` would), from this process.",
        ),
    ] = False,
) -> None:
    """Run the tracking server (Conveyor's API and the MLflow-compatible API)."""
    flags = {
        "CONVEYOR_HOST": host,
        "CONVEYOR_PORT": port,
        "CONVEYOR_WORKERS": workers,
        "CONVEYOR_DATABASE_URL": database_url,
        "CONVEYOR_ARTIFACT_ROOT": artifact_root,
        "CONVEYOR_AUTH": None if auth is None else str(auth).lower(),
        # Absolute, so that every worker agrees on it whatever it does with its cwd.
        "CONVEYOR_HOME": home.expanduser().resolve() if home is not None else None,
    }
    for name, value in flags.items():
        if value is not None:
            os.environ[name] = str(value)
    settings = load_settings()
    ensure_home(settings)

    # Open the store once here, before any worker exists, so that a fresh database is
    # migrated by one process (and an outdated one with auto-upgrade off fails here, once,
    # with the `conveyor db upgrade` hint, instead of in every worker).
    from conveyor.store import open_store

    open_store(settings.resolved_database_url(), upgrade=settings.auto_upgrade).close()

    url = f"http://{settings.host}:{settings.port}"
    where = settings.describe()
    out = console()
    out.soft_wrap = True
    out.print(f"[bold]Conveyor server[/bold] on {url}  ({settings.workers} worker(s))")
    out.print(f"  metadata:  {where['database_url']}", markup=False)
    out.print(f"  artifacts: {where['artifact_root']}", markup=False)
    out.print(f"  clients:   CONVEYOR_TRACKING_URI={url}  or  MLFLOW_TRACKING_URI={url}", markup=False)
    if scheduler:
        out.print("  scheduler: pipeline schedules fire from this process", markup=False)
    out.print(f"  auth:      {'on' if settings.auth else 'off'}", markup=False)
    _warn_if_exposed(settings)

    import uvicorn

    # The scheduler runs beside uvicorn in this process, not in the workers: one scheduler
    # whatever --workers says (several would be safe, only wasteful).
    with _scheduler(settings) if scheduler else contextlib.nullcontext():
        uvicorn.run(
            APP_FACTORY,
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            access_log=access_log,
        )


def _warn_if_exposed(settings: Settings) -> None:
    """Say loudly, on stderr and in the log, when anyone on the network may use the server."""
    from conveyor.server.auth import exposure_warning, log

    warning = exposure_warning(settings.host, settings.auth)
    if warning is None:
        return
    console(stderr=True).print(warning, style="bold red", markup=False, soft_wrap=True)
    # Without a logging configuration the record would go to stderr a second time.
    if log.hasHandlers():
        log.warning(warning)


def _scheduler(settings: Settings) -> contextlib.AbstractContextManager[object]:
    from conveyor.pipelines.schedules import background_scheduler

    return background_scheduler(settings)
