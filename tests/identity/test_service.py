"""Accounts, tokens, passwords and roles through the identity service, on SQLite."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from sqlalchemy import select

from conveyor.errors import AlreadyExists, InvalidInput, NotFound, PermissionDenied, Unauthenticated
from conveyor.identity import IdentityService, RequestContext, Role
from conveyor.store.base import now_ms
from conveyor.store.sql import schema_identity as t
from conveyor.store.sql.audit import AuditLog
from conveyor.store.sql.store import SqlStore


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_token_authenticates_and_is_hashed_at_rest(
    identity: IdentityService, local: RequestContext, sql_store: SqlStore, tmp_path: Path
) -> None:
    identity.create_user("alice", local)
    identity.grant("alice", Role.CONTRIBUTOR, local)
    issued = identity.issue_token("alice", local, name="ci", expires_in_ms=3_600_000)
    secret = issued.secret.split("_", 2)[2]
    assert issued.secret.startswith(f"cvy_{issued.token.token_id}_")

    principal = identity.authenticate(f"Bearer {issued.secret}")
    assert (principal.name, principal.roles) == ("alice", {"default": frozenset({"contributor"})})

    with sql_store._read() as conn:
        stored = conn.execute(select(t.api_tokens)).mappings().one()
    assert secret not in str(dict(stored)) and len(stored["token_hash"]) == 64
    sql_store.close()  # checkpoint the WAL into the file, then look at every byte
    for path in tmp_path.glob("conveyor.db*"):
        assert secret.encode() not in path.read_bytes()


def test_last_used_is_written_at_most_once_a_minute(identity: IdentityService, local: RequestContext) -> None:
    identity.create_user("alice", local)
    issued = identity.issue_token("alice", local)
    identity.authenticate(f"Bearer {issued.secret}")
    first = identity.list_tokens("alice")[0].last_used_at
    identity.authenticate(f"Bearer {issued.secret}")
    assert first is not None and identity.list_tokens("alice")[0].last_used_at == first


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer nonsense",
        "Bearer cvy_" + "0" * 32 + "_secret",
        "Digest abc",
        "Basic !!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
    ],
)
def test_bad_credentials_are_refused(identity: IdentityService, header: str | None) -> None:
    with pytest.raises(Unauthenticated):
        identity.authenticate(header)


def test_wrong_secret_expired_and_revoked_tokens_are_refused(
    identity: IdentityService, local: RequestContext
) -> None:
    identity.create_user("alice", local)
    issued = identity.issue_token("alice", local)
    with pytest.raises(Unauthenticated, match="Invalid API token"):
        identity.authenticate(f"Bearer {issued.secret[:-2]}xx")

    expired = identity.store.create_token(
        "alice", "e" * 32, "old", issued.token.token_id, now_ms() - 1, local.audit_actor()
    )
    with pytest.raises(Unauthenticated):
        identity.authenticate(f"Bearer cvy_{expired.token_id}_whatever")

    identity.revoke_token(issued.token.token_id, local)
    with pytest.raises(Unauthenticated, match="revoked"):
        identity.authenticate(f"Bearer {issued.secret}")


def test_an_expired_token_with_the_right_secret_says_expired(
    identity: IdentityService, local: RequestContext
) -> None:
    from conveyor.identity import credentials

    identity.create_user("alice", local)
    token_id, token, digest = credentials.new_token()
    identity.store.create_token("alice", token_id, "old", digest, now_ms() - 1, local.audit_actor())
    with pytest.raises(Unauthenticated, match="expired"):
        identity.authenticate(f"Bearer {token}")


def test_passwords_and_tokens_over_basic_auth(identity: IdentityService, local: RequestContext) -> None:
    identity.create_user("alice", local, password="correct horse")
    assert identity.authenticate(_basic("alice", "correct horse")).name == "alice"
    assert identity.authenticate(_basic("alice", "correct horse")).name == "alice"  # remembered
    issued = identity.issue_token("alice", local)
    assert identity.authenticate(_basic("token", issued.secret)).name == "alice"
    assert identity.authenticate(_basic("alice", issued.secret)).name == "alice"
    with pytest.raises(Unauthenticated):
        identity.authenticate(_basic("mallory", issued.secret))


def test_wrong_password_and_unknown_user_get_the_same_answer(
    identity: IdentityService, local: RequestContext
) -> None:
    identity.create_user("alice", local, password="correct horse")
    messages = set()
    for user, password in [("alice", "wrong horse"), ("nobody", "correct horse"), ("alice", "")]:
        with pytest.raises(Unauthenticated) as caught:
            identity.authenticate(_basic(user, password))
        messages.add(str(caught.value))
    assert messages == {"Invalid user name or password."}


def test_a_new_password_replaces_the_old_one(identity: IdentityService, local: RequestContext) -> None:
    identity.create_user("alice", local, password="first password")
    identity.authenticate(_basic("alice", "first password"))
    identity.set_password("alice", "second password", local)
    with pytest.raises(Unauthenticated):
        identity.authenticate(_basic("alice", "first password"))
    assert identity.authenticate(_basic("alice", "second password")).name == "alice"


def test_disabled_principals_cannot_sign_in(identity: IdentityService, local: RequestContext) -> None:
    identity.create_user("alice", local, password="correct horse")
    issued = identity.issue_token("alice", local)
    identity.set_disabled("alice", True, local)
    for header in (f"Bearer {issued.secret}", _basic("alice", "correct horse")):
        with pytest.raises(Unauthenticated, match="disabled"):
            identity.authenticate(header)


def test_service_accounts_have_no_password(identity: IdentityService, local: RequestContext) -> None:
    identity.create_service_account("trainer", local)
    with pytest.raises(InvalidInput, match="service account"):
        identity.set_password("trainer", "long enough", local)
    with pytest.raises(InvalidInput, match="8 characters"):
        identity.create_user("alice", local, password="short")


def test_names_are_unique_and_checked(identity: IdentityService, local: RequestContext) -> None:
    identity.create_user("alice", local)
    with pytest.raises(AlreadyExists):
        identity.create_service_account("alice", local)
    with pytest.raises(InvalidInput):
        identity.create_user("bad name", local)
    with pytest.raises(NotFound, match="conveyor workspaces create"):
        identity.grant("alice", Role.VIEWER, local, "nowhere")


def test_roles_are_granted_and_revoked_per_workspace(
    identity: IdentityService, local: RequestContext
) -> None:
    identity.create_user("alice", local)
    identity.create_workspace("churn", local)
    identity.grant("alice", "viewer", local)
    identity.grant("alice", "approver", local, "churn")
    identity.grant("alice", "approver", local, "churn")  # again: a no-op
    assert identity.get_principal("alice").roles == {
        "default": frozenset({"viewer"}),
        "churn": frozenset({"approver"}),
    }
    identity.revoke("alice", "viewer", local)
    assert [(b.workspace, b.role) for b in identity.list_bindings("alice")] == [("churn", "approver")]
    with pytest.raises(NotFound):
        identity.revoke("alice", "viewer", local)


def test_remote_callers_need_admin(identity: IdentityService, local: RequestContext) -> None:
    identity.create_user("alice", local)
    identity.create_user("bob", local)
    identity.grant("alice", Role.ADMIN, local)
    identity.grant("bob", Role.CONTRIBUTOR, local)
    as_bob = RequestContext(identity.get_principal("bob"), source="10.0.0.2")
    with pytest.raises(PermissionDenied, match="'admin' permission"):
        identity.grant("bob", Role.ADMIN, as_bob)
    with pytest.raises(Unauthenticated):
        identity.create_user("eve", RequestContext(None, source="10.0.0.3"))
    as_alice = RequestContext(identity.get_principal("alice"), source="10.0.0.1", request_id="r1")
    identity.create_user("carol", as_alice)
    record = AuditLog(identity.store.store).read(newest_first=True, limit=1)[0]
    assert (record.actor, record.actor_kind, record.source, record.request_id, record.action) == (
        "alice",
        "user",
        "10.0.0.1",
        "r1",
        "identity.user.create",
    )


def test_every_mutation_is_audited_and_holds_no_secret(
    identity: IdentityService, local: RequestContext
) -> None:
    identity.create_user("alice", local, password="correct horse")
    issued = identity.issue_token("alice", local)
    identity.grant("alice", Role.VIEWER, local)
    identity.revoke("alice", Role.VIEWER, local)
    identity.revoke_token(issued.token.token_id, local)
    identity.set_disabled("alice", True, local)
    log = AuditLog(identity.store.store)
    records = log.read()
    assert [r.action for r in records] == [
        "identity.user.create",
        "identity.password.set",
        "identity.token.create",
        "identity.role.grant",
        "identity.role.revoke",
        "identity.token.revoke",
        "identity.principal.disable",
    ]
    assert {r.actor_kind for r in records} == {"system"}
    assert all(r.actor.startswith("local:") for r in records)
    assert log.verify().ok
    assert issued.secret not in str([r.to_json() for r in records])


def test_a_refused_mutation_leaves_no_audit_record(identity: IdentityService, local: RequestContext) -> None:
    identity.create_user("alice", local)
    with pytest.raises(AlreadyExists):
        identity.create_user("alice", local)
    assert len(AuditLog(identity.store.store).read()) == 1


def test_recent_verifications_skip_the_database_but_never_outlive_a_revocation_here(
    identity: IdentityService, local: RequestContext, sql_store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Revoking through this service applies at once; through another process, within the TTL."""
    identity.create_user("ana", local)
    identity.grant("ana", Role.CONTRIBUTOR, local)
    header = f"Bearer {identity.issue_token('ana', local).secret}"
    assert identity.recently_verified(header) is None
    assert identity.authenticate(header).name == "ana"
    assert identity.recently_verified(header).name == "ana"
    assert identity.recently_verified("Basic YW5hOng=") is None

    other = IdentityService.for_store(sql_store)  # another worker, or the CLI on the database
    [token] = other.list_tokens("ana")
    other.revoke_token(token.token_id, local)
    assert identity.recently_verified(header).name == "ana"  # within the TTL
    clock = iter([1e12])
    monkeypatch.setattr("conveyor.identity._recent.time.monotonic", lambda: next(clock))
    assert identity.recently_verified(header) is None  # past it: asks the database again
    with pytest.raises(Unauthenticated, match="revoked"):
        identity.authenticate(header)


def test_revoking_through_the_service_forgets_recent_verifications(
    identity: IdentityService, local: RequestContext
) -> None:
    identity.create_user("bo", local)
    header = f"Bearer {identity.issue_token('bo', local).secret}"
    identity.authenticate(header)
    [token] = identity.list_tokens("bo")
    identity.revoke_token(token.token_id, local)
    assert identity.recently_verified(header) is None
