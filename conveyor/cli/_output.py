"""Rendering shared by the commands: rich tables for people, ``--json`` for scripts.

JSON output is one object per command (``{"runs": [...]}``, ``{"experiments": [...]}``),
so fields can be added without breaking a parser. Times stay integer milliseconds since
the epoch, as everywhere in Conveyor; NaN and infinite metric values are written as the
strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (protobuf's JSON mapping, which
MLflow's REST API uses too), so the output is strict JSON that any parser accepts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from conveyor.store.entities import Experiment, Run


def console(*, stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(_strict(data), indent=2, allow_nan=False))


def _strict(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return value


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    no_wrap: Collection[str] = ("Run ID", "ID"),
) -> None:
    """A table on stdout; columns named in ``no_wrap`` (ids) are never folded."""
    from rich import box
    from rich.table import Table

    grid = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in columns:
        grid.add_column(column, overflow="fold", no_wrap=column in no_wrap)
    for row in rows:
        grid.add_row(*("" if cell is None else str(cell) for cell in row))
    console().print(grid)


def when(ms: int | None, *, seconds: bool = True) -> str:
    """A timestamp in milliseconds as local time, to the second (or minute)."""
    if ms is None:
        return ""
    local = datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone()
    return local.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def number(value: float) -> str:
    return f"{value:.6g}"


# -- entities as JSON ---------------------------------------------------------------------


def experiment_json(experiment: Experiment) -> dict[str, Any]:
    from conveyor.store import codec

    return codec.encode_experiment(experiment)


def run_json(run: Run) -> dict[str, Any]:
    """The run in Conveyor's wire shape, except metrics keyed by name for easy ``jq`` use."""
    from conveyor.store import codec

    return {
        **codec.encode_run_info(run.info),
        "params": dict(run.params),
        "metrics": {
            key: {"value": codec.encode_float(m.value), "step": m.step, "timestamp": m.timestamp}
            for key, m in run.metrics.items()
        },
        "tags": dict(run.tags),
        "inputs": [codec.encode_dataset_input(i) for i in run.inputs],
    }
