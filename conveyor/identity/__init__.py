"""Identity and access: who is asking, and may they?

Map of the package:

- principals (users, service accounts) sign in with API tokens or, users, a password;
- role bindings give a principal roles per workspace (:mod:`.permissions`: roles →
  permissions, and :func:`require`);
- :class:`RequestContext` carries the principal, workspace, source address and request
  id of one operation into the service layer and the audit log;
- :class:`IdentityService` manages all of it and authenticates ``Authorization`` headers.

Storage is :mod:`conveyor.store.sql.identity`; the HTTP edge is
:mod:`conveyor.server.auth`. OIDC sign-in would be one more way to turn a request into a
:class:`Principal` beside :meth:`IdentityService.authenticate`; nothing else changes.
"""

from __future__ import annotations

from conveyor.identity.context import RequestContext
from conveyor.identity.permissions import ROLE_PERMISSIONS, Permission, Role, require
from conveyor.identity.service import IdentityService, IssuedToken, check_name
from conveyor.store.actor import DEFAULT_WORKSPACE
from conveyor.store.sql.identity import ApiToken, Principal, PrincipalKind, RoleBinding

__all__ = [
    "DEFAULT_WORKSPACE",
    "ROLE_PERMISSIONS",
    "ApiToken",
    "IdentityService",
    "IssuedToken",
    "Permission",
    "Principal",
    "PrincipalKind",
    "RequestContext",
    "Role",
    "RoleBinding",
    "check_name",
    "require",
]
