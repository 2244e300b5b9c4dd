"""Who is acting right now, as the store's audit records name them.

The store writes an audit record in the same transaction as each change, but it must not
know about HTTP or identity, so the caller's identity reaches it through a context
variable: the server sets one per request (:func:`acting_as`), and anything that sets
none (a script logging straight to the database, the CLI) acts as the OS user, who could
change the database directly anyway. A context variable follows a request into the
worker threads Starlette runs sync endpoints in, and never leaks between requests.

The same variable carries the caller's workspace, which scopes every read and receives
every new object (:func:`current_workspace`): the store filters inside its queries, so a
search never sees another workspace's rows and a lookup by id answers "not found".
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import os
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


#: Where objects live unless a caller says otherwise; also where pre-workspace data went.
DEFAULT_WORKSPACE = "default"
#: The workspace a process working on the database itself is confined to, when set.
WORKSPACE_ENV = "CONVEYOR_WORKSPACE"
#: Set by the platform on processes it starts for a job of its own (see :func:`local_actor`).
SYSTEM_ACTOR_ENV = "CONVEYOR_SYSTEM_ACTOR"

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


def current_workspace() -> str | None:
    """The workspace that scopes what the caller sees; None means every workspace.

    The server always names one (the request's). A local process on the database is
    trusted with all of them unless ``CONVEYOR_WORKSPACE`` confines it to one.
    """
    actor = _current.get()
    if actor is not None and actor.workspace:
        return actor.workspace
    return os.environ.get(WORKSPACE_ENV) or None


def workspace_for_new_objects() -> str:
    """The workspace a new experiment, model or pipeline run belongs to."""
    return current_workspace() or DEFAULT_WORKSPACE


def local_actor() -> AuditActor:
    """The OS account running this process, or the system job it runs as.

    A job the platform starts on its own (a scheduled pipeline run) is launched with
    ``CONVEYOR_SYSTEM_ACTOR`` naming the job, so its records say which job acted, with
    actor kind ``system``, rather than naming the account the scheduler happens to run as.
    """
    if job := os.environ.get(SYSTEM_ACTOR_ENV):
        return AuditActor(job, "system")
    return _os_user()


def system_actor(job: str) -> AuditActor:
    """The actor for work the platform does on its own: the scheduler, garbage collection."""
    return AuditActor(f"{job} (as {_os_user().name})", "system")


@functools.cache
def _os_user() -> AuditActor:
    """Cached, since it cannot change while the process runs."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # containers may have no passwd entry
        name = "unknown"
    return AuditActor(name, "user")


__all__ = [
    "DEFAULT_WORKSPACE",
    "SYSTEM_ACTOR_ENV",
    "WORKSPACE_ENV",
    "AuditActor",
    "acting_as",
    "current_actor",
    "current_workspace",
    "local_actor",
    "system_actor",
    "workspace_for_new_objects",
]
