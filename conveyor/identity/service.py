"""The identity service: accounts, credentials, role bindings, and authenticating requests.

Every mutation takes a :class:`RequestContext` and checks it here, not only at the HTTP
edge: a remote caller needs the ``admin`` permission in the context's workspace, and a
local command (direct database access) is trusted. The store appends the audit record in
the same transaction as the change.

Authentication accepts what MLflow clients send, so ``MLFLOW_TRACKING_TOKEN`` and
``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` work unchanged:

* ``Authorization: Bearer cvy_<id>_<secret>``: an API token;
* ``Authorization: Basic base64(user:password)``: a password, or an API token given as
  the password (for clients that only do basic auth; the user must then be the token's
  owner, or ``token``).

Failures all raise :class:`~conveyor.errors.Unauthenticated`; what they say never tells
a guesser whether a user exists.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass

from conveyor.errors import InvalidInput, Unauthenticated
from conveyor.identity import credentials
from conveyor.identity._recent import RecentTokens
from conveyor.identity.context import RequestContext
from conveyor.identity.permissions import Permission, Role, check_role, permissions_of, require
from conveyor.store.actor import DEFAULT_WORKSPACE
from conveyor.store.base import now_ms
from conveyor.store.sql.identity import (
    TOUCH_INTERVAL_MS,
    ApiToken,
    Principal,
    PrincipalKind,
    RoleBinding,
    SqlIdentityStore,
)
from conveyor.store.sql.store import SqlStore

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,249}")
#: Basic-auth user names that mean "the password is a token, whoever owns it".
_TOKEN_USERS = ("", "token")
#: How many verified passwords are remembered (as digests), so that an MLflow client using
#: basic auth does not pay an scrypt run (~50 ms) on every request.
_VERIFIED_CACHE_SIZE = 1024


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A new token: ``secret`` is the whole ``cvy_…`` string, shown once and never stored."""

    token: ApiToken
    secret: str


class IdentityService:
    """Users, service accounts, tokens, passwords and roles over one SQL store."""

    def __init__(self, store: SqlIdentityStore) -> None:
        self.store = store
        self._verified: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._recent = RecentTokens()

    @classmethod
    def for_store(cls, store: SqlStore) -> IdentityService:
        return cls(SqlIdentityStore(store))

    # -- accounts --------------------------------------------------------------------------

    def create_user(
        self, name: str, ctx: RequestContext, *, display_name: str | None = None, password: str | None = None
    ) -> Principal:
        """Add a user, with a password for basic auth when one is given."""
        self._require_admin(ctx)
        principal = self.store.create_principal(
            check_name(name), PrincipalKind.USER, display_name, ctx.audit_actor()
        )
        if password is not None:
            self.set_password(name, password, ctx)
        return principal

    def create_service_account(
        self, name: str, ctx: RequestContext, *, display_name: str | None = None
    ) -> Principal:
        """Add a service account: a principal for pipelines and CI, signing in with tokens only."""
        self._require_admin(ctx)
        return self.store.create_principal(
            check_name(name), PrincipalKind.SERVICE, display_name, ctx.audit_actor()
        )

    def set_password(self, name: str, password: str, ctx: RequestContext) -> None:
        """Set a user's basic-auth password.

        Raises:
            InvalidInput: a service account (tokens only), or a password under 8 characters.
        """
        self._require_admin(ctx)
        if self.store.get_principal(name).kind != PrincipalKind.USER:
            raise InvalidInput(f"{name} is a service account: it signs in with API tokens, not a password.")
        if len(password) < 8:
            raise InvalidInput("A password needs at least 8 characters.")
        self.store.set_password(name, credentials.hash_password(password), ctx.audit_actor())

    def set_disabled(self, name: str, disabled: bool, ctx: RequestContext) -> Principal:
        """Disable a principal (or enable it again); its credentials stop working at once."""
        self._require_admin(ctx)
        self._recent.clear()
        return self.store.set_disabled(name, disabled, ctx.audit_actor())

    def get_principal(self, name: str) -> Principal:
        return self.store.get_principal(name)

    def list_principals(self) -> list[Principal]:
        return self.store.list_principals()

    # -- tokens ----------------------------------------------------------------------------

    def issue_token(
        self, principal: str, ctx: RequestContext, *, name: str = "default", expires_in_ms: int | None = None
    ) -> IssuedToken:
        """A new API token for ``principal``, expiring after ``expires_in_ms`` (None: never).

        The returned secret is the only copy: the store keeps its SHA-256 alone.
        """
        self._require_admin(ctx)
        if expires_in_ms is not None and expires_in_ms <= 0:
            raise InvalidInput(f"A token must expire in the future, got {expires_in_ms} ms")
        token_id, secret, digest = credentials.new_token()
        expires_at = None if expires_in_ms is None else now_ms() + expires_in_ms
        token = self.store.create_token(principal, token_id, name, digest, expires_at, ctx.audit_actor())
        return IssuedToken(token, secret)

    def list_tokens(self, principal: str | None = None) -> list[ApiToken]:
        return self.store.list_tokens(principal)

    def revoke_token(self, token_id: str, ctx: RequestContext) -> ApiToken:
        self._require_admin(ctx)
        self._recent.clear()
        return self.store.revoke_token(token_id, ctx.audit_actor())

    # -- workspaces and roles --------------------------------------------------------------

    def create_workspace(self, name: str, ctx: RequestContext) -> None:
        self._require_admin(ctx)
        self.store.create_workspace(check_name(name), ctx.audit_actor())

    def list_workspaces(self) -> list[str]:
        return self.store.list_workspaces()

    def grant(
        self, principal: str, role: str | Role, ctx: RequestContext, workspace: str = DEFAULT_WORKSPACE
    ) -> RoleBinding:
        """Give ``principal`` the role in ``workspace`` (a no-op if it holds it already)."""
        self._require_admin(ctx, workspace)
        self._recent.clear()
        return self.store.grant(principal, workspace, check_role(role).value, ctx.audit_actor())

    def revoke(
        self, principal: str, role: str | Role, ctx: RequestContext, workspace: str = DEFAULT_WORKSPACE
    ) -> None:
        self._require_admin(ctx, workspace)
        self._recent.clear()
        self.store.revoke_role(principal, workspace, check_role(role).value, ctx.audit_actor())

    def list_bindings(self, principal: str | None = None, workspace: str | None = None) -> list[RoleBinding]:
        return self.store.list_bindings(principal, workspace)

    # -- authentication --------------------------------------------------------------------

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal an ``Authorization`` header value proves, with its roles.

        Raises:
            Unauthenticated: no header, an unknown scheme, or credentials that do not match
                an active token or password of an enabled principal.
        """
        if not authorization:
            raise Unauthenticated(
                "Authentication required: send 'Authorization: Bearer <token>' "
                "(MLFLOW_TRACKING_TOKEN or CONVEYOR_TRACKING_TOKEN) or basic auth."
            )
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer":
            return self._by_token(value.strip())
        if scheme.lower() == "basic":
            user, password = _basic_credentials(value.strip())
            if credentials.looks_like_token(password):
                return self._token_as_password(user, password)
            return self._by_password(user, password)
        raise Unauthenticated(f"Unsupported authorization scheme {scheme!r}: use Bearer or Basic.")

    def recently_verified(self, authorization: str | None) -> Principal | None:
        """The principal of a bearer token verified in the last seconds, without the database.

        For the HTTP edge, which calls it on the event loop before falling back to
        :meth:`authenticate` in a thread; see :mod:`conveyor.identity._recent`.
        """
        if not authorization:
            return None
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            return None
        return self._recent.get(value.strip(), now_ms())

    def _by_token(self, token: str) -> Principal:
        parsed = credentials.parse_token(token)
        found = None if parsed is None else self.store.token_for_check(parsed[0])
        if parsed is None or found is None or not credentials.secret_matches(parsed[1], found[1]):
            raise Unauthenticated("Invalid API token.")
        record, _, principal = found
        now = now_ms()
        status = record.status(now)
        if status != "active":
            raise Unauthenticated(f"API token {record.token_id} ({record.name}) is {status}.")
        principal = _enabled(principal)
        if record.last_used_at is None or now - record.last_used_at >= TOUCH_INTERVAL_MS:
            self.store.touch_token(record.token_id, now)
        self._recent.put(token, principal, record.expires_at)
        return principal

    def _token_as_password(self, user: str, token: str) -> Principal:
        principal = self._by_token(token)
        if user not in (*_TOKEN_USERS, principal.name):
            raise Unauthenticated("Invalid API token.")
        return principal

    def _by_password(self, user: str, password: str) -> Principal:
        found = self.store.password_of(user)
        stored = credentials.DUMMY_HASH if found is None else found[1]
        remembered = hashlib.sha256(f"{stored.salt}:{stored.digest}:{user}:{password}".encode()).hexdigest()
        matches = self._remembered(remembered) or credentials.password_matches(password, stored)
        if found is None or not matches:
            raise Unauthenticated("Invalid user name or password.")
        self._remember(remembered)
        return _enabled(found[0])

    def _remembered(self, key: str) -> bool:
        with self._lock:
            if key in self._verified:
                self._verified.move_to_end(key)
                return True
            return False

    def _remember(self, key: str) -> None:
        """Keyed on the stored hash too, so a new password forgets the old one at once."""
        with self._lock:
            self._verified[key] = None
            while len(self._verified) > _VERIFIED_CACHE_SIZE:
                self._verified.popitem(last=False)

    # -- checks ----------------------------------------------------------------------------

    def _require_admin(self, ctx: RequestContext, workspace: str = DEFAULT_WORKSPACE) -> None:
        """Admins of ``default`` administer the server; a workspace's admins, its roles only."""
        if ctx.is_local:
            return
        if ctx.principal is None:
            raise Unauthenticated("Managing users, tokens and roles needs an authenticated admin.")
        if Permission.ADMIN in permissions_of(ctx.principal, DEFAULT_WORKSPACE):
            return
        require(ctx.principal, Permission.ADMIN, workspace)


def check_name(name: str) -> str:
    """``name`` if it may name a principal or a workspace; else InvalidInput saying the rule."""
    if not _NAME.fullmatch(name):
        raise InvalidInput(
            f"Invalid name {name!r}: letters, digits and _ . @ -, starting with a letter or digit, "
            "at most 250 characters."
        )
    return name


def _basic_credentials(value: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthenticated("Malformed basic credentials: expected base64 of 'user:password'.") from None
    user, colon, password = decoded.partition(":")
    if not colon:
        raise Unauthenticated("Malformed basic credentials: expected base64 of 'user:password'.")
    return user, password


def _enabled(principal: Principal) -> Principal:
    if principal.disabled:
        raise Unauthenticated(f"{principal.name} is disabled.")
    return principal
