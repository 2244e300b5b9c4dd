"""``conveyor registry webhooks create | list | delete | test | deliveries | dispatch``.

Registered onto the ``registry`` group by :func:`register`. ``create`` generates the
signing secret unless one is given and prints it once: no other command shows it.
``dispatch`` sends due deliveries now, for setups that run no ``conveyor server``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

import typer

from conveyor.cli import _output as out
from conveyor.cli._common import JsonFlag, TrackingUri, database_url

if TYPE_CHECKING:
    from conveyor.registry.webhooks import WebhookService

app = typer.Typer(
    help="POST signed registry events (versions, aliases, approvals) to URLs.", no_args_is_help=True
)


def register(registry_app: typer.Typer) -> None:
    """Add ``conveyor registry webhooks``."""
    registry_app.add_typer(app, name="webhooks")


@app.command("create")
def create(
    name: str,
    url: str,
    event: Annotated[
        list[str] | None,
        typer.Option(
            "--event",
            "-e",
            help="model_version.created, alias.moved, alias.deleted, "
            "approval.requested, approval.decided (repeat; default: all).",
        ),
    ] = None,
    secret: Annotated[
        str | None, typer.Option("--secret", help="The HMAC secret (≥ 16 characters); generated if absent.")
    ] = None,
    as_json: JsonFlag = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Subscribe URL to registry events; prints the signing secret once."""
    import secrets

    from conveyor.registry.webhooks import EVENTS

    key = secret or secrets.token_hex(32)
    with _open(tracking_uri) as webhooks:
        created = webhooks.create(name, url, event or EVENTS, secret=key)
    if as_json:
        out.emit_json({**created.to_json(), "secret": key})
        return
    typer.echo(f"Created webhook {created.name} -> {created.url} for {', '.join(created.events)}")
    if secret is None:
        typer.echo(f"Signing secret (shown only now): {key}")


@app.command("list")
def list_webhooks(as_json: JsonFlag = False, tracking_uri: TrackingUri = None) -> None:
    """Webhooks, by name (secrets are never shown)."""
    with _open(tracking_uri) as webhooks:
        found = webhooks.list_webhooks()
    if as_json:
        out.emit_json({"webhooks": [w.to_json() for w in found]})
        return
    rows = ([w.name, w.url, ", ".join(w.events), w.status, out.when(w.created)] for w in found)
    out.table(None, ["Name", "URL", "Events", "Status", "Created"], rows, no_wrap=("Name",))


@app.command("delete")
def delete(name: str, tracking_uri: TrackingUri = None) -> None:
    """Delete a webhook and its deliveries."""
    with _open(tracking_uri) as webhooks:
        webhooks.delete(name)
    typer.echo(f"Deleted webhook {name}")


@app.command("test")
def test(name: str, tracking_uri: TrackingUri = None) -> None:
    """POST a signed webhook.test event to NAME's URL now and print the answer."""
    with _open(tracking_uri) as webhooks:
        status, error = webhooks.test(name)
    if error is not None:
        typer.echo(f"Webhook {name} failed: {error}", err=True)
        raise typer.Exit(1)
    typer.echo(f"Webhook {name} answered {status}")


@app.command("deliveries")
def deliveries(
    name: Annotated[str | None, typer.Argument(help="Only this webhook's deliveries.")] = None,
    state: Annotated[str | None, typer.Option("--state", help="PENDING, DELIVERED or FAILED.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 100,
    as_json: JsonFlag = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Deliveries, newest first: event, state, attempts, the last answer."""
    with _open(tracking_uri) as webhooks:
        found = webhooks.deliveries(name, state, limit)
    if as_json:
        out.emit_json({"deliveries": [d.to_json() for d in found]})
        return
    rows = (
        [d.id, d.event, d.state, d.attempts, d.last_status, out.when(d.next_attempt_at), d.last_error]
        for d in found
    )
    headers = ["Id", "Event", "State", "Attempts", "Last status", "Next attempt", "Last error"]
    out.table(None, headers, rows, no_wrap=("Id",))


@app.command("dispatch")
def dispatch(tracking_uri: TrackingUri = None) -> None:
    """Send the deliveries that are due now (the server does this in the background)."""
    from conveyor.registry.webhooks import WebhookDispatcher

    with _open(tracking_uri) as webhooks:
        sent = WebhookDispatcher(webhooks.store).dispatch_once()
    typer.echo(f"Attempted {sent} deliveries")


@contextlib.contextmanager
def _open(tracking_uri: str | None) -> Iterator[WebhookService]:
    """The webhooks of the database the URI names (or the local store), closed after."""
    from conveyor.registry.webhooks import WebhookService
    from conveyor.store import open_store
    from conveyor.store.sql.store import SqlStore

    settings, url = database_url(tracking_uri, "registry webhooks")
    store = open_store(url, upgrade=settings.auto_upgrade)
    assert isinstance(store, SqlStore)
    try:
        yield WebhookService(store)
    finally:
        store.close()
