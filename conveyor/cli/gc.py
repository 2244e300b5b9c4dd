"""``conveyor gc``: remove soft-deleted runs and their artifacts for good.

Deleting a run (``conveyor runs delete``, the UI, an MLflow client) only marks it; this
command is the one that frees the database rows and the artifact bytes. With a local or
database tracking URI it works on the stores directly; with a server URL it asks that
server to collect (``POST /api/conveyor/v1/gc``), since only the server reaches its
artifact root.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated

import typer

from conveyor.cli import _output as out
from conveyor.cli._common import JsonFlag, TrackingUri, is_server_uri, open_service, resolve_uri
from conveyor.errors import ConveyorError, InvalidInput, NotFound
from conveyor.store.actor import acting_as, system_actor

if TYPE_CHECKING:
    from conveyor.store.base import TrackingStore
    from conveyor.store.entities import Run

#: Purges the given runs (and every soft-deleted logged model past the cutoff), calling
#: ``advance`` as runs go; returns the removed run ids and logged-model ids.
Purge = Callable[[list[str], int | None, Callable[[int], None]], tuple[list[str], list[str]]]

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_DURATION = re.compile(r"(?:\d+[smhdw])+")


def parse_duration(text: str) -> int:
    """``90s``, ``30m``, ``12h``, ``7d``, ``2w`` or sums such as ``1d12h``, in milliseconds."""
    cleaned = text.strip().lower()
    if not _DURATION.fullmatch(cleaned):
        raise InvalidInput(
            f"Invalid duration {text!r} for --older-than: use a number and a unit "
            "(s, m, h, d, w), e.g. 7d, 12h or 1d12h"
        )
    seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in re.findall(r"(\d+)([smhdw])", cleaned))
    return seconds * 1000


@contextlib.contextmanager
def _collector(
    tracking_uri: str | None,
) -> Iterator[tuple[TrackingStore, Purge]]:
    """The store to describe candidates with, and the function that purges them.

    Locally, the tracking service removes each run's artifacts and rows, one run at a
    time so the progress bar moves per run, audited as the ``gc`` system job; through a
    server, its ``/gc`` endpoint does the same on the server's side in one call.
    """
    settings, uri = resolve_uri(tracking_uri)
    if is_server_uri(uri):
        from conveyor.store.rest import RestStore

        rest = RestStore(uri, token=settings.resolved_tracking_token())  # type: ignore[arg-type]

        def remote(
            _run_ids: list[str], cutoff: int | None, advance: Callable[[int], None]
        ) -> tuple[list[str], list[str]]:
            answer = rest.request("POST", "/gc", json={"older_than": cutoff}).json()
            advance(len(answer["run_ids"]))
            return list(answer["run_ids"]), list(answer.get("model_ids", []))

        try:
            yield rest, remote
        finally:
            rest.close()
        return
    with open_service(tracking_uri) as service, acting_as(system_actor("gc")):

        def local(
            run_ids: list[str], cutoff: int | None, advance: Callable[[int], None]
        ) -> tuple[list[str], list[str]]:
            removed = []
            for run_id in run_ids:
                try:
                    service.purge_run(run_id)
                except NotFound:
                    continue  # removed by a concurrent gc in the meantime
                removed.append(run_id)
                advance(1)
            return removed, service.purge_deleted_models(cutoff)

        yield service.store, local


def collect(
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            metavar="DURATION",
            help="Only runs deleted at least this long ago, e.g. 7d, 12h, 1d12h. Default: every deleted run.",
        ),
    ] = None,
    as_json: JsonFlag = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Remove soft-deleted runs and their artifact files for good."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    cutoff = None if older_than is None else int(time.time() * 1000) - parse_duration(older_than)
    with _collector(tracking_uri) as (store, purge):
        # Describe the candidates first: once collected, they can no longer be read.
        candidates: dict[str, tuple[Run, int]] = {}
        for run_id in store.deleted_run_ids(cutoff):
            try:
                run = store.get_run(run_id)
            except NotFound:
                continue  # removed by a concurrent gc in the meantime
            candidates[run_id] = (run, _artifact_files(store, run))
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} runs"),
            TimeElapsedColumn(),
            console=out.console(stderr=True),
            transient=True,
            disable=as_json or not candidates,
        ) as progress:
            task = progress.add_task("Removing deleted runs", total=len(candidates))
            removed, removed_models = purge(list(candidates), cutoff, lambda n: progress.advance(task, n))

    rows = [(run_id, *candidates.get(run_id, (None, 0))) for run_id in removed]
    if as_json:
        out.emit_json(
            {
                "removed": [
                    {
                        "run_id": run_id,
                        "experiment_id": run.info.experiment_id if run else None,
                        "run_name": run.info.run_name if run else None,
                        "artifact_files": files,
                    }
                    for run_id, run, files in rows
                ],
                "removed_logged_models": removed_models,
            }
        )
        return
    if removed_models:
        typer.echo(f"Removed {len(removed_models)} deleted logged model(s): {', '.join(removed_models)}")
    if not rows:
        age = f" deleted more than {older_than} ago" if older_than else ""
        typer.echo(f"Nothing to remove: no soft-deleted runs{age}.")
        return
    out.table(
        f"Removed {len(rows)} run(s) for good",
        ["Run ID", "Exp", "Name", "Artifact files"],
        (
            (run_id, run.info.experiment_id if run else "", run.info.run_name if run else "", files)
            for run_id, run, files in rows
        ),
    )


def _artifact_files(store: TrackingStore, run: Run) -> int:
    """How many indexed artifact files the run owns (0 for artifacts kept outside the root)."""
    from conveyor.tracking.service import TrackingService

    try:
        root = TrackingService.run_artifact_root(run)
    except ConveyorError:
        return 0
    return len(store.list_artifact_records(f"{root}/"))
