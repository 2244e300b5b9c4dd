"""``conveyor pipeline schedule`` / ``schedules …`` and ``conveyor scheduler``: cron runs of pipelines.

Schedules live in the metadata database, so these commands work on the database itself
(the local store, or ``--tracking-uri``/``CONVEYOR_DATABASE_URL`` naming a database), and
whatever fires them (``conveyor scheduler`` or ``conveyor server --scheduler``) must use
the same database.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from conveyor.cli import _output as out
from conveyor.cli._common import JsonFlag, TrackingUri, database_url
from conveyor.errors import InvalidInput

if TYPE_CHECKING:
    from conveyor.config import Settings
    from conveyor.pipelines.schedules import Launch, Scheduler
    from conveyor.store.sql.schedules import Schedule, ScheduleStore

schedules_app = typer.Typer(help="List, pause, resume and delete pipeline schedules.", no_args_is_help=True)


class Executor(StrEnum):
    LOCAL = "local"
    PROCESS = "process"
    DASK = "dask"


NameOrId = Annotated[str, typer.Argument(metavar="NAME_OR_ID", help="Schedule name or id.")]


def register(pipeline_app: typer.Typer) -> None:
    """Add ``schedule`` and the ``schedules`` group to the ``conveyor pipeline`` group."""
    pipeline_app.command("schedule")(schedule)
    pipeline_app.add_typer(schedules_app, name="schedules")


def schedule(
    target: Annotated[
        str, typer.Argument(help="Pipeline to run: churn.py, churn.py:churn or pkg.module:churn.")
    ],
    cron: Annotated[
        str, typer.Option(help="When to run, as five cron fields in --timezone, e.g. '0 3 * * *'.")
    ],
    name: Annotated[
        str | None, typer.Option(help="Schedule name; default: the pipeline's name or file stem.")
    ] = None,
    params: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", metavar="KEY=VALUE", help="Pipeline parameter; repeat for several."),
    ] = None,
    executor: Annotated[Executor, typer.Option(help="Where the steps run.")] = Executor.LOCAL,
    address: Annotated[str | None, typer.Option(help="Scheduler address for the dask executor.")] = None,
    timezone: Annotated[str, typer.Option(help="IANA time zone the cron fields are read in.")] = "UTC",
    as_json: JsonFlag = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Run a pipeline on a cron schedule, fired by `conveyor scheduler` or `conveyor server --scheduler`."""
    target = _resolve_target(target)
    with _open_schedules(tracking_uri, "pipeline schedule") as schedules:
        created = schedules.create(
            name or _default_name(target),
            target,
            cron,
            params=_parse_params(params or []),
            timezone=timezone,
            executor=executor.value,
            executor_address=address,
        )
    if as_json:
        out.emit_json(schedule_json(created))
        return
    typer.echo(
        f"Scheduled {created.name} (id {created.schedule_id}): {created.cron} in {created.timezone}; "
        f"next run {out.when(created.next_fire_time)}"
    )


@schedules_app.command("list")
def list_schedules(as_json: JsonFlag = False, tracking_uri: TrackingUri = None) -> None:
    """List every schedule, paused ones included."""
    with _open_schedules(tracking_uri, "pipeline schedules list") as schedules:
        found = schedules.list_all()
    if as_json:
        out.emit_json({"schedules": [schedule_json(s) for s in found]})
        return
    # As `runs list`: narrow terminals get the identifying columns only (--json has it all).
    width = out.console().width
    columns = ["Name", "State", "Cron", "Zone", "Next run"]
    columns += ["Last run", "Executor"] if width >= 100 else []
    columns += ["Target"] if width >= 140 else []
    out.table(
        None,
        columns,
        (
            [
                s.name,
                "active" if s.enabled else "paused",
                s.cron,
                s.timezone,
                out.when(s.next_fire_time, seconds=False) if s.enabled else "",
                out.when(s.last_fire_time, seconds=False),
                s.executor,
                s.target,
            ][: len(columns)]
            for s in found
        ),
        no_wrap=("Name", "Cron", "Next run", "Last run"),
    )


@schedules_app.command("delete")
def delete_schedule(name_or_id: NameOrId, tracking_uri: TrackingUri = None) -> None:
    """Delete a schedule for good; the runs it started are kept."""
    with _open_schedules(tracking_uri, "pipeline schedules delete") as schedules:
        deleted = schedules.delete(name_or_id)
    typer.echo(f"Deleted schedule {deleted.name} (id {deleted.schedule_id})")


@schedules_app.command("pause")
def pause_schedule(name_or_id: NameOrId, tracking_uri: TrackingUri = None) -> None:
    """Stop firing a schedule until it is resumed."""
    with _open_schedules(tracking_uri, "pipeline schedules pause") as schedules:
        paused = schedules.set_enabled(name_or_id, False)
    typer.echo(f"Paused schedule {paused.name}")


@schedules_app.command("resume")
def resume_schedule(name_or_id: NameOrId, tracking_uri: TrackingUri = None) -> None:
    """Fire a paused schedule again, from its next cron time on (missed times are skipped)."""
    with _open_schedules(tracking_uri, "pipeline schedules resume") as schedules:
        resumed = schedules.set_enabled(name_or_id, True)
    typer.echo(f"Resumed schedule {resumed.name}; next run {out.when(resumed.next_fire_time)}")


def scheduler(
    interval: Annotated[
        float, typer.Option(min=1.0, help="Seconds between checks for due schedules.")
    ] = 30.0,
    once: Annotated[
        bool,
        typer.Option(
            "--once",
            help="Check once, wait for the runs it starts and exit (to drive it from cron or a CronJob).",
        ),
    ] = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Fire pipeline schedules until Ctrl-C; runs it started keep running after it stops."""
    from conveyor.pipelines.schedules import Scheduler

    settings = _database_settings(tracking_uri, "scheduler")
    runner = Scheduler.from_settings(settings)
    try:
        if once:
            _run_once(runner.tick())
        else:
            _run_until_interrupted(runner, interval)
    finally:
        runner.close()


def _run_once(launched: list[Launch]) -> None:
    if not launched:
        typer.echo("No schedule is due.")
    for launch in launched:
        _print_launch(launch)
    for launch in launched:
        typer.echo(f"{launch.schedule.name}: exited with status {launch.process.wait()}")


def _run_until_interrupted(runner: Scheduler, interval: float) -> None:
    typer.echo(f"Conveyor scheduler: checking every {interval:g} s; Ctrl-C to stop.")
    try:
        runner.run_forever(interval, threading.Event(), on_launch=_print_launch)
    except KeyboardInterrupt:
        typer.echo("Scheduler stopped.")


def _print_launch(launch: Launch) -> None:
    typer.echo(
        f"{out.when(launch.fired_at)}  started {launch.schedule.name} "
        f"(pid {launch.process.pid}); output in {launch.log_path}"
    )


def schedule_json(item: Schedule) -> dict[str, Any]:
    """A schedule for ``--json``: times in milliseconds since the epoch, as everywhere."""
    return {
        "schedule_id": item.schedule_id,
        "name": item.name,
        "target": item.target,
        "params": dict(item.params),
        "cron": item.cron,
        "timezone": item.timezone,
        "executor": item.executor,
        "executor_address": item.executor_address,
        "enabled": item.enabled,
        "next_fire_time": item.next_fire_time,
        "last_fire_time": item.last_fire_time,
        "last_run_id": item.last_run_id,
        "created": item.created,
    }


# -- helpers --------------------------------------------------------------------------------


def _database_settings(tracking_uri: str | None, command: str) -> Settings:
    """Settings whose database is the one the flag or environment names (a server URL is refused)."""
    from pydantic import SecretStr

    settings, url = database_url(tracking_uri, command)
    return settings.model_copy(update={"database_url": SecretStr(url)})


@contextlib.contextmanager
def _open_schedules(tracking_uri: str | None, command: str) -> Iterator[ScheduleStore]:
    from conveyor.store.sql.schedules import open_schedule_store

    settings = _database_settings(tracking_uri, command)
    schedules = open_schedule_store(settings.resolved_database_url(), upgrade=settings.auto_upgrade)
    try:
        yield schedules
    finally:
        schedules.close()


def _file_part(target: str) -> tuple[str, str]:
    """``(file, pipeline name)`` of a file target (name may be empty), or ``("", "")`` for a module."""
    if target.endswith(".py"):
        return target, ""
    path, _, attr = target.rpartition(":")
    return (path, attr) if path.endswith(".py") else ("", "")


def _resolve_target(target: str) -> str:
    """File targets become absolute, so the scheduler finds them whatever its working directory."""
    path, attr = _file_part(target)
    if not path:
        return target
    file = Path(path).expanduser()
    if not file.is_file():
        raise InvalidInput(
            f"No pipeline file {path!r}: give the path of a .py file, or a module (pkg.mod:name)."
        )
    return f"{file.resolve()}:{attr}" if attr else str(file.resolve())


def _default_name(target: str) -> str:
    path, attr = _file_part(target)
    if path:
        return attr or Path(path).stem
    module, _, attr = target.partition(":")
    return attr or module.rpartition(".")[2]


def _parse_params(items: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInput(f"Invalid --param {item!r}: write KEY=VALUE, e.g. --param lr=0.1")
        if key in params:
            raise InvalidInput(f"--param {key} is given twice; give each parameter once.")
        params[key] = value
    return params
