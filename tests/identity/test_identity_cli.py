"""``conveyor users | tokens | roles | workspaces`` on a database, and ``conveyor server``'s warning."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from conveyor.cli import app
from conveyor.cli.identity import parse_expiry
from conveyor.errors import InvalidInput
from conveyor.identity import IdentityService
from conveyor.store.sql.store import SqlStore
from conveyor.testing.processes import free_port, stop_process
from conveyor.testing.servers import wait_for_health


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'conveyor.db'}"


def _run(db: str, *args: str, input: str | None = None) -> str:
    result = CliRunner().invoke(app, [*args, "--tracking-uri", db], input=input)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_first_admin_token_and_roles(db: str) -> None:
    _run(db, "users", "create", "alice", "--admin")
    _run(db, "users", "create", "trainer", "--service")
    _run(db, "users", "set-password", "alice", "--password-stdin", input="correct horse\n")
    secret = _run(db, "tokens", "create", "alice", "--name", "laptop", "--expires", "30d").strip()
    assert secret.startswith("cvy_")
    _run(db, "workspaces", "create", "churn")
    _run(db, "roles", "grant", "trainer", "contributor", "--workspace", "churn")

    principals = json.loads(_run(db, "users", "list", "--json"))["principals"]
    assert {p["name"]: p["roles"] for p in principals} == {
        "alice": {"default": ["admin"]},
        "trainer": {"churn": ["contributor"]},
    }
    tokens = json.loads(_run(db, "tokens", "list", "--json"))["tokens"]
    assert [(t["principal"], t["name"], t["status"]) for t in tokens] == [("alice", "laptop", "active")]
    assert secret not in json.dumps(tokens)

    store = SqlStore(db).open()
    try:
        assert IdentityService.for_store(store).authenticate(f"Bearer {secret}").name == "alice"
    finally:
        store.close()

    _run(db, "tokens", "revoke", tokens[0]["token_id"])
    _run(db, "roles", "revoke", "trainer", "contributor", "--workspace", "churn")
    _run(db, "users", "disable", "trainer")
    bindings = json.loads(_run(db, "roles", "list", "--json"))["role_bindings"]
    assert [(b["principal"], b["workspace"], b["role"]) for b in bindings] == [("alice", "default", "admin")]
    assert "disabled" in _run(db, "users", "list")
    assert json.loads(_run(db, "tokens", "list", "--json"))["tokens"][0]["status"] == "revoked"


def test_unknown_role_is_a_conveyor_error(db: str) -> None:
    _run(db, "users", "create", "alice")
    result = CliRunner().invoke(app, ["roles", "grant", "alice", "owner", "--tracking-uri", db])
    assert result.exit_code == 1 and "Unknown role 'owner'" in result.output


def test_identity_commands_refuse_a_server_url() -> None:
    result = CliRunner().invoke(app, ["users", "list", "--tracking-uri", "http://127.0.0.1:5000"])
    assert result.exit_code == 1 and "works on the database itself" in result.output


def test_parse_expiry() -> None:
    assert parse_expiry("12h") == 12 * 3_600_000
    assert parse_expiry("30d") == 30 * 86_400_000
    assert parse_expiry("never") is None
    with pytest.raises(InvalidInput, match="12h, 30d, 2w"):
        parse_expiry("soon")


@pytest.mark.slow
def test_server_on_all_interfaces_without_auth_warns(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "conveyor", "server", "--host", "0.0.0.0", "--port", str(port)]
    command += ["--home", str(tmp_path)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        wait_for_health(f"http://127.0.0.1:{port}", process)  # type: ignore[arg-type]
        assert httpx.get(f"http://127.0.0.1:{port}/health").text == "OK"
    finally:
        stop_process(process)  # type: ignore[arg-type]
    stderr = process.stderr.read().decode() if process.stderr else ""
    assert "WARNING: the server listens on 0.0.0.0 without authentication" in stderr
