"""Principals, API tokens, passwords, workspaces and role bindings in the SQL store.

Storage only: hashing, token formats and the rules of who may do what live in
:mod:`conveyor.identity`, which calls this module. Every mutation appends its audit
record (:mod:`conveyor.store.sql.audit`) in the same transaction, so a change to who may
do what is never committed without the record of who made it. Secrets never reach this
module: it stores and returns token digests and password hashes only.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    RowMapping,
    Select,
    bindparam,
    delete,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy import exc as sa_exc

from conveyor.errors import AlreadyExists, NotFound
from conveyor.store.actor import AuditActor
from conveyor.store.base import now_ms
from conveyor.store.sql import schema_identity as t
from conveyor.store.sql.audit import AuditEvent, AuditLog
from conveyor.store.sql.store import SqlStore

#: ``last_used_at`` is written at most this often per token (ms).
TOUCH_INTERVAL_MS = 60_000


class PrincipalKind(StrEnum):
    USER = "user"
    SERVICE = "service"


@dataclass(frozen=True, slots=True)
class Principal:
    """A user or service account, with the roles it holds per workspace."""

    principal_id: int
    name: str
    kind: PrincipalKind
    display_name: str | None
    disabled: bool
    created: int
    #: Workspace name -> roles held there; loaded with the principal.
    roles: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The principal as the API and ``--json`` listings show it: state plus roles."""
        return {**self.state(), "roles": {ws: sorted(r) for ws, r in sorted(self.roles.items())}}

    def state(self) -> dict[str, Any]:
        """What the audit log digests: everything but the id, roles sorted."""
        return {
            "name": self.name,
            "kind": str(self.kind),
            "display_name": self.display_name,
            "disabled": self.disabled,
            "created": self.created,
        }


@dataclass(frozen=True, slots=True)
class ApiToken:
    """An API token's public record; the secret exists only in the holder's hands."""

    token_id: str
    principal: str
    name: str
    created: int
    expires_at: int | None
    last_used_at: int | None
    revoked_at: int | None

    def status(self, now: int) -> str:
        """``active``, ``expired`` or ``revoked`` at ``now`` (ms)."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


@dataclass(frozen=True, slots=True)
class PasswordHash:
    """An scrypt hash with everything needed to check a password against it again."""

    algorithm: str
    cost: int
    block_size: int
    parallelism: int
    salt: str
    digest: str


@dataclass(frozen=True, slots=True)
class RoleBinding:
    principal: str
    workspace: str
    role: str
    created: int


class SqlIdentityStore:
    """Reads and writes the identity tables of one :class:`SqlStore`."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store

    # -- principals ------------------------------------------------------------------------

    def create_principal(
        self, name: str, kind: PrincipalKind, display_name: str | None, actor: AuditActor
    ) -> Principal:
        """Add a principal.

        Raises:
            AlreadyExists: the name is taken (by a user or a service account).
        """
        values = {"name": name, "kind": str(kind), "display_name": display_name, "disabled": False}
        with self._mutation(f"A principal named {name!r} already exists.") as conn:
            if conn.execute(select(t.principals.c.id).where(t.principals.c.name == name)).first():
                raise AlreadyExists(f"A principal named {name!r} already exists.")
            conn.execute(insert(t.principals).values(**values, created=now_ms()))
            principal = _principal(conn, name)
            self._audit(conn, actor, f"identity.{kind}.create", "principal", name, None, principal.state())
        return principal

    def get_principal(self, name: str) -> Principal:
        """The principal and its roles.

        Raises:
            NotFound: no principal has this name.
        """
        with self.store._read() as conn:
            return _principal(conn, name)

    def get_principal_by_id(self, principal_id: int) -> Principal:
        with self.store._read() as conn:
            return _principal(conn, principal_id)

    def list_principals(self) -> list[Principal]:
        with self.store._read() as conn:
            roles = _roles(conn, None)
            rows = conn.execute(select(t.principals).order_by(t.principals.c.name)).mappings()
            return [_to_principal(row, roles.get(row["id"], {})) for row in rows]

    def set_disabled(self, name: str, disabled: bool, actor: AuditActor) -> Principal:
        """Disable (or enable again) a principal; its tokens and password stop working at once."""
        with self.store._write() as conn:
            before = _principal(conn, name)
            conn.execute(update(t.principals).where(t.principals.c.name == name).values(disabled=disabled))
            after = _principal(conn, name)
            verb = "disable" if disabled else "enable"
            self._audit(
                conn, actor, f"identity.principal.{verb}", "principal", name, before.state(), after.state()
            )
        return after

    # -- passwords -------------------------------------------------------------------------

    def set_password(self, name: str, hashed: PasswordHash, actor: AuditActor) -> None:
        """Store (or replace) a principal's password hash; the audit record holds no part of it."""
        now = now_ms()
        with self.store._write() as conn:
            principal = _principal(conn, name)
            had = conn.execute(_password_query(principal.principal_id)).first() is not None
            conn.execute(delete(t.passwords).where(t.passwords.c.principal_id == principal.principal_id))
            conn.execute(
                insert(t.passwords).values(principal_id=principal.principal_id, updated=now, **asdict(hashed))
            )
            details = {"replaced": had}
            self._audit(conn, actor, "identity.password.set", "principal", name, None, None, details)

    def password_of(self, name: str) -> tuple[Principal, PasswordHash] | None:
        """The principal and its password hash; None when either does not exist."""
        with self.store._read() as conn:
            try:
                principal = _principal(conn, name)
            except NotFound:
                return None
            row = conn.execute(_password_query(principal.principal_id)).mappings().first()
        if row is None:
            return None
        return principal, PasswordHash(**{f.name: row[f.name] for f in fields(PasswordHash)})

    # -- tokens ----------------------------------------------------------------------------

    def create_token(
        self,
        principal_name: str,
        token_id: str,
        name: str,
        token_hash: str,
        expires_at: int | None,
        actor: AuditActor,
    ) -> ApiToken:
        """Record a new token by its digest."""
        with self.store._write() as conn:
            principal = _principal(conn, principal_name)
            conn.execute(
                insert(t.api_tokens).values(
                    id=token_id,
                    principal_id=principal.principal_id,
                    name=name,
                    token_hash=token_hash,
                    created=now_ms(),
                    expires_at=expires_at,
                )
            )
            token = _token(conn, token_id)
            self._audit(conn, actor, "identity.token.create", "api_token", token_id, None, asdict(token))
        return token

    def token_for_check(self, token_id: str) -> tuple[ApiToken, str, Principal] | None:
        """The token, its stored digest and its principal with roles, to authenticate with.

        Every authenticated request asks, so it is one read of two prebuilt statements
        (compiled once): the token joined to its principal, then the principal's roles.
        """
        with self.store._read() as conn:
            row = conn.execute(_CHECK_TOKEN, {"token_id": token_id}).mappings().first()
            if row is None:
                return None
            found: dict[str, set[str]] = defaultdict(set)
            for workspace, role in conn.execute(_ROLES_OF, {"principal_id": row["principal_id"]}):
                found[workspace].add(role)
        principal = Principal(
            principal_id=row["principal_id"],
            name=row["principal"],
            kind=PrincipalKind(row["kind"]),
            display_name=row["display_name"],
            disabled=bool(row["disabled"]),
            created=row["principal_created"],
            roles={workspace: frozenset(roles) for workspace, roles in found.items()},
        )
        return _to_token(row), row["token_hash"], principal

    def touch_token(self, token_id: str, now: int) -> None:
        """Set ``last_used_at``, unless it was set less than a minute ago (no write then)."""
        stale = or_(
            t.api_tokens.c.last_used_at.is_(None), t.api_tokens.c.last_used_at < now - TOUCH_INTERVAL_MS
        )
        with self.store._write() as conn:
            conn.execute(
                update(t.api_tokens).where(t.api_tokens.c.id == token_id, stale).values(last_used_at=now)
            )

    def list_tokens(self, principal_name: str | None = None) -> list[ApiToken]:
        query = _token_query().order_by(t.api_tokens.c.created)
        if principal_name is not None:
            query = query.where(t.principals.c.name == principal_name)
        with self.store._read() as conn:
            return [_to_token(row) for row in conn.execute(query).mappings()]

    def revoke_token(self, token_id: str, actor: AuditActor) -> ApiToken:
        """Mark a token revoked; revoking it again changes nothing and records nothing.

        Raises:
            NotFound: no token has this id.
        """
        with self.store._write() as conn:
            before = _token(conn, token_id)
            if before.revoked_at is not None:
                return before
            conn.execute(
                update(t.api_tokens).where(t.api_tokens.c.id == token_id).values(revoked_at=now_ms())
            )
            after = _token(conn, token_id)
            self._audit(
                conn, actor, "identity.token.revoke", "api_token", token_id, asdict(before), asdict(after)
            )
        return after

    # -- workspaces and roles --------------------------------------------------------------

    def create_workspace(self, name: str, actor: AuditActor) -> None:
        """Add a workspace.

        Raises:
            AlreadyExists: the name is taken.
        """
        with self._mutation(f"A workspace named {name!r} already exists.") as conn:
            conn.execute(insert(t.workspaces).values(name=name, created=now_ms()))
            self._audit(conn, actor, "identity.workspace.create", "workspace", name, None, {"name": name})

    def list_workspaces(self) -> list[str]:
        with self.store._read() as conn:
            return list(conn.execute(select(t.workspaces.c.name).order_by(t.workspaces.c.name)).scalars())

    def grant(self, principal_name: str, workspace: str, role: str, actor: AuditActor) -> RoleBinding:
        """Bind a role; granting a role already held changes nothing and records nothing.

        Raises:
            NotFound: no such principal or workspace.
        """
        with self.store._write() as conn:
            principal = _principal(conn, principal_name)
            workspace_id = _workspace_id(conn, workspace)
            key = {"principal_id": principal.principal_id, "workspace_id": workspace_id, "role": role}
            existing = conn.execute(_binding_query(key)).mappings().first()
            if existing is not None:
                return _to_binding(existing)
            conn.execute(insert(t.role_bindings).values(**key, created=now_ms()))
            binding = _to_binding(conn.execute(_binding_query(key)).mappings().one())
            resource = f"{workspace}/{principal_name}/{role}"
            self._audit(conn, actor, "identity.role.grant", "role_binding", resource, None, asdict(binding))
        return binding

    def revoke_role(self, principal_name: str, workspace: str, role: str, actor: AuditActor) -> None:
        """Remove a role binding.

        Raises:
            NotFound: the principal does not hold this role in this workspace.
        """
        with self.store._write() as conn:
            principal = _principal(conn, principal_name)
            workspace_id = _workspace_id(conn, workspace)
            key = {"principal_id": principal.principal_id, "workspace_id": workspace_id, "role": role}
            row = conn.execute(_binding_query(key)).mappings().first()
            if row is None:
                raise NotFound(f"{principal_name} holds no {role!r} role in workspace {workspace!r}.")
            conn.execute(delete(t.role_bindings).where(*_binding_key(key)))
            resource = f"{workspace}/{principal_name}/{role}"
            before = asdict(_to_binding(row))
            self._audit(conn, actor, "identity.role.revoke", "role_binding", resource, before, None)

    def list_bindings(
        self, principal_name: str | None = None, workspace: str | None = None
    ) -> list[RoleBinding]:
        query = _binding_query().order_by(t.workspaces.c.name, t.principals.c.name, t.role_bindings.c.role)
        if principal_name is not None:
            query = query.where(t.principals.c.name == principal_name)
        if workspace is not None:
            query = query.where(t.workspaces.c.name == workspace)
        with self.store._read() as conn:
            return [_to_binding(row) for row in conn.execute(query).mappings()]

    # -- helpers ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _mutation(self, taken: str) -> Iterator[Connection]:
        """A write transaction in which a unique-name race surfaces as ``AlreadyExists``."""
        try:
            with self.store._write() as conn:
                yield conn
        except sa_exc.IntegrityError:
            raise AlreadyExists(taken) from None

    def _audit(
        self,
        conn: Connection,
        actor: AuditActor,
        action: str,
        resource_type: str,
        resource_id: str,
        before: Any,
        after: Any,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        event = AuditEvent(
            actor=actor.name,
            actor_kind=actor.kind,
            source=actor.source,
            workspace=actor.workspace,
            request_id=actor.request_id,
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
            before=before,
            after=after,
            details=details,
        )
        AuditLog(self.store).append(event, conn)


def _principal(conn: Connection, key: str | int) -> Principal:
    column = t.principals.c.id if isinstance(key, int) else t.principals.c.name
    row = conn.execute(select(t.principals).where(column == key)).mappings().first()
    if row is None:
        raise NotFound(f"No user or service account {key!r}; `conveyor users list` shows them.")
    return _to_principal(row, _roles(conn, row["id"]).get(row["id"], {}))


def _roles(conn: Connection, principal_id: int | None) -> dict[int, dict[str, frozenset[str]]]:
    """Principal id -> workspace -> roles, for one principal or all of them."""
    query = select(t.role_bindings.c.principal_id, t.workspaces.c.name, t.role_bindings.c.role).join(
        t.workspaces, t.workspaces.c.id == t.role_bindings.c.workspace_id
    )
    if principal_id is not None:
        query = query.where(t.role_bindings.c.principal_id == principal_id)
    found: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for pid, workspace, role in conn.execute(query):
        found[pid][workspace].add(role)
    return {pid: {ws: frozenset(roles) for ws, roles in by_ws.items()} for pid, by_ws in found.items()}


def _to_principal(row: RowMapping, roles: Mapping[str, frozenset[str]]) -> Principal:
    return Principal(
        principal_id=row["id"],
        name=row["name"],
        kind=PrincipalKind(row["kind"]),
        display_name=row["display_name"],
        disabled=bool(row["disabled"]),
        created=row["created"],
        roles=dict(roles),
    )


def _password_query(principal_id: int) -> Select[Any]:
    return select(t.passwords).where(t.passwords.c.principal_id == principal_id)


def _token_query() -> Select[Any]:
    return select(
        t.api_tokens.c.id,
        t.api_tokens.c.principal_id,
        t.principals.c.name.label("principal"),
        t.api_tokens.c.name,
        t.api_tokens.c.created,
        t.api_tokens.c.expires_at,
        t.api_tokens.c.last_used_at,
        t.api_tokens.c.revoked_at,
    ).join(t.principals, t.principals.c.id == t.api_tokens.c.principal_id)


_CHECK_TOKEN = (
    _token_query()
    .add_columns(
        t.api_tokens.c.token_hash,
        t.principals.c.kind,
        t.principals.c.display_name,
        t.principals.c.disabled,
        t.principals.c.created.label("principal_created"),
    )
    .where(t.api_tokens.c.id == bindparam("token_id"))
)
_ROLES_OF = (
    select(t.workspaces.c.name, t.role_bindings.c.role)
    .join(t.workspaces, t.workspaces.c.id == t.role_bindings.c.workspace_id)
    .where(t.role_bindings.c.principal_id == bindparam("principal_id"))
)


def _token(conn: Connection, token_id: str) -> ApiToken:
    row = conn.execute(_token_query().where(t.api_tokens.c.id == token_id)).mappings().first()
    if row is None:
        raise NotFound(f"No API token {token_id!r}; `conveyor tokens list` shows them.")
    return _to_token(row)


def _to_token(row: RowMapping) -> ApiToken:
    return ApiToken(
        token_id=row["id"],
        principal=row["principal"],
        name=row["name"],
        created=row["created"],
        expires_at=row["expires_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
    )


def _workspace_id(conn: Connection, name: str) -> int:
    found = conn.execute(select(t.workspaces.c.id).where(t.workspaces.c.name == name)).scalar()
    if found is None:
        raise NotFound(f"No workspace {name!r}; create it with `conveyor workspaces create {name}`.")
    return int(found)


def _binding_key(key: Mapping[str, Any]) -> list[ColumnElement[bool]]:
    return [t.role_bindings.c[name] == value for name, value in key.items()]


def _binding_query(key: Mapping[str, Any] | None = None) -> Select[Any]:
    query = (
        select(
            t.role_bindings.c.principal_id,
            t.role_bindings.c.workspace_id,
            t.principals.c.name.label("principal"),
            t.workspaces.c.name.label("workspace"),
            t.role_bindings.c.role,
            t.role_bindings.c.created,
        )
        .join(t.principals, t.principals.c.id == t.role_bindings.c.principal_id)
        .join(t.workspaces, t.workspaces.c.id == t.role_bindings.c.workspace_id)
    )
    return query if key is None else query.where(*_binding_key(key))


def _to_binding(row: RowMapping) -> RoleBinding:
    return RoleBinding(row["principal"], row["workspace"], row["role"], row["created"])
