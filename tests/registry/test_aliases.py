"""Aliases: MLflow's naming rules, an append-only history with time travel, audit, no lost moves."""

from __future__ import annotations

import itertools
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conveyor.errors import InvalidInput, NotFound, PermissionDenied
from conveyor.registry import AliasMove, RegistryService
from conveyor.store.sql.audit import AuditLog


@pytest.fixture
def three_versions(registry: RegistryService, name: str, model_dir: Path) -> str:
    registry.create_model(name)
    for _ in range(3):
        registry.create_version(name, str(model_dir))
    return name


@pytest.mark.parametrize(
    ("alias", "message"),
    [
        ("latest", "'latest' alias name (case insensitive) is reserved."),
        ("LATEST", "'latest' alias name (case insensitive) is reserved."),
        ("v1", "Version alias name 'v1' is reserved."),
        ("V42", "Version alias name 'V42' is reserved."),
        ("bad alias", "Invalid alias name: 'bad alias'."),
        ("", "Registered model alias name cannot be empty."),
        ("a" * 256, "exceeds the maximum length of 255 characters"),
    ],
)
def test_reserved_and_invalid_aliases(
    registry: RegistryService, three_versions: str, alias: str, message: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        registry.set_alias(three_versions, alias, 1)
    assert message in str(raised.value)


def test_alias_to_missing_version_and_missing_alias(registry: RegistryService, three_versions: str) -> None:
    with pytest.raises(NotFound, match="version=9"):
        registry.set_alias(three_versions, "best", 9)
    with pytest.raises(NotFound, match=r"Registered model alias best not found\."):
        registry.get_version_by_alias(three_versions, "best")


def test_history_and_time_travel(registry: RegistryService, three_versions: str) -> None:
    name = three_versions
    first = registry.set_alias(name, "best", 1, reason="baseline", actor="ana")
    time.sleep(0.005)
    second = registry.set_alias(name, "best", 2, reason="better AUC", approval_id="apr-7", actor="bo")
    time.sleep(0.005)
    registry.set_alias(name, "challenger", 3)
    gone = registry.delete_alias(name, "best", reason="incident 12", actor="cy")

    history = registry.alias_history(name, "best")
    assert [(e.old_version, e.new_version, e.actor) for e in history] == [
        (None, 1, "ana"),
        (1, 2, "bo"),
        (2, None, "cy"),
    ]
    assert registry.alias_at(name, "best", first.time - 1) is None
    assert registry.alias_at(name, "best", first.time).new_version == 1
    at_second = registry.alias_at(name, "best", datetime.fromtimestamp(second.time / 1000, UTC))
    assert (at_second.new_version, at_second.actor, at_second.reason, at_second.approval_id) == (
        2,
        "bo",
        "better AUC",
        "apr-7",
    )
    assert registry.alias_at(name, "best", gone.time).new_version is None
    with pytest.raises(InvalidInput, match="no time zone"):
        registry.alias_at(name, "best", datetime(2026, 3, 1, 10))


def test_history_survives_rename_and_version_deletion(registry: RegistryService, three_versions: str) -> None:
    registry.set_alias(three_versions, "best", 3)
    registry.delete_version(three_versions, 3)
    assert registry.get_model(three_versions).aliases == {}
    registry.rename_model(three_versions, f"{three_versions}-new")
    events = registry.alias_history(f"{three_versions}-new")
    assert [(e.old_version, e.new_version, e.reason) for e in events] == [
        (None, 3, None),
        (3, None, "version 3 deleted"),
    ]


def test_each_move_writes_an_audit_record_in_its_transaction(
    registry: RegistryService, three_versions: str
) -> None:
    event = registry.set_alias(three_versions, "best", 2, reason="why not", approval_id="apr-1")
    [record] = AuditLog(registry.store).read(
        resource_type="model_alias", resource_id=f"{three_versions}@best"
    )
    assert (record.seq, record.action, record.actor) == (event.audit_seq, "registry.alias.set", event.actor)
    assert record.details == {"reason": "why not", "approval_id": "apr-1"}
    assert AuditLog(registry.store).verify().ok


def test_a_guard_can_refuse_a_move_and_nothing_is_written(
    registry: RegistryService, three_versions: str
) -> None:
    seen: list[AliasMove] = []

    def needs_approval(_conn: object, move: AliasMove) -> None:
        seen.append(move)
        if move.alias == "best" and move.approval_id is None:
            raise PermissionDenied(f"Moving {move.alias!r} needs an approved request")

    guarded = RegistryService(registry.store, registry.artifacts, alias_guards=[needs_approval])
    guarded.set_alias(three_versions, "challenger", 1)
    with pytest.raises(PermissionDenied):
        guarded.set_alias(three_versions, "best", 2)
    guarded.set_alias(three_versions, "best", 2, approval_id="apr-9")
    assert [(m.alias, m.old_version, m.new_version) for m in seen] == [
        ("challenger", None, 1),
        ("best", None, 2),
        ("best", None, 2),
    ]
    assert [e.approval_id for e in registry.alias_history(three_versions, "best")] == ["apr-9"]
    assert len(AuditLog(registry.store).read(resource_type="model_alias")) >= 2


def test_concurrent_moves_serialize(registry: RegistryService, three_versions: str) -> None:
    """Every event's old version is the previous event's new one: no move was lost."""
    threads, moves = 6, 5

    def mover(seed: int) -> None:
        for i in range(moves):
            registry.set_alias(three_versions, "best", (seed + i) % 3 + 1, actor=f"t{seed}")

    workers = [threading.Thread(target=mover, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    events = registry.alias_history(three_versions, "best")
    assert len(events) == threads * moves
    assert events[0].old_version is None
    for before, after in itertools.pairwise(events):
        assert after.old_version == before.new_version
    assert registry.get_version_by_alias(three_versions, "best").version == events[-1].new_version
    records = AuditLog(registry.store).read(
        resource_type="model_alias", resource_id=f"{three_versions}@best", limit=1000
    )
    assert sorted(r.seq for r in records) == sorted(e.audit_seq for e in events)
