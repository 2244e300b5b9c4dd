"""Metadata stores, picked by URI scheme and imported on first use.

``sqlite:///…`` and ``postgresql+psycopg://…`` open the SQL store; ``http(s)://…`` a REST
client of a Conveyor server. Both satisfy :class:`conveyor.store.base.TrackingStore`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor.errors import InvalidInput

if TYPE_CHECKING:
    from conveyor.store.base import TrackingStore

_SQL_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg", "postgresql+psycopg2")
_REST_SCHEMES = ("http", "https")


def open_store(uri: str, *, upgrade: bool = True, token: str | None = None) -> TrackingStore:
    """Open the tracking store behind ``uri``, ready to use; ``token`` authenticates to a server."""
    scheme = uri.split(":", 1)[0].lower() if ":" in uri else ""
    if scheme in _SQL_SCHEMES:
        from conveyor.store.sql.store import SqlStore

        if scheme.startswith("postgresql"):
            _require("psycopg", "postgres")
        return SqlStore(uri).open(upgrade=upgrade)
    if scheme in _REST_SCHEMES:
        from conveyor.store.rest import RestStore

        return RestStore(uri, token=token)
    known = ", ".join(f"{s}://" for s in (*_SQL_SCHEMES, *_REST_SCHEMES))
    raise InvalidInput(f"Unsupported tracking URI {uri!r}: known schemes are {known}")


def _require(module: str, extra: str) -> None:
    try:
        __import__(module)
    except ImportError:
        raise InvalidInput(
            f"This store needs the '{module}' package: pip install 'conveyor[{extra}]'"
        ) from None
