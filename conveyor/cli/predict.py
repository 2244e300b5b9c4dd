"""``conveyor predict``: score Parquet or CSV files with a model, chunk by chunk, here or on Dask.

Parse, call :func:`conveyor.serving.batch.score`, render: a progress bar (rows/s) on a
terminal, then one summary line, or ``--json`` for scripts. The output file appears only
once complete, so an error (missing input, a column the model needs, an unwritable
folder, an unknown model) exits 1 and leaves nothing behind.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from conveyor.cli import _output as out
from conveyor.cli._common import JsonFlag, TrackingUri, open_client

if TYPE_CHECKING:
    from conveyor.tracking.client import Client


def predict(
    model_uri: Annotated[
        str,
        typer.Argument(help="models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/PATH or a model folder."),
    ],
    input_spec: Annotated[
        str,
        typer.Option(
            "--input", "-i", help="A Parquet or CSV file, a folder of them, or a glob ('data/*.parquet')."
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Parquet file to write.")],
    dask: Annotated[
        str | None,
        typer.Option(
            "--dask",
            metavar="ADDRESS",
            help="Score on this Dask scheduler (tcp://host:port); workers must see the input and output.",
        ),
    ] = None,
    batch_rows: Annotated[int, typer.Option("--batch-rows", min=1, help="Rows predicted at once.")] = 65_536,
    columns_out: Annotated[
        list[str] | None,
        typer.Option(
            "--columns-out",
            metavar="COLUMNS",
            help="Input columns copied to the output, such as an id; repeat or separate with commas.",
        ),
    ] = None,
    allow_pickle: Annotated[
        bool,
        typer.Option("--allow-pickle", help="Allow pickle-based models (loading runs code from the file)."),
    ] = False,
    as_json: JsonFlag = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Score files larger than memory with a model, into one Parquet file (rows in input order)."""
    from conveyor.serving.batch import count_rows, find_inputs, score

    files = find_inputs(input_spec)
    passthrough = [name.strip() for item in columns_out or [] for name in item.split(",") if name.strip()]
    with (
        _client_for(model_uri, tracking_uri) as client,
        _progress(count_rows(files), quiet=as_json) as advance,
    ):
        result = score(
            model_uri,
            files,
            output,
            batch_rows=batch_rows,
            columns_out=passthrough,
            dask_address=dask,
            allow_pickle=allow_pickle,
            client=client,
            progress=advance,
        )
    summary = {
        "output": str(result.output),
        "rows": result.rows,
        "files": result.files,
        "tasks": result.tasks,
        "seconds": round(result.seconds, 3),
        "rows_per_second": round(result.rows_per_second, 1),
        "model_digest": result.model_digest,
    }
    if as_json:
        out.emit_json(summary)
        return
    where = f" on {dask} ({result.tasks} tasks)" if dask else ""
    typer.echo(
        f"Scored {result.rows:,} rows from {result.files} file(s){where} into {result.output} "
        f"in {result.seconds:.1f} s ({result.rows_per_second:,.0f} rows/s)"
    )


@contextlib.contextmanager
def _client_for(model_uri: str, tracking_uri: str | None) -> Iterator[Client | None]:
    """A tracking client for ``runs:/`` and ``models:/`` URIs (the registry is there); None for a folder."""
    if not model_uri.startswith(("runs:", "models:")):
        yield None
        return
    with open_client(tracking_uri) as client:
        yield client


@contextlib.contextmanager
def _progress(total: int | None, *, quiet: bool) -> Iterator[Callable[[int], None]]:
    """A rows/s progress bar on stderr when it is a terminal; yields the ``advance(rows)`` callback."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = out.console(stderr=True)
    columns = (
        TextColumn("Scoring"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows  {task.fields[rate]:,.0f} rows/s"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True, disable=quiet or not console.is_terminal) as bar:
        task = bar.add_task("score", total=total, rate=0.0)

        def advance(rows: int) -> None:
            bar.advance(task, rows)
            elapsed = bar.tasks[task].elapsed or 0.0
            bar.update(task, rate=bar.tasks[task].completed / elapsed if elapsed else 0.0)

        yield advance
