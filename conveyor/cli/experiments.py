"""``conveyor experiments``: list, create and delete experiments."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from conveyor.cli import _output as out
from conveyor.cli._common import JsonFlag, TrackingUri, open_client

app = typer.Typer(help="List, create and delete experiments.", no_args_is_help=True)


class View(StrEnum):
    """Which lifecycle stages to list (``ViewType`` without importing the store at startup)."""

    ACTIVE = "active"
    DELETED = "deleted"
    ALL = "all"

    @property
    def view_type(self) -> str:
        return {"active": "ACTIVE_ONLY", "deleted": "DELETED_ONLY", "all": "ALL"}[self.value]


ViewOption = Annotated[View, typer.Option("--view", help="Which experiments or runs to include.")]


@app.command("list")
def list_experiments(
    view: ViewOption = View.ACTIVE,
    as_json: JsonFlag = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """List experiments, newest first."""
    from conveyor.store.entities import ViewType

    with open_client(tracking_uri) as client:
        found = client.search_experiments(view_type=ViewType(view.view_type))
    if as_json:
        out.emit_json({"experiments": [out.experiment_json(e) for e in found]})
        return
    out.table(
        None,
        ["ID", "Name", "Stage", "Created", "Artifact location"],
        (
            (e.experiment_id, e.name, e.lifecycle_stage, out.when(e.creation_time), e.artifact_location)
            for e in found
        ),
    )


@app.command("create")
def create_experiment(
    name: Annotated[str, typer.Argument(help="Experiment name, unique across active and deleted ones.")],
    as_json: JsonFlag = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Create an experiment and print its id."""
    with open_client(tracking_uri) as client:
        experiment_id = client.create_experiment(name)
    if as_json:
        out.emit_json({"experiment_id": experiment_id, "name": name})
    else:
        typer.echo(f"Created experiment {name!r} with id {experiment_id}")


@app.command("delete")
def delete_experiment(
    experiment_id: Annotated[str, typer.Argument(metavar="ID", help="Experiment id.")],
    tracking_uri: TrackingUri = None,
) -> None:
    """Soft-delete an experiment and its runs (`conveyor gc` removes the runs for good)."""
    with open_client(tracking_uri) as client:
        client.delete_experiment(experiment_id)
    typer.echo(
        f"Deleted experiment {experiment_id} and its runs (soft delete; `conveyor gc` removes the runs)"
    )
