"""Who is asking, from where, in which workspace: one object handed to every service call.

The HTTP middleware builds one per request; local commands that work on the database
directly use :meth:`RequestContext.local`. The audit log reads its actor fields from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from conveyor.store.actor import DEFAULT_WORKSPACE, AuditActor, local_actor
from conveyor.store.sql.audit import ActorKind
from conveyor.store.sql.identity import Principal


@dataclass(frozen=True, slots=True)
class RequestContext:
    """The caller of one operation.

    ``principal`` is None in two cases: a local command with direct database access
    (``source`` None: trusted, as whoever can reach the database can change it anyway),
    or a server running without authentication (``source`` set: anonymous).
    """

    principal: Principal | None
    workspace: str = DEFAULT_WORKSPACE
    #: The client's address, for requests that came over the network.
    source: str | None = None
    request_id: str | None = None

    @classmethod
    def local(cls, workspace: str = DEFAULT_WORKSPACE) -> RequestContext:
        """A command run on the database itself (``conveyor users …``)."""
        return cls(principal=None, workspace=workspace)

    @property
    def is_local(self) -> bool:
        return self.principal is None and self.source is None

    def audit_actor(self) -> AuditActor:
        """The audit record's actor: the principal, the local OS user, or anonymous."""
        if self.principal is not None:
            name, kind = self.principal.name, str(self.principal.kind)
        elif self.is_local:
            name, kind = f"local:{local_actor().name}", ActorKind.SYSTEM.value
        else:
            name, kind = "anonymous", ActorKind.ANONYMOUS.value
        return AuditActor(name, kind, self.source, self.workspace, self.request_id)
