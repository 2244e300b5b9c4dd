"""Who is acting right now, as the store's audit records name them.

The store writes an audit record in the same transaction as each change, but it must not
know about HTTP or identity, so the caller's identity reaches it through a context
variable: the server sets one per request (:func:`acting_as`), and anything that sets
none (a script logging straight to the database, the CLI) acts as the OS user, who could
change the database directly anyway. A context variable follows a request into the
worker threads Starlette runs sync endpoints in, and never leaks between requests.
"""

from __future__ import annotations

import contextlib
import functools
import getpass
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AuditActor:
    """Who causes a mutation, as the audit record names them."""

    name: str
    #: One of :class:`conveyor.store.sql.audit.ActorKind`'s values.
    kind: str
    source: str | None = None
    workspace: str | None = None
    request_id: str | None = None


_current: ContextVar[AuditActor | None] = ContextVar("conveyor_audit_actor", default=None)


def current_actor() -> AuditActor:
    """The actor set by the nearest :func:`acting_as`, or the local OS user."""
    return _current.get() or local_actor()


@contextlib.contextmanager
def acting_as(actor: AuditActor) -> Iterator[AuditActor]:
    """Attribute the store writes made inside the block to ``actor``."""
    token = _current.set(actor)
    try:
        yield actor
    finally:
        _current.reset(token)


@functools.cache
def local_actor() -> AuditActor:
    """The OS account running this process: cached, since it cannot change while it runs."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # containers may have no passwd entry
        name = "unknown"
    return AuditActor(name, "user")


__all__ = ["AuditActor", "acting_as", "current_actor", "local_actor"]
