"""``conveyor runs``: search, show and delete runs."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from conveyor.cli import _output as out
from conveyor.cli._common import JsonFlag, TrackingUri, open_client
from conveyor.cli.experiments import View, ViewOption

if TYPE_CHECKING:
    from conveyor.store.entities import Run

app = typer.Typer(help="Search, show and delete runs.", no_args_is_help=True)

#: How many metrics or params a row of ``runs list`` shows before eliding the rest.
_CELL_ITEMS = 4


@app.command("list")
def list_runs(
    experiment_ids: Annotated[
        list[str] | None,
        typer.Option(
            "--experiment-id",
            "-e",
            metavar="ID",
            help="Experiment to search; repeat for several. Default: every experiment.",
        ),
    ] = None,
    filter_string: Annotated[
        str | None,
        typer.Option(
            "--filter",
            "-f",
            help='Search filter, e.g. \'metrics.acc > 0.9 OR params.model IN ("rf", "lr")\'.',
        ),
    ] = None,
    order_by: Annotated[
        list[str] | None,
        typer.Option("--order-by", "-o", help="Sort key such as 'metrics.acc DESC'; repeat for several."),
    ] = None,
    max_results: Annotated[int, typer.Option(min=1, help="Return at most this many runs.")] = 100,
    view: ViewOption = View.ACTIVE,
    as_json: JsonFlag = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Search runs, newest first unless --order-by says otherwise."""
    from conveyor.store.entities import ViewType

    view_type = ViewType(view.view_type)
    with open_client(tracking_uri) as client:
        ids = experiment_ids or [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
        found = client.search_runs(ids, filter_string, order_by, max_results, view_type)
        total = (
            client.store.count_runs(ids, filter_string, view_type)
            if not as_json and len(found) == max_results
            else len(found)
        )
    if as_json:
        out.emit_json({"runs": [out.run_json(r) for r in found]})
        return
    # Narrow terminals get the identifying columns only (`runs show` and --json have it all):
    # rich would otherwise squeeze the metric and param columns to nothing.
    width = out.console().width
    columns = ["Run ID", "Exp", "Name", "Status", "Started"]
    columns += ["Metrics"] if width >= 100 else []
    columns += ["Params"] if width >= 140 else []
    out.table(
        None,
        columns,
        (
            [
                r.info.run_id,
                r.info.experiment_id,
                r.info.run_name,
                r.info.status,
                out.when(r.info.start_time, seconds=False),
                _cell({k: out.number(m.value) for k, m in r.metrics.items()}),
                _cell(r.params),
            ][: len(columns)]
            for r in found
        ),
        no_wrap=("Run ID", "Exp", "Status", "Started"),
    )
    if total > len(found):
        out.console().print(f"Showing {len(found)} of {total} runs; raise --max-results to see more.")


def _cell(items: dict[str, str]) -> str:
    shown = [f"{k}={v}" for k, v in sorted(items.items())[:_CELL_ITEMS]]
    if len(items) > _CELL_ITEMS:
        shown.append(f"(+{len(items) - _CELL_ITEMS})")
    return ", ".join(shown)


@app.command("show")
def show_run(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="Run id.")],
    as_json: JsonFlag = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Show one run: its info, params, latest metrics, tags and dataset inputs."""
    with open_client(tracking_uri) as client:
        run = client.get_run(run_id)
    if as_json:
        out.emit_json(out.run_json(run))
        return
    _render_run(run)


def _render_run(run: Run) -> None:
    info = run.info
    out.table(
        f"Run {info.run_id}",
        ["Field", "Value"],
        [
            ("name", info.run_name),
            ("experiment", info.experiment_id),
            ("status", info.status),
            ("stage", info.lifecycle_stage),
            ("user", info.user_id),
            ("started", out.when(info.start_time)),
            ("ended", out.when(info.end_time)),
            ("artifacts", info.artifact_uri),
        ],
    )
    if run.params:
        out.table("Params", ["Key", "Value"], sorted(run.params.items()))
    if run.metrics:
        out.table(
            "Metrics (latest)",
            ["Key", "Value", "Step", "Logged"],
            ((k, out.number(m.value), m.step, out.when(m.timestamp)) for k, m in sorted(run.metrics.items())),
        )
    if run.tags:
        out.table("Tags", ["Key", "Value"], sorted(run.tags.items()))
    if run.inputs:
        out.table(
            "Inputs",
            ["Dataset", "Digest (SHA-256)", "Context", "Rows", "Source"],
            (
                (
                    i.dataset.name,
                    i.dataset.digest[:16],
                    i.tags.get("mlflow.data.context", ""),
                    _rows(i.dataset.profile),
                    i.dataset.source,
                )
                for i in run.inputs
            ),
        )


def _rows(profile: str | None) -> str:
    try:
        return str(json.loads(profile or "{}").get("num_rows", ""))
    except (ValueError, AttributeError):
        return ""


@app.command("delete")
def delete_run(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="Run id.")],
    tracking_uri: TrackingUri = None,
) -> None:
    """Soft-delete a run; `conveyor gc` removes it and its artifacts for good."""
    with open_client(tracking_uri) as client:
        client.delete_run(run_id)
    typer.echo(f"Deleted run {run_id} (soft delete; `conveyor gc` removes it for good)")
