"""``conveyor db``: the metadata database's schema revision, and migrating it.

For deployments that migrate as a separate step: set ``CONVEYOR_AUTO_UPGRADE=false`` on
the servers and run ``conveyor db upgrade`` once per release. Migrations take a lock, so
running it while servers start is safe.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from conveyor.cli import _output as out
from conveyor.cli._common import JsonFlag, TrackingUri, database_url
from conveyor.errors import InvalidInput

if TYPE_CHECKING:
    from sqlalchemy import Engine

app = typer.Typer(help="Inspect and migrate the metadata database schema.", no_args_is_help=True)


@contextlib.contextmanager
def _engine(url: str) -> Iterator[Engine]:
    from sqlalchemy import exc as sa_exc
    from sqlalchemy import make_url

    from conveyor.store.sql.engine import create_engines, mask_url, translate_errors

    try:
        backend = make_url(url).get_backend_name()
    except sa_exc.ArgumentError:
        raise InvalidInput(
            f"{mask_url(url)} is not a database URL (sqlite:///… or postgresql+psycopg://…)"
        ) from None
    if backend not in ("sqlite", "postgresql"):
        raise InvalidInput(f"Unsupported database {mask_url(url)}: Conveyor runs on SQLite and PostgreSQL")
    try:
        writer, reader = create_engines(url)
    except ImportError as exc:
        raise InvalidInput(
            f"The driver for {mask_url(url)} is not installed ({exc.name}): pip install 'conveyor[postgres]'"
        ) from None
    try:
        with translate_errors(url):
            yield writer
    finally:
        writer.dispose()
        reader.dispose()


def _missing_sqlite_file(url: str) -> bool:
    from sqlalchemy import exc as sa_exc
    from sqlalchemy import make_url

    try:
        parsed = make_url(url)
    except sa_exc.ArgumentError:
        return False
    database = parsed.database
    return (
        parsed.get_backend_name() == "sqlite"
        and bool(database)
        and database != ":memory:"
        and not Path(database).exists()
    )


@app.command("upgrade")
def upgrade(tracking_uri: TrackingUri = None, as_json: JsonFlag = False) -> None:
    """Migrate the schema to the revision this version of Conveyor needs."""
    from conveyor.store.sql import migrations
    from conveyor.store.sql.engine import mask_url

    _, url = database_url(tracking_uri, "db upgrade")
    with _engine(url) as engine:
        with engine.connect() as conn:
            before = migrations.current_revision(conn)
        after = migrations.upgrade_to_head(engine, url)
    if as_json:
        out.emit_json(
            {"database_url": mask_url(url), "from": before, "to": after, "changed": before != after}
        )
    elif before == after:
        typer.echo(f"{mask_url(url)} is already at the head revision {after}; nothing to do.")
    else:
        typer.echo(f"Upgraded {mask_url(url)} from {before or '(empty database)'} to {after}.")


@app.command("current")
def current(tracking_uri: TrackingUri = None, as_json: JsonFlag = False) -> None:
    """Print the database's schema revision and whether it is up to date."""
    from conveyor.store.sql import migrations
    from conveyor.store.sql.engine import mask_url

    _, url = database_url(tracking_uri, "db current")
    revision = None
    if not _missing_sqlite_file(url):  # connecting would create an empty file
        with _engine(url) as engine, engine.connect() as conn:
            revision = migrations.current_revision(conn)
    head = migrations.head_revision()
    if as_json:
        out.emit_json(
            {"database_url": mask_url(url), "current": revision, "head": head, "up_to_date": revision == head}
        )
    elif revision == head:
        typer.echo(f"{mask_url(url)}: revision {revision} (head, up to date)")
    else:
        typer.echo(
            f"{mask_url(url)}: revision {revision or '(empty database)'}, head is {head}; "
            "run `conveyor db upgrade`."
        )
