"""The audit log on SQLite and PostgreSQL: appends, the hash chain, verify, export, triggers.

Tampering goes through a raw connection that first drops the append-only triggers, as a
database administrator could; ``verify`` must still name the first bad record.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, insert, make_url, update
from sqlalchemy import exc as sa_exc

from conveyor.errors import InvalidInput
from conveyor.store.sql import schema as s
from conveyor.store.sql.audit import (
    GENESIS_HASH,
    AuditEvent,
    AuditLog,
    AuditRecord,
    BreakKind,
    record_hash,
    state_digest,
)
from conveyor.store.sql.store import SqlStore

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="module")
def pg_template(postgres_url: str) -> Iterator[str]:
    """A database migrated to head once; each test gets a copy (``CREATE DATABASE … TEMPLATE``)."""
    name = f"conveyor_audit_tpl_{uuid.uuid4().hex[:10]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    SqlStore(_database(postgres_url, name)).open().close()
    yield name
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with an empty audit log, of this test's own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'audit.db'}"
        return
    postgres_url = request.getfixturevalue("postgres_url")
    template = request.getfixturevalue("pg_template")
    name = f"conveyor_audit_{uuid.uuid4().hex[:10]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield _database(postgres_url, name)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture
def store(url: str) -> Iterator[SqlStore]:
    opened = SqlStore(url).open()
    yield opened
    opened.close()


@pytest.fixture
def log(store: SqlStore) -> AuditLog:
    return AuditLog(store)


def _database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def event(n: int = 0, **changes: Any) -> AuditEvent:
    values: dict[str, Any] = {
        "actor": "ana",
        "actor_kind": "user",
        "action": "run.update",
        "resource_type": "run",
        "resource_id": f"r{n}",
        "before": {"n": n},
        "after": {"n": n + 1},
    }
    return AuditEvent(**{**values, **changes})


def fill(log: AuditLog, count: int) -> list[AuditRecord]:
    return log.append_many([event(n) for n in range(count)])


def tamper(url: str, *statements: str) -> None:
    """Run SQL past the append-only triggers, as an administrator who drops them could."""
    engine = create_engine(url)
    on = "" if engine.dialect.name == "sqlite" else " ON audit_log"
    with engine.begin() as conn:
        for trigger in ("audit_log_no_update", "audit_log_no_delete"):
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {trigger}{on}")
        for statement in statements:
            conn.exec_driver_sql(statement)
    engine.dispose()


# -- appending and reading ---------------------------------------------------------------------


def test_append_records_every_field_and_reads_back(log: AuditLog) -> None:
    appended = log.append(
        AuditEvent(
            actor="svc-ci",
            actor_kind="service",
            source="10.0.0.7",
            workspace="churn",
            action="registry.alias.set",
            resource_type="registered_model",
            resource_id="churn",
            before={"champion": 2},
            after={"champion": 3},
            request_id="req-1",
            details={"reason": "better AUC", "approval": 12},
        )
    )
    [read] = log.read()
    assert read == appended
    assert (read.seq, read.actor_kind, read.workspace, read.source) == (1, "service", "churn", "10.0.0.7")
    assert read.before_digest == state_digest({"champion": 2})
    assert read.after_digest == state_digest({"champion": 3})
    assert read.details == {"reason": "better AUC", "approval": 12}


def test_state_digest_is_canonical() -> None:
    assert state_digest({"b": 1, "a": [1, 2]}) == state_digest({"a": [1, 2], "b": 1})
    assert state_digest({"a": 1}) == hashlib.sha256(b'{"a":1}').hexdigest()
    assert state_digest({"a": 1}) != state_digest({"a": 2})


def test_absent_states_have_no_digest(log: AuditLog) -> None:
    record = log.append(event(before=None, after=None))
    assert (record.before_digest, record.after_digest) == (None, None)


def test_read_filters_pages_and_sorts(log: AuditLog) -> None:
    log.append_many([event(n, actor="bo" if n % 2 else "ana") for n in range(6)])
    log.append(event(9, action="run.delete"))
    assert [r.seq for r in log.read(since_seq=2, limit=3)] == [3, 4, 5]
    assert [r.seq for r in log.read(limit=2, newest_first=True)] == [7, 6]
    assert [r.seq for r in log.read(actor="bo")] == [2, 4, 6]
    assert [r.seq for r in log.read(resource_type="run", resource_id="r4")] == [5]
    assert [r.seq for r in log.read(action="run.delete")] == [7]
    with pytest.raises(InvalidInput, match="limit"):
        log.read(limit=0)


def test_seq_before_finds_a_time_by_binary_search(log: AuditLog, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an index on ``time``: seq order is time order, so a time maps to a cursor."""
    assert log.seq_before(1) == 0  # empty log
    times = iter([100, 100, 200, 300, 300, 300, 400])
    monkeypatch.setattr("conveyor.store.sql.audit.now_ms", lambda: next(times))
    for n in range(7):
        log.append(event(n))
    expected = {50: 0, 100: 0, 101: 2, 200: 2, 250: 3, 300: 3, 301: 6, 400: 6, 401: 7}
    assert {t: log.seq_before(t) for t in expected} == expected
    assert [r.seq for r in log.read(since_time=300)] == [4, 5, 6, 7]
    assert [r.seq for r in log.read(since_seq=5, since_time=300)] == [6, 7]


def test_records_form_an_unbroken_chain(log: AuditLog) -> None:
    records = [log.append(event(n)) for n in range(3)] + fill(log, 3)
    assert [r.seq for r in records] == [1, 2, 3, 4, 5, 6]
    assert records[0].prev_hash == GENESIS_HASH
    for before, after in itertools.pairwise(records):
        assert after.prev_hash == before.hash
    assert all(r.hash == record_hash(r.to_json()) for r in records)
    assert log.read(limit=10) == records


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"actor_kind": "robot"}, "Unknown actor_kind 'robot'"),
        ({"actor": ""}, "non-empty actor"),
        ({"action": "x" * 101}, "action must be a string of at most 100"),
        ({"details": {"blob": "x" * 9000}}, "at most 8192 bytes"),
        ({"after": {"when": object()}}, "JSON-able"),
    ],
)
def test_invalid_events_are_refused_and_nothing_is_written(
    log: AuditLog, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        log.append_many([event(0), event(1, **changes)])
    assert log.read() == []


def test_an_append_in_a_rolled_back_transaction_leaves_nothing(store: SqlStore, log: AuditLog) -> None:
    """The change and its audit record share one transaction: both commit, or neither."""
    experiments = s.experiments
    rename = update(experiments).where(experiments.c.id == 0).values(name="renamed")
    with pytest.raises(RuntimeError), store._write() as conn:
        conn.execute(rename)
        log.append(event(action="experiment.rename"), conn)
        raise RuntimeError("the mutation failed after its audit record was appended")
    assert store.get_experiment("0").name == "Default"
    assert log.read() == []
    with store._write() as conn:
        conn.execute(rename)
        log.append(event(action="experiment.rename"), conn)
    assert store.get_experiment("0").name == "renamed"
    assert [r.action for r in log.read()] == ["experiment.rename"]


def test_concurrent_appends_make_one_chain_with_gap_free_seqs(url: str, log: AuditLog) -> None:
    """Four writers, each with its own engine (as separate processes would have)."""
    writers, per_writer = 4, 40
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(writer: int) -> None:
        store = SqlStore(url).open()
        try:
            barrier.wait()
            for n in range(per_writer):
                AuditLog(store).append(event(n, actor=f"writer-{writer}"))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    records = log.read(limit=1000)
    assert [r.seq for r in records] == list(range(1, writers * per_writer + 1))
    for writer in range(writers):
        assert [r.resource_id for r in records if r.actor == f"writer-{writer}"] == [
            f"r{n}" for n in range(per_writer)
        ]
    result = log.verify()
    assert (result.ok, result.records) == (True, writers * per_writer)


# -- verify --------------------------------------------------------------------------------------


def test_verify_empty_log(log: AuditLog) -> None:
    result = log.verify()
    assert (result.ok, result.records, result.head_seq, result.head_hash) == (True, 0, 0, GENESIS_HASH)


def test_verify_5000_records_in_under_3_seconds(log: AuditLog) -> None:
    records = fill(log, 5000)
    started = time.perf_counter()
    result = log.verify(batch=1000)
    elapsed = time.perf_counter() - started
    assert (result.ok, result.records) == (True, 5000)
    assert (result.head_seq, result.head_hash) == (5000, records[-1].hash)
    assert elapsed < 3, f"verify took {elapsed:.2f} s"


def test_edited_record_is_named(url: str, log: AuditLog) -> None:
    fill(log, 10)
    tamper(url, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 7")
    result = log.verify(batch=3)
    assert result.broken is not None
    assert (result.broken.seq, result.broken.kind, result.records) == (7, BreakKind.EDITED, 6)
    assert "do not match its hash" in result.broken.reason


def test_edited_record_with_a_recomputed_hash_breaks_the_next_link(url: str, log: AuditLog) -> None:
    records = fill(log, 10)
    forged = {**records[6].to_json(), "actor": "mallory"}
    tamper(url, f"UPDATE audit_log SET actor = 'mallory', hash = '{record_hash(forged)}' WHERE seq = 7")
    broken = log.verify().broken
    assert broken is not None
    assert (broken.seq, broken.kind) == (8, BreakKind.DELETED)
    assert "prev_hash is not the hash of record 7" in broken.reason


@pytest.mark.parametrize(
    ("deleted", "first_bad", "reason"), [("4", 4, "jumps from seq 3 to 5"), ("1, 2", 1, "1..2")]
)
def test_deleted_record_is_named(url: str, log: AuditLog, deleted: str, first_bad: int, reason: str) -> None:
    fill(log, 10)
    tamper(url, f"DELETE FROM audit_log WHERE seq IN ({deleted})")
    broken = log.verify(batch=4).broken
    assert broken is not None
    assert (broken.seq, broken.kind) == (first_bad, BreakKind.DELETED)
    assert reason in broken.reason


def test_deleted_and_renumbered_records_break_the_chain(url: str, log: AuditLog) -> None:
    """Renumbering after a deletion changes the seq each later hash was computed with."""
    fill(log, 10)
    tamper(url, "DELETE FROM audit_log WHERE seq = 4", "UPDATE audit_log SET seq = seq - 1 WHERE seq > 4")
    broken = log.verify().broken
    assert broken is not None
    assert (broken.seq, broken.kind) == (4, BreakKind.REORDERED)
    assert "written as seq 5" in broken.reason


def test_reordered_records_are_named(url: str, log: AuditLog) -> None:
    fill(log, 10)
    tamper(
        url,
        "UPDATE audit_log SET seq = 1000 WHERE seq = 5",
        "UPDATE audit_log SET seq = 5 WHERE seq = 6",
        "UPDATE audit_log SET seq = 6 WHERE seq = 1000",
    )
    broken = log.verify().broken
    assert broken is not None
    assert (broken.seq, broken.kind) == (5, BreakKind.REORDERED)
    assert "written as seq 6 and now sits at seq 5" in broken.reason


def test_truncated_tail_is_caught_only_against_a_pinned_head(url: str, log: AuditLog) -> None:
    fill(log, 10)
    head = log.verify()
    pin = (head.head_seq, head.head_hash)
    assert log.verify(expect_head=pin).ok
    tamper(url, "DELETE FROM audit_log WHERE seq > 8")
    assert log.verify().ok  # the chain alone cannot see a missing tail
    broken = log.verify(expect_head=pin).broken
    assert broken is not None
    assert (broken.seq, broken.kind) == (9, BreakKind.TRUNCATED)
    assert "ends at seq 8" in broken.reason


def test_rebuilt_chain_is_caught_against_a_pinned_head(url: str, store: SqlStore, log: AuditLog) -> None:
    records = fill(log, 10)
    pin = (10, records[-1].hash)
    forged, prev = [], GENESIS_HASH
    for record in records:
        values = {**record.to_json(), "prev_hash": prev}
        if record.seq == 3:
            values["actor"] = "mallory"
        values["hash"] = prev = record_hash(values)
        forged.append({**values, "details": None})
    tamper(url, "DELETE FROM audit_log")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(insert(s.audit_log), forged)
    engine.dispose()
    assert log.verify().ok
    broken = log.verify(expect_head=pin).broken
    assert broken is not None
    assert (broken.seq, broken.kind) == (10, BreakKind.REWRITTEN)


def test_verify_after_tampering_then_appending_still_names_the_first_bad(url: str, log: AuditLog) -> None:
    fill(log, 5)
    tamper(url, "UPDATE audit_log SET resource_id = 'other' WHERE seq = 2")
    fill(log, 5)
    broken = log.verify().broken
    assert broken is not None
    assert (broken.seq, broken.kind) == (2, BreakKind.EDITED)


# -- append-only -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET actor = 'mallory' WHERE seq = 1",
        "DELETE FROM audit_log WHERE seq = 1",
        "DELETE FROM audit_log",
    ],
)
def test_triggers_refuse_update_and_delete(url: str, log: AuditLog, statement: str) -> None:
    fill(log, 2)
    engine = create_engine(url)
    with pytest.raises(sa_exc.DBAPIError, match="append-only"), engine.begin() as conn:
        conn.exec_driver_sql(statement)
    engine.dispose()
    assert log.verify().records == 2


@pytest.mark.parametrize("url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_postgres_trigger_refuses_truncate(url: str, log: AuditLog) -> None:
    """Row triggers do not fire on TRUNCATE; a statement trigger refuses it."""
    fill(log, 2)
    engine = create_engine(url)
    with pytest.raises(sa_exc.DBAPIError, match="append-only"), engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE audit_log")
    engine.dispose()


# -- export --------------------------------------------------------------------------------------


def test_export_writes_json_lines_an_outside_tool_can_verify(log: AuditLog) -> None:
    fill(log, 4)
    log.append(event(9, details={"reason": "ünïcode", "n": [1, 2]}))
    buffer = io.BytesIO()
    assert log.export(buffer) == 5
    lines = buffer.getvalue().decode().splitlines()
    prev = GENESIS_HASH
    for line in lines:
        record = json.loads(line)
        claimed = record.pop("hash")
        canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert hashlib.sha256(canonical.encode()).hexdigest() == claimed
        assert record["prev_hash"] == prev
        prev = claimed
    assert json.loads(lines[-1])["details"] == {"reason": "ünïcode", "n": [1, 2]}


def test_export_since_and_in_batches(log: AuditLog) -> None:
    fill(log, 12)
    buffer = io.BytesIO()
    assert log.export(buffer, since_seq=5, batch=3) == 7
    assert [json.loads(line)["seq"] for line in buffer.getvalue().splitlines()] == list(range(6, 13))


def test_the_api_offers_no_way_to_change_records() -> None:
    public = {name for name in dir(AuditLog) if not name.startswith("_")}
    assert public == {"append", "append_many", "read", "seq_before", "verify", "export", "export_lines"}
