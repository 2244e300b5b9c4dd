"""``conveyor audit`` against a scratch ``CONVEYOR_HOME`` whose log is filled through the store.

Tampering edits the SQLite file through a raw ``sqlite3`` connection after dropping the
append-only triggers, as someone with the file could.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from conveyor.cli import app
from conveyor.config import Settings
from conveyor.store.sql.audit import AuditEvent, AuditLog, AuditRecord
from conveyor.store.sql.store import SqlStore


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Conveyor home, and no settings leaking in from the developer's shell."""
    for name in ("CONVEYOR_TRACKING_URI", "CONVEYOR_DATABASE_URL", "CONVEYOR_ARTIFACT_ROOT"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "home"
    monkeypatch.setenv("CONVEYOR_HOME", str(path))
    path.mkdir()
    return path


@pytest.fixture
def records(home: Path) -> Iterator[list[AuditRecord]]:
    """Five records: runs r0…r4, the odd ones by a service account."""
    store = SqlStore(Settings().resolved_database_url()).open()
    events = [
        AuditEvent(
            actor="ci-bot" if n % 2 else "ana",
            actor_kind="service" if n % 2 else "user",
            action="run.create",
            resource_type="run",
            resource_id=f"r{n}",
            workspace="churn",
            source="10.0.0.7",
        )
        for n in range(5)
    ]
    yield AuditLog(store).append_many(events)
    store.close()


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, ["audit", *args])


def ok(*args: str) -> Result:
    result = invoke(*args)
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
    return result


def tamper(home: Path, *statements: str) -> None:
    with sqlite3.connect(Settings().resolved_database_url().removeprefix("sqlite:///")) as conn:
        conn.execute("DROP TRIGGER audit_log_no_update")
        conn.execute("DROP TRIGGER audit_log_no_delete")
        for statement in statements:
            conn.execute(statement)


def test_verify_an_empty_log(home: Path) -> None:
    assert ok("verify").stdout.strip() == "Verified 0 records: the audit log is empty."


def test_verify_prints_the_head_to_pin(records: list[AuditRecord]) -> None:
    head = f"{records[-1].hash}@5"
    assert ok("verify").stdout.strip() == f"Verified 5 records, head hash {head}"
    assert "Verified 5 records" in ok("verify", "--expect-head", head).stdout
    assert json.loads(ok("verify", "--json").stdout) == {
        "ok": True,
        "records": 5,
        "head_seq": 5,
        "head_hash": records[-1].hash,
        "broken": None,
    }


def test_verify_names_the_first_edited_record(home: Path, records: list[AuditRecord]) -> None:
    tamper(home, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 3")
    result = invoke("verify")
    assert result.exit_code == 1
    assert "Integrity check failed" in result.stderr
    assert "Audit record 3 is edited" in result.stderr
    assert "The 2 records before it verified" in result.stderr
    as_json = invoke("verify", "--json")
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["broken"]["seq"] == 3


def test_verify_names_a_deleted_record(home: Path, records: list[AuditRecord]) -> None:
    tamper(home, "DELETE FROM audit_log WHERE seq = 2")
    result = invoke("verify")
    assert result.exit_code == 1
    assert "Audit record 2 is deleted" in result.stderr


def test_verify_with_a_pinned_head_catches_a_cut_tail(home: Path, records: list[AuditRecord]) -> None:
    head = f"{records[-1].hash}@5"
    tamper(home, "DELETE FROM audit_log WHERE seq >= 4")
    assert "Verified 3 records" in ok("verify").stdout
    result = invoke("verify", "--expect-head", head)
    assert result.exit_code == 1
    assert "Audit record 4 is truncated" in result.stderr


def test_verify_refuses_a_malformed_head(home: Path) -> None:
    result = invoke("verify", "--expect-head", "abc@1")
    assert result.exit_code == 1
    assert "is not HASH@SEQ" in result.stderr


def test_export_to_stdout_and_since(records: list[AuditRecord]) -> None:
    lines = ok("export").stdout.splitlines()
    assert [json.loads(line) for line in lines] == [r.to_json() for r in records]
    assert [json.loads(line)["seq"] for line in ok("export", "--since", "3").stdout.splitlines()] == [4, 5]


def test_export_to_a_file(records: list[AuditRecord], tmp_path: Path) -> None:
    target = tmp_path / "audit.jsonl"
    result = ok("export", "--output", str(target))
    assert f"Exported 5 records to {target}" in result.stderr
    assert result.stdout == ""
    assert len(target.read_text().splitlines()) == 5


def test_list_newest_first_with_filters(records: list[AuditRecord]) -> None:
    def seqs(*args: str) -> list[int]:
        return [r["seq"] for r in json.loads(ok("list", "--json", *args).stdout)["records"]]

    assert seqs() == [5, 4, 3, 2, 1]
    assert seqs("--limit", "2") == [5, 4]
    assert seqs("--actor", "ci-bot") == [4, 2]
    assert seqs("--resource", "run:r2") == [3]
    assert seqs("--resource", "run") == [5, 4, 3, 2, 1]
    assert seqs("--action", "run.delete") == []


def test_list_table_shows_who_did_what(records: list[AuditRecord]) -> None:
    table = ok("list").stdout
    assert "run.create" in table
    assert "run:r1" in table
    assert "ci-bot (service)" in table


def test_list_of_an_empty_log(home: Path) -> None:
    assert ok("list").stdout.strip() == "No audit records match."


def test_a_server_url_is_refused(home: Path) -> None:
    result = invoke("verify", "--tracking-uri", "http://localhost:5000")
    assert result.exit_code == 1
    assert "works on the database itself" in result.stderr
