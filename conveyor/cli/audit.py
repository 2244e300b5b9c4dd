"""``conveyor audit``: verify, export and list the tamper-evident audit log.

The log lives in the metadata database, so these commands take the database URL; a
server URL is refused. ``verify`` prints the head it reached as ``HASH@SEQ``: keep that
line somewhere the database's administrators cannot write (a ticket, a signed mail, the
export archive) and pass it back with ``--expect-head`` to catch a log cut short or
rebuilt from scratch, which the chain alone cannot show.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer

from conveyor.cli import _output as out
from conveyor.cli._common import JsonFlag, TrackingUri, database_url
from conveyor.errors import IntegrityError

if TYPE_CHECKING:
    from conveyor.store.sql.audit import AuditLog, AuditRecord

app = typer.Typer(help="Verify, export and list the tamper-evident audit log.", no_args_is_help=True)


@app.command("verify")
def verify(
    expect_head: Annotated[
        str | None,
        typer.Option(
            "--expect-head",
            metavar="HASH@SEQ",
            help="A head printed by an earlier verify: the record at SEQ must still have HASH.",
        ),
    ] = None,
    as_json: JsonFlag = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Recompute the hash chain; exit 1 naming the first edited, deleted or moved record."""
    from conveyor.store.sql.audit import parse_head

    pin = None if expect_head is None else parse_head(expect_head, "--expect-head")
    with _open_log(tracking_uri, "audit verify") as log:
        result = log.verify(expect_head=pin)
    if as_json:
        out.emit_json(result.to_json())
        if not result.ok:
            raise typer.Exit(1)
        return
    if result.broken is not None:
        broken = result.broken
        raise IntegrityError(
            f"Audit record {broken.seq} is {broken.kind}: {broken.reason}. "
            f"The {result.records} records before it verified."
        )
    if result.records == 0:
        typer.echo("Verified 0 records: the audit log is empty.")
        return
    typer.echo(f"Verified {result.records} records, head hash {result.head_hash}@{result.head_seq}")


@app.command("export")
def export(
    since: Annotated[
        int, typer.Option("--since", metavar="SEQ", min=0, help="Only records after this sequence number.")
    ] = 0,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", dir_okay=False, help="Write to this file instead of stdout."),
    ] = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Write the audit log as JSON Lines, one record per line, for archiving elsewhere."""
    with _open_log(tracking_uri, "audit export") as log:
        if output is None:
            log.export(typer.get_binary_stream("stdout"), since_seq=since)
            return
        with output.open("wb") as handle:
            count = log.export(handle, since_seq=since)
    typer.echo(f"Exported {count} records to {output}", err=True)


@app.command("list")
def list_records(
    resource: Annotated[
        str | None,
        typer.Option("--resource", metavar="TYPE[:ID]", help="Only records about this resource (or type)."),
    ] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="Only records by this actor.")] = None,
    action: Annotated[
        str | None, typer.Option("--action", help="Only this action, e.g. registry.alias.set.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show at most this many records.")] = 50,
    as_json: JsonFlag = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """The latest audit records, newest first."""
    resource_type, _, resource_id = (resource or "").partition(":")
    with _open_log(tracking_uri, "audit list") as log:
        records = log.read(
            limit=limit,
            resource_type=resource_type or None,
            resource_id=resource_id or None,
            actor=actor,
            action=action,
            newest_first=True,
        )
    if as_json:
        out.emit_json({"records": [r.to_json() for r in records]})
        return
    if not records:
        typer.echo("No audit records match.")
        return
    # Narrow terminals get who, what and which only (--json has it all): rich would
    # otherwise fold every column to a few letters.
    columns = ["Seq", "Time", "Actor", "Action", "Resource"]
    columns += ["Workspace", "Source"] if out.console().width >= 120 else []
    out.table(
        None,
        columns,
        (_row(r)[: len(columns)] for r in records),
        no_wrap=("Seq", "Time", "Action"),
    )


def _row(record: AuditRecord) -> list[object]:
    actor = record.actor if record.actor_kind == "user" else f"{record.actor} ({record.actor_kind})"
    return [
        record.seq,
        out.when(record.time),
        actor,
        record.action,
        f"{record.resource_type}:{record.resource_id}",
        record.workspace,
        record.source,
    ]


@contextlib.contextmanager
def _open_log(tracking_uri: str | None, command: str) -> Iterator[AuditLog]:
    """The audit log of the database the URI names; its store is closed after."""
    from conveyor.store import open_store
    from conveyor.store.sql.audit import AuditLog
    from conveyor.store.sql.store import SqlStore

    settings, url = database_url(tracking_uri, command)
    # database_url refuses server URLs, so open_store returns the SQL store here.
    store = cast(SqlStore, open_store(url, upgrade=settings.auto_upgrade))
    try:
        yield AuditLog(store)
    finally:
        store.close()
