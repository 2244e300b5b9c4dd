"""``conveyor registry``: registered models, versions, aliases and their history.

The registry lives in the metadata database, so these commands take the database URL
(or the local store); a server URL is refused for now. Every alias move is recorded:
``history NAME --alias champion --at 2026-03-01T10:00Z`` says which version it named
then, who moved it there, why, and under which approval.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from conveyor.cli import _output as out
from conveyor.cli._common import JsonFlag, TrackingUri, database_url
from conveyor.errors import InvalidInput

if TYPE_CHECKING:
    from conveyor.registry import AliasEvent, ModelVersion, RegistryService

app = typer.Typer(help="Registered models, versions, aliases and alias history.", no_args_is_help=True)
alias_app = typer.Typer(help="Point an alias (champion, challenger…) at a version, or remove it.")
app.add_typer(alias_app, name="alias")

Reason = Annotated[str | None, typer.Option("--reason", help="Why: kept in the alias history and audit log.")]


@app.command("create")
def create(
    name: str,
    description: Annotated[str | None, typer.Option("--description", "-d")] = None,
    as_json: JsonFlag = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Create an empty registered model."""
    with _open(tracking_uri) as registry:
        model = registry.create_model(name, description=description)
    _print(asdict(model), as_json, f"Created registered model {model.name!r}")


@app.command("register")
def register(
    name: str,
    source_uri: Annotated[
        str, typer.Argument(help="runs:/<run_id>/<path>, mlflow-artifacts:/<path> or a folder.")
    ],
    run_id: Annotated[str | None, typer.Option("--run-id", help="The run that produced the model.")] = None,
    description: Annotated[str | None, typer.Option("--description", "-d")] = None,
    as_json: JsonFlag = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Register the model at SOURCE_URI as NAME's next version (verified, digest recorded)."""
    with _open(tracking_uri) as registry:
        version = registry.create_version(name, source_uri, run_id=run_id, description=description)
    _print(_version_json(version), as_json, f"Registered {version.uri} (digest {version.model_digest})")


@app.command("list")
def list_models(
    filter_string: Annotated[
        str | None, typer.Option("--filter", "-f", help="e.g. \"name LIKE 'churn%' AND tags.team = 'risk'\".")
    ] = None,
    max_results: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    as_json: JsonFlag = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Registered models, by name."""
    with _open(tracking_uri) as registry:
        found = registry.search_models(filter_string, max_results=max_results).items
    if as_json:
        out.emit_json({"registered_models": [asdict(m) for m in found]})
        return
    rows = (
        [
            m.name,
            ", ".join(f"{a}→{v}" for a, v in sorted(m.aliases.items())),
            m.owner,
            out.when(m.last_updated_time),
        ]
        for m in found
    )
    out.table(None, ["Name", "Aliases", "Owner", "Updated"], rows, no_wrap=("Name",))


@app.command("show")
def show(name: str, as_json: JsonFlag = False, tracking_uri: TrackingUri = None) -> None:
    """A registered model: description, owner, tags and aliases."""
    with _open(tracking_uri) as registry:
        model = registry.get_model(name)
    if as_json:
        out.emit_json(asdict(model))
        return
    typer.echo(f"{model.name}  (owner {model.owner}, updated {out.when(model.last_updated_time)})")
    if model.description:
        typer.echo(model.description)
    for key, value in sorted(model.tags.items()):
        typer.echo(f"  tag {key} = {value}")
    for alias, version in sorted(model.aliases.items()):
        typer.echo(f"  @{alias} -> version {version}")


@app.command("versions")
def versions(name: str, as_json: JsonFlag = False, tracking_uri: TrackingUri = None) -> None:
    """The model's live versions, newest first."""
    with _open(tracking_uri) as registry:
        found = registry.search_versions(f"name = '{_quote(name)}'").items
    if as_json:
        out.emit_json({"model_versions": [_version_json(v) for v in found]})
        return
    rows = (
        [v.version, ", ".join(v.aliases), v.status, v.model_digest[:12] if v.model_digest else "", v.source]
        for v in found
    )
    out.table(None, ["Version", "Aliases", "Status", "Digest", "Source"], rows, no_wrap=("Version", "Digest"))


@alias_app.command("set")
def alias_set(
    name: str,
    alias: str,
    version: int,
    reason: Reason = None,
    as_json: JsonFlag = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Point ALIAS at VERSION; the move is recorded with its reason."""
    with _open(tracking_uri) as registry:
        event = registry.set_alias(name, alias, version, reason=reason)
    _print(asdict(event), as_json, f"{name}@{alias}: {_arrow(event)}")


@alias_app.command("delete")
def alias_delete(
    name: str, alias: str, reason: Reason = None, as_json: JsonFlag = False, tracking_uri: TrackingUri = None
) -> None:
    """Remove ALIAS; the removal is recorded like a move."""
    with _open(tracking_uri) as registry:
        event = registry.delete_alias(name, alias, reason=reason)
    _print(asdict(event), as_json, f"{name}@{alias}: {_arrow(event)}")


@app.command("history")
def history(
    name: str,
    alias: Annotated[str | None, typer.Option("--alias", "-a", help="Only this alias.")] = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--at", metavar="TIME", help="ISO 8601 time with zone, e.g. 2026-03-01T10:00Z: what was set then."
        ),
    ] = None,
    as_json: JsonFlag = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Every move of the model's aliases; with --alias and --at, the one in force at that time."""
    moment = None if at is None else parse_time(at)
    with _open(tracking_uri) as registry:
        if alias is not None and moment is not None:
            found = registry.alias_at(name, alias, moment)
            events = [] if found is None else [found]
        else:
            events = registry.alias_history(name, alias, at=moment)
    if as_json:
        out.emit_json({"events": [asdict(e) for e in events]})
        return
    if not events:
        typer.echo(f"{name}@{alias} was not set at {at}." if alias and at else "No alias moves recorded.")
        return
    rows = ([out.when(e.time), f"@{e.alias}", _arrow(e), e.actor, e.reason, e.approval_id] for e in events)
    out.table(None, ["Time", "Alias", "Move", "Actor", "Reason", "Approval"], rows, no_wrap=("Time", "Alias"))


def parse_time(text: str) -> datetime:
    """An ISO 8601 time with a zone (``Z`` or ``+01:00``); a time without one is ambiguous."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise InvalidInput(f"--at {text!r} is not an ISO 8601 time such as 2026-03-01T10:00Z") from None
    if moment.tzinfo is None:
        raise InvalidInput(f"--at {text!r} has no time zone: add Z for UTC or an offset such as +01:00")
    return moment


def _arrow(event: AliasEvent) -> str:
    old = "-" if event.old_version is None else f"v{event.old_version}"
    new = "removed" if event.new_version is None else f"v{event.new_version}"
    return f"{old} → {new}"


def _quote(text: str) -> str:
    return text.replace("'", "''")


def _version_json(version: ModelVersion) -> dict[str, Any]:
    return {**asdict(version), "uri": version.uri}


def _print(data: dict[str, Any], as_json: bool, message: str) -> None:
    if as_json:
        out.emit_json(data)
    else:
        typer.echo(message)


@contextlib.contextmanager
def _open(tracking_uri: str | None) -> Iterator[RegistryService]:
    """The registry of the database the URI names (or the local store), closed after."""
    from pydantic import SecretStr

    from conveyor.registry import RegistryService

    settings, url = database_url(tracking_uri, "registry")
    registry = RegistryService.from_settings(settings.model_copy(update={"database_url": SecretStr(url)}))
    try:
        yield registry
    finally:
        registry.store.close()
