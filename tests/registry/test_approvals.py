"""Approvals (four eyes) on SQLite and PostgreSQL: who may approve, evidence, the alias guard."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import update
from starlette.testclient import TestClient

from conveyor.config import Settings
from conveyor.errors import Conflict, IntegrityError, InvalidState, PermissionDenied
from conveyor.identity import IdentityService, RequestContext, Role
from conveyor.registry import ApprovalService, ApprovalStatus, ModelVersion, RegistryService
from conveyor.server.app import create_app
from conveyor.store.entities import Metric, Tag
from conveyor.store.sql import schema_approvals
from conveyor.store.sql.audit import AuditLog
from conveyor.tracking.reproducibility import ReproRecord, record_tags
from conveyor.tracking.service import TrackingService

APPROVALS = "/api/conveyor/v1/registry/approvals"


def act_as(monkeypatch: pytest.MonkeyPatch, user: str) -> None:
    """Local commands act as the OS user; getpass reads it from LOGNAME first."""
    monkeypatch.setenv("LOGNAME", user)
    monkeypatch.setenv("USER", user)


def trained_version(registry: RegistryService, name: str, model_dir: Path, accuracy: float) -> ModelVersion:
    """A version whose source run, by 'tess', logged holdout/accuracy."""
    store = registry.store
    experiment = store.create_experiment(f"exp-{name}")
    run = store.create_run(experiment, user_id="tess", tags={"mlflow.user": "tess"})
    store.log_metric(run.info.run_id, Metric("holdout/accuracy", accuracy, int(time.time() * 1000)))
    registry.create_model(name, actor="ana")
    return registry.create_version(name, str(model_dir), run_id=run.info.run_id, actor="ana")


@pytest.fixture
def approvals(registry: RegistryService) -> ApprovalService:
    return ApprovalService(registry)


def test_promotion_without_approval_is_refused(
    approvals: ApprovalService, name: str, model_dir: Path
) -> None:
    version = trained_version(approvals.registry, name, model_dir, 0.95)
    with pytest.raises(PermissionDenied, match="conveyor registry request-promotion"):
        approvals.registry.set_alias(name, "champion", version.version)
    approvals.registry.set_alias(name, "challenger", version.version)  # not protected


def test_approval_applies_the_move_and_history_names_it(
    approvals: ApprovalService, name: str, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = trained_version(approvals.registry, name, model_dir, 0.95)
    act_as(monkeypatch, "ana")
    request = approvals.request_promotion(name, version.version, "champion", "best holdout accuracy")
    with pytest.raises(PermissionDenied, match="cannot approve it"):
        approvals.approve(request.id, "looks good to me")
    act_as(monkeypatch, "tess")
    with pytest.raises(PermissionDenied, match="authored"):
        approvals.approve(request.id, "my own model is great")
    act_as(monkeypatch, "bo")
    done = approvals.approve(request.id, "checked the evaluation")
    assert (done.status, done.decided_by) == (ApprovalStatus.APPLIED, "bo")
    [event] = approvals.registry.alias_history(name, "champion")
    assert (event.new_version, event.approval_id, event.actor) == (version.version, request.id, "bo")
    with pytest.raises(PermissionDenied, match="APPLIED"):  # an approval is used once
        approvals.registry.set_alias(name, "champion", version.version, approval_id=request.id)
    actions = [r.action for r in AuditLog(approvals.registry.store).read(resource_id=request.id)]
    assert actions == ["registry.approval.request", "registry.approval.approved", "registry.approval.apply"]


def test_rejected_and_expired_requests_are_kept(
    approvals: ApprovalService, name: str, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = trained_version(approvals.registry, name, model_dir, 0.95)
    act_as(monkeypatch, "ana")
    rejected = approvals.request_promotion(name, version.version, "champion", "try")
    expiring = approvals.request_promotion(name, version.version, "production", "try too")
    with approvals.registry.store._write() as conn:
        table = schema_approvals.approval_requests
        conn.execute(update(table).where(table.c.id == expiring.id).values(expires_at=1))
    act_as(monkeypatch, "bo")
    assert approvals.reject(rejected.id, "no evaluation on fresh data").status is ApprovalStatus.REJECTED
    with pytest.raises(InvalidState, match="expired"):
        approvals.approve(expiring.id, "too late")
    statuses = {r.id: r.status for r in approvals.list_requests(name=name)}
    assert statuses == {rejected.id: ApprovalStatus.REJECTED, expiring.id: ApprovalStatus.EXPIRED}
    assert approvals.get_request(rejected.id).decision_reason == "no evaluation on fresh data"


def test_failing_evidence_is_refused_with_the_value(
    approvals: ApprovalService, name: str, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = trained_version(approvals.registry, name, model_dir, 0.87)
    approvals.set_policy(name, "champion", metrics=["accuracy>=0.9@holdout"], require_model_card=True)
    act_as(monkeypatch, "ana")
    request = approvals.request_promotion(name, version.version, "champion", "ship it")
    assert [c["passed"] for c in request.evidence] == [False, False]
    act_as(monkeypatch, "bo")
    with pytest.raises(InvalidState, match=r"holdout/accuracy = 0\.87") as refused:
        approvals.approve(request.id, "ok")
    assert "conveyor.card.completed" in str(refused.value)
    approvals.set_policy(name, "champion", metrics=["accuracy>=0.8@holdout"], require_model_card=True)
    approvals.registry.set_version_tag(name, version.version, "conveyor.card.completed", "true")
    applied = approvals.approve(request.id, "card done, threshold agreed at 0.8")
    assert applied.status is ApprovalStatus.APPLIED
    assert applied.evidence[0]["value"] == pytest.approx(0.87)


def test_tampered_version_is_refused_at_approval(
    approvals: ApprovalService, name: str, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = trained_version(approvals.registry, name, model_dir, 0.95)
    act_as(monkeypatch, "ana")
    request = approvals.request_promotion(name, version.version, "champion", "ship it")
    victim = next(p for p in sorted(model_dir.rglob("*")) if p.is_file() and p.suffix != ".yaml")
    victim.write_bytes(victim.read_bytes() + b"tampered")
    act_as(monkeypatch, "bo")
    with pytest.raises(IntegrityError, match="Refusing to approve"):
        approvals.approve(request.id, "ok")
    assert approvals.get_request(request.id).status is ApprovalStatus.PENDING


def test_concurrent_approvals_apply_once(
    approvals: ApprovalService, name: str, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = trained_version(approvals.registry, name, model_dir, 0.95)
    act_as(monkeypatch, "ana")
    request = approvals.request_promotion(name, version.version, "champion", "ship it")
    act_as(monkeypatch, "bo")
    outcomes: list[str] = []

    def approve() -> None:
        try:
            outcomes.append(approvals.approve(request.id, "race").status.value)
        except (Conflict, InvalidState) as exc:
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=approve) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("APPLIED") == 1, outcomes
    assert len(approvals.registry.alias_history(name, "champion")) == 1


def test_approver_role_is_required_with_auth(tmp_path: Path, model_dir: Path, name: str) -> None:
    """Over HTTP with --auth: a contributor gets 403 naming 'approve'; an approver applies it."""
    service = TrackingService.from_settings(
        Settings(database_url=f"sqlite:///{tmp_path / 'auth.db'}", artifact_root=str(tmp_path / "art"))
    )
    registry = RegistryService(service.store, service.artifacts)
    version = trained_version(registry, name, model_dir, 0.95)
    identity, local = IdentityService.for_store(service.store), RequestContext.local()
    headers = {}
    for user, role in [("ana", Role.CONTRIBUTOR), ("bo", Role.CONTRIBUTOR), ("cy", Role.APPROVER)]:
        identity.create_user(user, local)
        identity.grant(user, role, local)
        headers[user] = {"Authorization": f"Bearer {identity.issue_token(user, local).secret}"}
    with TestClient(create_app(Settings(auth=True), service=service)) as client:
        body = {"name": name, "version": version.version, "alias": "champion", "reason": "best"}
        created = client.post(APPROVALS, json=body, headers=headers["ana"])
        assert created.status_code == 200, created.text
        request_id = created.json()["id"]
        refused = client.post(
            f"{APPROVALS}/{request_id}/approve", json={"reason": "ok"}, headers=headers["bo"]
        )
        assert refused.status_code == 403
        assert "'approve' permission" in refused.json()["message"]
        done = client.post(f"{APPROVALS}/{request_id}/approve", json={"reason": "ok"}, headers=headers["cy"])
        assert done.status_code == 200, done.text
        assert done.json()["status"] == "APPLIED"
        listed = client.get(APPROVALS, params={"status": "APPLIED"}, headers=headers["bo"]).json()
        assert [r["id"] for r in listed["requests"]] == [request_id]
    assert registry.get_version_by_alias(name, "champion").version == version.version
    service.store.close()


def test_cli_request_and_approve_as_two_users(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from typer.testing import CliRunner

    from conveyor.cli import app

    for var in ("CONVEYOR_TRACKING_URI", "CONVEYOR_DATABASE_URL", "CONVEYOR_ARTIFACT_ROOT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CONVEYOR_HOME", str(tmp_path / "home"))

    def run(*args: str) -> dict:
        result = CliRunner().invoke(app, [*args, "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    act_as(monkeypatch, "ana")
    run("registry", "create", "churn")
    run("registry", "register", "churn", str(model_dir))
    refused = CliRunner().invoke(app, ["registry", "alias", "set", "churn", "champion", "1"])
    assert refused.exit_code == 1
    assert "conveyor registry request-promotion" in refused.output
    request = run("registry", "request-promotion", "churn", "1", "--alias", "champion", "--reason", "best")
    act_as(monkeypatch, "bo")
    assert run("registry", "approvals", "--status", "PENDING")["requests"][0]["id"] == request["id"]
    assert run("registry", "approve", request["id"], "--reason", "ok")["status"] == "APPLIED"
    assert run("registry", "show", "churn")["aliases"] == {"champion": 1}
    policy = run(
        "registry", "policy", "set", "churn", "--alias", "champion", "--metric", "accuracy>=0.9@holdout"
    )
    assert policy["metrics"] == [{"metric": "accuracy", "op": ">=", "value": 0.9, "dataset": "holdout"}]


def test_require_reproducible_refuses_a_dirty_source_run_with_its_reasons(
    approvals: ApprovalService, name: str, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = trained_version(approvals.registry, name, model_dir, 0.95)
    record = ReproRecord("abc123", True, "d" * 64, 0, "3.12.0", "p" * 64, "uv.lock", "l" * 64, {"random": 1})
    set_repro_tags(approvals.registry, version, record)
    approvals.set_policy(name, "champion", metrics=["accuracy>=0.9@holdout"], require_reproducible=True)
    policy = approvals.get_policy(name, "champion")
    assert policy.require_reproducible and [str(m) for m in policy.metrics] == ["accuracy >= 0.9 on holdout"]
    act_as(monkeypatch, "ana")
    request = approvals.request_promotion(name, version.version, "champion", "ship it")
    assert request.evidence[1] == {
        "check": "reproducible",
        "run_id": version.run_id,
        "grade": "C",
        "reasons": ["dirty working tree"],
        "passed": False,
    }
    act_as(monkeypatch, "bo")
    with pytest.raises(InvalidState, match="grade C: dirty working tree"):
        approvals.approve(request.id, "ok")
    set_repro_tags(approvals.registry, version, dataclasses.replace(record, dirty=False, diff_sha256=None))
    assert approvals.approve(request.id, "committed").status is ApprovalStatus.APPLIED


def set_repro_tags(registry: RegistryService, version: ModelVersion, record: ReproRecord) -> None:
    assert version.run_id is not None
    for key, value in record_tags(record).items():
        registry.store.set_tag(version.run_id, Tag(key, value))


def test_policies_over_rest_need_admin_to_change_and_validate_their_body(
    tmp_path: Path, model_dir: Path, name: str
) -> None:
    service = TrackingService.from_settings(
        Settings(database_url=f"sqlite:///{tmp_path / 'p.db'}", artifact_root=str(tmp_path / "art"))
    )
    registry = RegistryService(service.store, service.artifacts)
    trained_version(registry, name, model_dir, 0.95)
    identity, local = IdentityService.for_store(service.store), RequestContext.local()
    headers = {}
    for user, role in [("ana", Role.CONTRIBUTOR), ("root", Role.ADMIN)]:
        identity.create_user(user, local)
        identity.grant(user, role, local)
        headers[user] = {"Authorization": f"Bearer {identity.issue_token(user, local).secret}"}
    url = f"/api/conveyor/v1/registry/policies/{name}/champion"
    body = {"metrics": ["holdout/accuracy >= 0.9"], "require_reproducible": True, "expiry_hours": 24}
    with TestClient(create_app(Settings(auth=True), service=service)) as client:
        assert client.get(url, headers=headers["ana"]).json()["protected"] is True  # built in
        refused = client.put(url, json=body, headers=headers["ana"])
        assert refused.status_code == 403
        assert "'admin' permission" in refused.json()["message"]
        bad = client.put(url, json={**body, "require_reproducible": "yes"}, headers=headers["root"])
        assert bad.status_code == 400
        assert "'require_reproducible' must be true or false" in bad.json()["message"]
        stored = client.put(url, json=body, headers=headers["root"])
        assert stored.status_code == 200, stored.text
    policy = ApprovalService(registry).get_policy(name, "champion")
    assert (policy.require_reproducible, policy.expiry_hours) == (True, 24)
    assert [(m.metric, m.op, m.value) for m in policy.metrics] == [("holdout/accuracy", ">=", 0.9)]
    service.store.close()


def test_a_deployer_moves_aliases_but_cannot_write(tmp_path: Path, model_dir: Path, name: str) -> None:
    """Release automation: `deploy` moves an unprotected alias; a viewer is told what it lacks."""
    service = TrackingService.from_settings(
        Settings(database_url=f"sqlite:///{tmp_path / 'd.db'}", artifact_root=str(tmp_path / "art"))
    )
    registry = RegistryService(service.store, service.artifacts)
    trained_version(registry, name, model_dir, 0.95)
    identity, local = IdentityService.for_store(service.store), RequestContext.local()
    headers = {}
    for user, role in [("dee", Role.DEPLOYER), ("vic", Role.VIEWER)]:
        identity.create_user(user, local)
        identity.grant(user, role, local)
        headers[user] = {"Authorization": f"Bearer {identity.issue_token(user, local).secret}"}
    alias = "/api/2.0/mlflow/registered-models/alias"
    body = {"name": name, "alias": "challenger", "version": "1"}
    with TestClient(create_app(Settings(auth=True), service=service)) as client:
        assert client.post(alias, json=body, headers=headers["dee"]).status_code == 200
        refused = client.post(alias, json=body, headers=headers["vic"])
        assert refused.status_code == 403
        assert "lacks the 'write' or 'deploy' permissions" in refused.json()["message"]
        created = client.post(
            "/api/2.0/mlflow/registered-models/create", json={"name": f"{name}-x"}, headers=headers["dee"]
        )
        assert created.status_code == 403
    assert registry.get_version_by_alias(name, "challenger").version == 1
    service.store.close()
