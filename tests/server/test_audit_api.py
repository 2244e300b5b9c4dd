"""The auditor REST API in process: reads, verify, streamed export, and who may call them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from starlette.testclient import TestClient

from conveyor.artifacts import ArtifactStore
from conveyor.config import Settings
from conveyor.identity import IdentityService, RequestContext, Role
from conveyor.server.app import create_app
from conveyor.server.auth import required_permission
from conveyor.store.sql.audit import AuditLog
from conveyor.store.sql.store import SqlStore
from conveyor.tracking.service import TrackingService

AUDIT = "/api/conveyor/v1/audit"


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[TestClient, dict[str, dict[str, str]], SqlStore]]:
    """An app with auth on, a few audited changes, and a bearer header per role."""
    home: Path = tmp_path_factory.mktemp("audit-api")
    store = SqlStore(f"sqlite:///{home / 'conveyor.db'}").open()
    identity, local = IdentityService.for_store(store), RequestContext.local()
    headers = {}
    for name, role in [("audrey", Role.AUDITOR), ("cora", Role.CONTRIBUTOR), ("ada", Role.ADMIN)]:
        identity.create_user(name, local)
        identity.grant(name, role, local)
        headers[name] = {"Authorization": f"Bearer {identity.issue_token(name, local).secret}"}
    store.create_experiment("audited")
    service = TrackingService(store, ArtifactStore(str(home / "artifacts")))
    with TestClient(create_app(Settings(auth=True), service=service)) as client:
        yield client, headers, store
    store.close()


def test_auditor_and_admin_read_records(
    setup: tuple[TestClient, dict[str, dict[str, str]], SqlStore],
) -> None:
    client, headers, _ = setup
    for who in ("audrey", "ada"):
        response = client.get(f"{AUDIT}/records", headers=headers[who])
        assert response.status_code == 200, response.text
        records = response.json()["records"]
        assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
        assert {"experiment.create", "identity.token.create"} <= {r["action"] for r in records}


def test_records_filter_and_page(setup: tuple[TestClient, dict[str, dict[str, str]], SqlStore]) -> None:
    client, headers, _ = setup
    auditor = headers["audrey"]
    page = client.get(f"{AUDIT}/records?limit=2", headers=auditor).json()
    assert len(page["records"]) == 2 and page["next_since_seq"] == 2
    rest = client.get(f"{AUDIT}/records?since_seq=2", headers=auditor).json()["records"]
    assert rest[0]["seq"] == 3
    by_resource = client.get(f"{AUDIT}/records?resource=principal:cora", headers=auditor).json()["records"]
    assert by_resource and {(r["resource_type"], r["resource_id"]) for r in by_resource} == {
        ("principal", "cora")
    }
    by_action = client.get(f"{AUDIT}/records?action=experiment.create", headers=auditor).json()["records"]
    assert [r["action"] for r in by_action] == ["experiment.create"]
    assert client.get(f"{AUDIT}/records?limit=0", headers=auditor).status_code == 400
    assert client.get(f"{AUDIT}/records?resource=:x", headers=auditor).status_code == 400


def test_since_time_uses_the_seq_order(setup: tuple[TestClient, dict[str, dict[str, str]], SqlStore]) -> None:
    client, headers, store = setup
    records = AuditLog(store).read(limit=1000)
    last = records[-1]
    found = client.get(f"{AUDIT}/records?since_time={last.time}", headers=headers["audrey"]).json()["records"]
    assert found and all(r["time"] >= last.time for r in found)
    assert found[0]["seq"] == min(r.seq for r in records if r.time >= last.time)
    future = client.get(f"{AUDIT}/records?since_time={last.time + 1}", headers=headers["audrey"]).json()
    assert future["records"] == []


def test_verify_and_pinned_head(setup: tuple[TestClient, dict[str, dict[str, str]], SqlStore]) -> None:
    client, headers, _ = setup
    result = client.get(f"{AUDIT}/verify", headers=headers["audrey"]).json()
    assert result["ok"] and result["broken"] is None and result["records"] >= 5
    head = f"{result['head_hash']}@{result['head_seq']}"
    assert client.get(f"{AUDIT}/verify", params={"expect_head": head}, headers=headers["audrey"]).json()["ok"]
    wrong = f"{'0' * 64}@{result['head_seq']}"
    broken = client.get(f"{AUDIT}/verify", params={"expect_head": wrong}, headers=headers["audrey"]).json()
    assert not broken["ok"] and broken["broken"]["kind"] == "rewritten"
    bad = client.get(f"{AUDIT}/verify", params={"expect_head": "nope"}, headers=headers["audrey"])
    assert bad.status_code == 400 and "HASH@SEQ" in bad.json()["message"]


def test_export_streams_json_lines(setup: tuple[TestClient, dict[str, dict[str, str]], SqlStore]) -> None:
    client, headers, store = setup
    response = client.get(f"{AUDIT}/export?since_seq=1", headers=headers["audrey"])
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [orjson.loads(line) for line in response.content.splitlines()]
    assert [r["seq"] for r in lines] == [r.seq for r in AuditLog(store).read(since_seq=1, limit=1000)]
    assert lines[0]["prev_hash"] != "0" * 64 and "hash" in lines[0]


def test_contributor_is_refused_naming_audit_read(
    setup: tuple[TestClient, dict[str, dict[str, str]], SqlStore],
) -> None:
    client, headers, _ = setup
    for path in ("records", "verify", "export"):
        response = client.get(f"{AUDIT}/{path}", headers=headers["cora"])
        assert response.status_code == 403
        assert response.json()["error_code"] == "PERMISSION_DENIED"
        assert "'audit_read' permission" in response.json()["message"]


def test_no_token_is_401(setup: tuple[TestClient, dict[str, dict[str, str]], SqlStore]) -> None:
    client, _, _ = setup
    assert client.get(f"{AUDIT}/records").status_code == 401


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_nobody_can_write(setup: tuple[TestClient, dict[str, dict[str, str]], SqlStore], method: str) -> None:
    client, headers, _ = setup
    assert client.request(method, f"{AUDIT}/records", headers=headers["ada"]).status_code == 405
    assert client.request(method, f"{AUDIT}/records", headers=headers["cora"]).status_code == 403


def test_every_audit_route_needs_audit_read() -> None:
    for method in ("GET", "POST", "DELETE"):
        assert required_permission(method, f"{AUDIT}/records") == "audit_read"
