"""The ``conveyor`` command: parse, call the public API, render.

One module per command group (``server``, ``experiments``, ``runs``, ``db``, ``gc``,
``pipeline`` with its ``schedule``/``schedules`` commands, ``scheduler``, ``lineage``);
rendering is shared in :mod:`conveyor.cli._output`. Modules here import only Typer and
Conveyor's light modules at import time; stores, SQLAlchemy, pandas and the HTTP stack
are imported inside the commands, so ``conveyor --help`` answers at once.

Errors: a :class:`~conveyor.errors.ConveyorError` is a problem the user can fix (bad
input, unknown id, database down); it prints its bold ``headline`` and message and exits
1. Anything else is a bug: "Internal error" plus the traceback, exit 2.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from conveyor._version import __version__
from conveyor.cli import (
    approvals,
    audit,
    cards,
    db,
    experiments,
    gc,
    identity,
    lineage,
    monitor,
    pipeline,
    predict,
    registry,
    runs,
    schedules,
    server,
    serving,
    webhooks,
)
from conveyor.cli._output import console
from conveyor.errors import ConveyorError

__all__ = ["app", "main"]

#: Exit statuses, also shown under ``conveyor --help``.
EXIT_OK = 0
EXIT_CONVEYOR_ERROR = 1
EXIT_INTERNAL_ERROR = 2

EPILOG = (
    "Exit status: 0 success; 1 a Conveyor error (invalid input, not found, conflict, back end "
    "unavailable: the message says what to do); 2 a command-line usage error, or an internal "
    "error (a bug: the traceback is printed, please report it).\n\n"
    "Configuration: flag > CONVEYOR_* environment variable > default. The local store lives in "
    "CONVEYOR_HOME (default ./.conveyor)."
)


class _ConveyorGroup(TyperGroup):
    """The root group: every command runs inside it, so errors are reported in one place."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # Typer's own control flow: --help, usage errors, explicit exits.
        except BrokenPipeError:
            # The reader went away (`conveyor runs list --json | head`): not a bug. Point
            # stdout at /dev/null so the interpreter's final flush cannot fail again.
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(EXIT_CONVEYOR_ERROR) from None
        except ConveyorError as exc:
            err = console(stderr=True)
            err.print(f"[bold red]{exc.headline}[/bold red]", highlight=False)
            err.print(exc.message, markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_CONVEYOR_ERROR) from None
        except Exception:
            err = console(stderr=True)
            err.print("[bold red]Internal error[/bold red]", highlight=False)
            sys.stderr.write(traceback.format_exc())
            err.print(
                f"This is a bug in Conveyor {__version__}; please report it with the traceback above.",
                markup=False,
                soft_wrap=True,
            )
            raise typer.Exit(EXIT_INTERNAL_ERROR) from None


app = typer.Typer(
    name="conveyor",
    cls=_ConveyorGroup,
    help="Conveyor: experiment tracking with an MLflow-compatible server.",
    epilog=EPILOG,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"conveyor {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Conveyor: experiment tracking with an MLflow-compatible server."""


app.command(name="server")(server.serve)
app.command(name="serve")(serving.serve)
app.add_typer(experiments.app, name="experiments")
app.add_typer(runs.app, name="runs")
app.add_typer(db.app, name="db")
app.add_typer(pipeline.app, name="pipeline")
schedules.register(pipeline.app)
app.command(name="scheduler")(schedules.scheduler)
app.command(name="gc")(gc.collect)
app.command(name="lineage")(lineage.lineage)
app.command(name="predict")(predict.predict)
app.add_typer(audit.app, name="audit")
app.add_typer(registry.app, name="registry")
app.add_typer(monitor.app, name="monitor")
approvals.register(registry.app)
cards.register(registry.app)
webhooks.register(registry.app)
identity.register(app)


def main() -> None:
    """Entry point of the ``conveyor`` console script."""
    app(prog_name="conveyor")
