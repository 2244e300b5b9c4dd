"""Roles and the permissions they grant, and the one check every entry point calls.

Pure data and a pure function: no I/O, so the service layer, the HTTP middleware and
tests all ask the same question the same way. A principal's roles are loaded with it
(:class:`~conveyor.store.sql.identity.Principal.roles`).

=============  =====================================================
role           permissions
=============  =====================================================
viewer         read
contributor    read, write
approver       read, approve
deployer       read, deploy (moving aliases: release automation)
auditor        read, audit_read
admin          read, write, approve, deploy, admin, audit_read
=============  =====================================================

Approvers do not get ``write``: whoever approves a model should not be the one who
trained it (the four-eyes rule the registry enforces on top of this).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

from conveyor.errors import InvalidInput, PermissionDenied
from conveyor.store.sql.identity import Principal


class Permission(StrEnum):
    READ = "read"
    WRITE = "write"
    APPROVE = "approve"
    DEPLOY = "deploy"
    ADMIN = "admin"
    AUDIT_READ = "audit_read"


class Role(StrEnum):
    VIEWER = "viewer"
    CONTRIBUTOR = "contributor"
    APPROVER = "approver"
    DEPLOYER = "deployer"
    ADMIN = "admin"
    AUDITOR = "auditor"


P = Permission
#: Role -> the permissions it grants, in any workspace where it is held.
ROLE_PERMISSIONS: Mapping[Role, frozenset[Permission]] = MappingProxyType(
    {
        Role.VIEWER: frozenset({P.READ}),
        Role.CONTRIBUTOR: frozenset({P.READ, P.WRITE}),
        Role.APPROVER: frozenset({P.READ, P.APPROVE}),
        Role.DEPLOYER: frozenset({P.READ, P.DEPLOY}),
        Role.AUDITOR: frozenset({P.READ, P.AUDIT_READ}),
        Role.ADMIN: frozenset(Permission),
    }
)


_ROLE_NAMES = frozenset(role.value for role in Role)


def check_role(name: str) -> Role:
    """The role of this name.

    Raises:
        InvalidInput: not a role; the message lists the roles.
    """
    try:
        return Role(name)
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise InvalidInput(f"Unknown role {name!r}: one of {known}") from None


def permissions_of(principal: Principal, workspace: str) -> frozenset[Permission]:
    """Everything the principal's roles in ``workspace`` grant (nothing when disabled)."""
    if principal.disabled:
        return frozenset()
    held = principal.roles.get(workspace, frozenset())
    return frozenset().union(*(ROLE_PERMISSIONS[Role(r)] for r in held if r in _ROLE_NAMES))


def roles_granting(permission: Permission) -> list[Role]:
    return [role for role, granted in ROLE_PERMISSIONS.items() if permission in granted]


def require(principal: Principal, permission: Permission | tuple[Permission, ...], workspace: str) -> None:
    """Return if the principal may do what needs ``permission`` (or one of several) in ``workspace``.

    Raises:
        PermissionDenied: naming the missing permission, the roles that grant it, the
            roles held, and the command an admin runs to grant one.
    """
    wanted = permission if isinstance(permission, tuple) else (permission,)
    if permissions_of(principal, workspace).intersection(wanted):
        return
    names = " or ".join(f"'{p}'" for p in wanted)
    roles = [role for p in wanted for role in roles_granting(p)]
    granting = ", ".join(dict.fromkeys(r.value for r in roles))
    held = ", ".join(sorted(principal.roles.get(workspace, ()))) or "no role"
    noun = "permission" if len(wanted) == 1 else "permissions"
    raise PermissionDenied(
        f"{principal.name} lacks the {names} {noun} in workspace '{workspace}' "
        f"(it holds {held} there); the roles that grant it are {granting}. An admin can run "
        f"`conveyor roles grant {principal.name} {roles[0].value} --workspace {workspace}`."
    )
