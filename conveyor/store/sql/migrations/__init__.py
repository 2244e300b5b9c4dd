"""Schema migrations with Alembic, run under a lock so parallel processes never race.

Two processes opening a fresh SQLite file at once must not both create tables (the
``duplicate column`` failures MLflow users hit with parallel Hydra jobs). The first takes
a lock — a lock file beside a SQLite database, an advisory lock on PostgreSQL — and
migrates; the others wait, re-read the revision and find nothing left to do.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, make_url, text

from conveyor.errors import BackendUnavailable
from conveyor.store.sql.engine import mask_url

_HERE = Path(__file__).parent
#: Arbitrary but fixed key of the PostgreSQL advisory lock taken while migrating.
_PG_LOCK_KEY = 0x636F6E76


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_HERE))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def ensure_current(engine: Engine, url: str, *, upgrade: bool) -> None:
    """Leave the database at the head revision, or explain how to get it there."""
    head = head_revision()
    with engine.connect() as conn:
        current = current_revision(conn)
    if current == head:
        return
    if current is not None and not upgrade:
        raise BackendUnavailable(
            f"The metadata database at {mask_url(url)} is at schema revision {current}, this "
            f"version of Conveyor needs {head}. Run `conveyor db upgrade` first."
        )
    upgrade_to_head(engine, url)


def upgrade_to_head(engine: Engine, url: str) -> str:
    """Apply every pending migration and return the revision reached."""
    with _migration_lock(engine, url), engine.connect() as conn:
        if current_revision(conn) != head_revision():
            command.upgrade(alembic_config(conn), "head")
            conn.commit()
        return current_revision(conn) or ""


@contextlib.contextmanager
def _migration_lock(engine: Engine, url: str) -> Iterator[None]:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if not database or database == ":memory:":
            yield
            return
        with open(Path(database).with_suffix(".migrate.lock"), "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    with engine.connect() as lock_conn:
        lock_conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _PG_LOCK_KEY})
        try:
            yield
        finally:
            lock_conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_LOCK_KEY})
            lock_conn.commit()
