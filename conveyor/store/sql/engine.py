"""Engines tuned per database, and the one place driver errors become Conveyor errors.

SQLite is the laptop default and must survive several processes writing at once
(MLflow's "database is locked", PR #6490). Three settings make that so:

* WAL journal, so readers never block the writer and the writer never blocks readers;
* a long busy timeout, so a writer waits for the lock instead of failing;
* ``BEGIN IMMEDIATE`` for write transactions: a deferred transaction that reads and then
  writes can be refused the write lock at once, without the busy handler ever running.
  Taking the write lock up front makes every writer queue politely.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy import exc as sa_exc

from conveyor.errors import BackendUnavailable, ConveyorError

SQLITE_BUSY_TIMEOUT_MS = 60_000


def mask_url(url: str) -> str:
    """The URL with its password hidden, for logs and error messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sa_exc.ArgumentError:
        return "<unparseable database URL>"


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def ensure_parent_folder(url: str) -> None:
    """Create the folder of a SQLite file, so a first run in a fresh project just works."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def create_engines(url: str) -> tuple[Engine, Engine]:
    """Return ``(writer, reader)`` engines; on PostgreSQL both are the same engine."""
    if not is_sqlite(url):
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
        return engine, engine
    return _sqlite_engine(url, immediate=True), _sqlite_engine(url, immediate=False)


def _sqlite_engine(url: str, *, immediate: bool) -> Engine:
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        # Let SQLAlchemy, not pysqlite, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


@contextlib.contextmanager
def translate_errors(url: str) -> Iterator[None]:
    """Turn driver failures into ``BackendUnavailable`` without leaking driver text or passwords."""
    try:
        yield
    except ConveyorError:
        raise
    except sa_exc.OperationalError as exc:
        raise BackendUnavailable(
            f"The metadata database at {mask_url(url)} is unavailable: {type(exc.orig).__name__}"
        ) from exc
    except sa_exc.InterfaceError as exc:
        raise BackendUnavailable(f"Lost the connection to the metadata database at {mask_url(url)}") from exc
