"""The role table and the permission check, without any I/O."""

from __future__ import annotations

import pytest

from conveyor.errors import InvalidInput, PermissionDenied
from conveyor.identity import ROLE_PERMISSIONS, Permission, Principal, PrincipalKind, Role, require
from conveyor.identity.permissions import check_role, permissions_of


def _principal(roles: dict[str, frozenset[str]], *, disabled: bool = False) -> Principal:
    return Principal(1, "bob", PrincipalKind.USER, None, disabled, 0, roles)


def test_role_table() -> None:
    table = {role.value: sorted(p.value for p in granted) for role, granted in ROLE_PERMISSIONS.items()}
    assert table == {
        "viewer": ["read"],
        "contributor": ["read", "write"],
        "approver": ["approve", "read"],
        "deployer": ["deploy", "read"],
        "auditor": ["audit_read", "read"],
        "admin": ["admin", "approve", "audit_read", "deploy", "read", "write"],
    }


def test_roles_count_in_their_workspace_only() -> None:
    bob = _principal({"default": frozenset({"viewer"}), "churn": frozenset({"contributor"})})
    assert permissions_of(bob, "default") == {Permission.READ}
    assert permissions_of(bob, "churn") == {Permission.READ, Permission.WRITE}
    assert permissions_of(bob, "other") == frozenset()
    require(bob, Permission.WRITE, "churn")


def test_a_disabled_principal_may_do_nothing() -> None:
    assert (
        permissions_of(_principal({"default": frozenset({"admin"})}, disabled=True), "default") == frozenset()
    )


def test_permission_denied_names_the_permission_and_the_roles() -> None:
    bob = _principal({"default": frozenset({"viewer"})})
    with pytest.raises(PermissionDenied) as caught:
        require(bob, Permission.WRITE, "default")
    message = str(caught.value)
    assert "lacks the 'write' permission in workspace 'default'" in message
    assert "holds viewer" in message
    assert "contributor, admin" in message
    assert "conveyor roles grant bob contributor --workspace default" in message
    assert caught.value.http_status == 403 and caught.value.error_code == "PERMISSION_DENIED"


def test_unknown_role_lists_the_roles() -> None:
    assert check_role("admin") is Role.ADMIN
    with pytest.raises(InvalidInput, match="viewer, contributor, approver, deployer, admin, auditor"):
        check_role("owner")
