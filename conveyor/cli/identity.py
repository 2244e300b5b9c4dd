"""``conveyor users | tokens | roles | workspaces``: identity and access, on the database itself.

Like ``conveyor db``, these commands take the database URL (a server URL is refused): whoever
can reach the database can change it anyway, so they need no sign-in, and they are how the
first admin comes to exist (``conveyor users create alice --admin``). Each change is
recorded in the audit log as ``local:<os user>``. Secrets are printed once: a new token
on creation; passwords are read from a hidden prompt or stdin, never from a flag.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer

from conveyor.cli import _output as out
from conveyor.cli._common import JsonFlag, TrackingUri, database_url
from conveyor.errors import InvalidInput

if TYPE_CHECKING:
    from conveyor.identity import IdentityService, Principal, RequestContext

users = typer.Typer(help="Users and service accounts.", no_args_is_help=True)
tokens = typer.Typer(help="API tokens (hashed at rest; shown once, at creation).", no_args_is_help=True)
roles = typer.Typer(help="Roles per workspace: viewer, contributor, approver, deployer, admin, auditor.")
workspaces = typer.Typer(help="Workspaces, the unit that roles are granted in.", no_args_is_help=True)
roles.info.no_args_is_help = True

_DURATION = re.compile(r"(?P<count>[1-9][0-9]*)(?P<unit>[hdw])")
_UNIT_MS = {"h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000}

Workspace = Annotated[str, typer.Option("--workspace", "-w", help="Workspace of the role.")]


def register(app: typer.Typer) -> None:
    """Add the four command groups to the root command."""
    app.add_typer(users, name="users")
    app.add_typer(tokens, name="tokens")
    app.add_typer(roles, name="roles")
    app.add_typer(workspaces, name="workspaces")


@contextlib.contextmanager
def _service(tracking_uri: str | None, command: str) -> Iterator[IdentityService]:
    from conveyor.identity import IdentityService
    from conveyor.store.sql.store import SqlStore

    settings, url = database_url(tracking_uri, command)
    store = SqlStore(url).open(upgrade=settings.auto_upgrade)
    try:
        yield IdentityService.for_store(store)
    finally:
        store.close()


def _local() -> RequestContext:
    from conveyor.identity import RequestContext

    return RequestContext.local()


def parse_expiry(text: str) -> int | None:
    """``30d``, ``12h``, ``2w`` as milliseconds; ``never`` as None."""
    if text.strip().lower() == "never":
        return None
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise InvalidInput(f"--expires {text!r}: use a count and a unit (12h, 30d, 2w) or 'never'")
    return int(match["count"]) * _UNIT_MS[match["unit"]]


def _principal_row(principal: Principal) -> list[object]:
    held = "; ".join(f"{ws}: {', '.join(sorted(r))}" for ws, r in sorted(principal.roles.items()))
    state = "disabled" if principal.disabled else "active"
    return [
        principal.name,
        str(principal.kind),
        principal.display_name,
        state,
        held,
        out.when(principal.created),
    ]


# -- users -------------------------------------------------------------------------------


@users.command("create")
def create_user(
    name: str,
    display_name: Annotated[str | None, typer.Option(help="Full name, for listings.")] = None,
    service: Annotated[bool, typer.Option("--service", help="A service account (tokens only).")] = False,
    admin: Annotated[
        bool, typer.Option("--admin", help="Also grant admin in the default workspace.")
    ] = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Create a user (or, with --service, a service account)."""
    from conveyor.identity import DEFAULT_WORKSPACE, Role

    with _service(tracking_uri, "users create") as identity:
        ctx = _local()
        if service:
            identity.create_service_account(name, ctx, display_name=display_name)
        else:
            identity.create_user(name, ctx, display_name=display_name)
        if admin:
            identity.grant(name, Role.ADMIN, ctx, DEFAULT_WORKSPACE)
    kind = "Service account" if service else "User"
    typer.echo(f"{kind} {name} created{' with admin in workspace default' if admin else ''}.")


@users.command("list")
def list_users(as_json: JsonFlag = False, tracking_uri: TrackingUri = None) -> None:
    """Users and service accounts with their roles."""
    with _service(tracking_uri, "users list") as identity:
        found = identity.list_principals()
    if as_json:
        out.emit_json({"principals": [p.to_json() for p in found]})
        return
    columns = ["Name", "Kind", "Display name", "State", "Roles", "Created"]
    out.table(None, columns, [_principal_row(p) for p in found])


@users.command("disable")
def disable_user(name: str, tracking_uri: TrackingUri = None) -> None:
    """Disable a user or service account: its tokens and password stop working at once."""
    with _service(tracking_uri, "users disable") as identity:
        identity.set_disabled(name, True, _local())
    typer.echo(f"{name} disabled.")


@users.command("enable")
def enable_user(name: str, tracking_uri: TrackingUri = None) -> None:
    """Enable a disabled user or service account again."""
    with _service(tracking_uri, "users enable") as identity:
        identity.set_disabled(name, False, _local())
    typer.echo(f"{name} enabled.")


@users.command("set-password")
def set_password(
    name: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin (for scripts).")
    ] = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Set a user's password for basic auth (MLFLOW_TRACKING_USERNAME/PASSWORD)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    with _service(tracking_uri, "users set-password") as identity:
        identity.set_password(name, password, _local())
    typer.echo(f"Password of {name} set.")


# -- tokens ------------------------------------------------------------------------------


@tokens.command("create")
def create_token(
    principal: str,
    name: Annotated[
        str, typer.Option(help="What the token is for (ci, laptop), to tell tokens apart.")
    ] = "default",
    expires: Annotated[str, typer.Option(help="Lifetime: 12h, 30d, 2w, or never.")] = "90d",
    as_json: JsonFlag = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Issue an API token and print it: it is shown this once and cannot be recovered."""
    expires_in = parse_expiry(expires)
    with _service(tracking_uri, "tokens create") as identity:
        issued = identity.issue_token(principal, _local(), name=name, expires_in_ms=expires_in)
    if as_json:
        out.emit_json({"token": asdict(issued.token), "secret": issued.secret})
        return
    until = out.when(issued.token.expires_at) if issued.token.expires_at else "never"
    typer.echo(issued.secret)
    typer.echo(
        f"Token {issued.token.token_id} for {principal} (expires {until}). Copy it now: it is not "
        "shown again. Clients: CONVEYOR_TRACKING_TOKEN or MLFLOW_TRACKING_TOKEN.",
        err=True,
    )


@tokens.command("list")
def list_tokens(
    principal: Annotated[str | None, typer.Option(help="Only this principal's tokens.")] = None,
    as_json: JsonFlag = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """API tokens with their state (never their secrets)."""
    from conveyor.store.base import now_ms

    with _service(tracking_uri, "tokens list") as identity:
        found = identity.list_tokens(principal)
    now = now_ms()
    if as_json:
        out.emit_json({"tokens": [{**asdict(t), "status": t.status(now)} for t in found]})
        return
    rows = [
        [t.token_id, t.principal, t.name, t.status(now), out.when(t.expires_at), out.when(t.last_used_at)]
        for t in found
    ]
    out.table(None, ["ID", "Principal", "Name", "Status", "Expires", "Last used"], rows)


@tokens.command("revoke")
def revoke_token(token_id: str, tracking_uri: TrackingUri = None) -> None:
    """Revoke an API token; requests with it are refused from now on."""
    with _service(tracking_uri, "tokens revoke") as identity:
        identity.revoke_token(token_id, _local())
    typer.echo(f"Token {token_id} revoked.")


# -- roles and workspaces ----------------------------------------------------------------


@roles.command("grant")
def grant(
    principal: str, role: str, workspace: Workspace = "default", tracking_uri: TrackingUri = None
) -> None:
    """Grant a role to a user or service account in a workspace."""
    with _service(tracking_uri, "roles grant") as identity:
        identity.grant(principal, role, _local(), workspace)
    typer.echo(f"{principal} is {role} in workspace {workspace}.")


@roles.command("revoke")
def revoke(
    principal: str, role: str, workspace: Workspace = "default", tracking_uri: TrackingUri = None
) -> None:
    """Revoke a role from a user or service account in a workspace."""
    with _service(tracking_uri, "roles revoke") as identity:
        identity.revoke(principal, role, _local(), workspace)
    typer.echo(f"{principal} is no longer {role} in workspace {workspace}.")


@roles.command("list")
def list_roles(
    principal: Annotated[str | None, typer.Option(help="Only this principal's roles.")] = None,
    workspace: Annotated[str | None, typer.Option(help="Only roles in this workspace.")] = None,
    as_json: JsonFlag = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Role bindings: who holds which role where."""
    with _service(tracking_uri, "roles list") as identity:
        found = identity.list_bindings(principal, workspace)
    if as_json:
        out.emit_json({"role_bindings": [asdict(b) for b in found]})
        return
    rows = [[b.workspace, b.principal, b.role, out.when(b.created)] for b in found]
    out.table(None, ["Workspace", "Principal", "Role", "Granted"], rows)


@workspaces.command("create")
def create_workspace(name: str, tracking_uri: TrackingUri = None) -> None:
    """Create a workspace to grant roles in."""
    with _service(tracking_uri, "workspaces create") as identity:
        identity.create_workspace(name, _local())
    typer.echo(f"Workspace {name} created.")


@workspaces.command("list")
def list_workspaces(as_json: JsonFlag = False, tracking_uri: TrackingUri = None) -> None:
    """Workspaces."""
    with _service(tracking_uri, "workspaces list") as identity:
        found = identity.list_workspaces()
    if as_json:
        out.emit_json({"workspaces": found})
        return
    for name in found:
        typer.echo(name)
