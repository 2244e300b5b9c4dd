"""Webhooks against a real local HTTP receiver: signatures, payloads, retries, the outbox."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from conveyor.cli import app
from conveyor.errors import AlreadyExists, InvalidInput, NotFound
from conveyor.registry import ApprovalService, RegistryService
from conveyor.registry.webhooks import (
    DeliveryState,
    WebhookDispatcher,
    WebhookService,
    WebhookStatus,
    retry_delay_ms,
)
from conveyor.store.sql import schema_webhooks
from conveyor.store.sql.audit import AuditLog
from conveyor.testing.webhooks import WebhookReceiver

SECRET = "s3cret-s3cret-s3cret"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as found:
        yield found


@pytest.fixture
def webhooks(registry: RegistryService) -> Iterator[WebhookService]:
    """The service; afterwards every webhook goes (PostgreSQL's database is shared by the session)."""
    service = WebhookService(registry.store)
    yield service
    for found in service.list_webhooks():
        service.delete(found.name)


@pytest.fixture
def dispatcher(registry: RegistryService) -> WebhookDispatcher:
    return WebhookDispatcher(registry.store, base_delay_ms=0)


def free_url() -> str:
    """A URL on a port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/hook"


def test_alias_move_is_delivered_signed_with_its_payload(
    registry: RegistryService,
    webhooks: WebhookService,
    dispatcher: WebhookDispatcher,
    receiver: WebhookReceiver,
    name: str,
    model_dir: Path,
) -> None:
    webhooks.create(f"ci-{name}", receiver.url, ["alias.moved"], secret=SECRET)
    registry.create_model(name)
    version = registry.create_version(name, str(model_dir))
    registry.set_alias(name, "staging", version.version, reason="canary", actor="ana")

    assert dispatcher.dispatch_once() == 1
    assert dispatcher.dispatch_once() == 0
    (headers, body), *rest = receiver.requests
    assert rest == []
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-conveyor-signature"], expected)
    assert headers["x-conveyor-event"] == "alias.moved"
    payload = json.loads(body)
    assert headers["x-conveyor-delivery"] == payload["id"]
    assert payload["event"] == "alias.moved"
    data = payload["data"]
    assert (data["model"], data["alias"], data["old_version"], data["new_version"]) == (
        name,
        "staging",
        None,
        version.version,
    )
    assert (data["actor"], data["reason"], data["approval_id"]) == ("ana", "canary", None)
    (delivered,) = webhooks.deliveries(f"ci-{name}")
    assert delivered.state is DeliveryState.DELIVERED and delivered.attempts == 1


def test_version_created_and_alias_deleted_events(
    registry: RegistryService,
    webhooks: WebhookService,
    dispatcher: WebhookDispatcher,
    receiver: WebhookReceiver,
    name: str,
    model_dir: Path,
) -> None:
    webhooks.create(f"all-{name}", receiver.url, secret=SECRET)
    registry.create_model(name)
    version = registry.create_version(name, str(model_dir))
    registry.set_alias(name, "staging", version.version)
    registry.delete_alias(name, "staging")
    dispatcher.dispatch_once()
    events = sorted(
        (p["event"], p["data"].get("version") or p["data"].get("old_version")) for p in receiver.payloads()
    )
    assert events == [("alias.deleted", 1), ("alias.moved", None), ("model_version.created", 1)]


def test_approval_events_carry_the_approval_id(
    registry: RegistryService,
    webhooks: WebhookService,
    dispatcher: WebhookDispatcher,
    receiver: WebhookReceiver,
    name: str,
    model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    webhooks.create(
        f"gov-{name}", receiver.url, ["approval.requested", "approval.decided", "alias.moved"], secret=SECRET
    )
    registry.create_model(name, actor="tess")
    version = registry.create_version(name, str(model_dir), actor="tess")
    approvals = ApprovalService(registry)
    monkeypatch.setenv("LOGNAME", "ana")
    monkeypatch.setenv("USER", "ana")
    request = approvals.request_promotion(name, version.version, "champion", "best AUC")
    monkeypatch.setenv("LOGNAME", "bob")
    monkeypatch.setenv("USER", "bob")
    approvals.approve(request.id, "looks good")
    dispatcher.dispatch_once()
    by_event = {p["event"]: p["data"] for p in receiver.payloads()}
    assert by_event["approval.requested"]["id"] == request.id
    assert by_event["approval.decided"]["status"] == "APPROVED"
    moved = by_event["alias.moved"]
    assert (moved["alias"], moved["new_version"], moved["approval_id"], moved["actor"]) == (
        "champion",
        version.version,
        request.id,
        "bob",
    )


def test_a_500_is_retried_then_delivered(
    registry: RegistryService,
    webhooks: WebhookService,
    dispatcher: WebhookDispatcher,
    receiver: WebhookReceiver,
    name: str,
) -> None:
    webhooks.create(f"flaky-{name}", receiver.url, ["alias.moved", "model_version.created"], secret=SECRET)
    receiver.statuses = [500]
    registry.create_model(name)
    registry.records.create_version(
        name, "s3://bucket/model", actor="ana", model_digest="d" * 64, events=registry.events
    )
    assert dispatcher.dispatch_once() == 1
    (pending,) = webhooks.deliveries(f"flaky-{name}")
    assert (pending.state, pending.attempts, pending.last_status) == (DeliveryState.PENDING, 1, 500)
    assert dispatcher.dispatch_once() == 1
    (done,) = webhooks.deliveries(f"flaky-{name}")
    assert (done.state, done.attempts, done.last_status, done.last_error) == (
        DeliveryState.DELIVERED,
        2,
        200,
        None,
    )
    assert len(receiver.requests) == 2
    assert receiver.requests[0][1] == receiver.requests[1][1]  # the same signed body, resent


def test_receiver_down_backs_off_then_fails(
    registry: RegistryService, webhooks: WebhookService, name: str
) -> None:
    webhooks.create(f"down-{name}", free_url(), ["model_version.created"], secret=SECRET)
    registry.create_model(name)
    registry.records.create_version(
        name, "s3://bucket/model", actor="ana", model_digest="d" * 64, events=registry.events
    )
    dispatcher = WebhookDispatcher(registry.store, max_attempts=3, base_delay_ms=1_000)
    waits = []
    for attempt in (1, 2):
        assert dispatcher.dispatch_once() == 1
        (delivery,) = webhooks.deliveries(f"down-{name}")
        assert delivery.attempts == attempt and delivery.last_status is None and delivery.last_error
        assert delivery.state is DeliveryState.PENDING
        waits.append(delivery.next_attempt_at - delivery.created)
        _make_due(registry, delivery.id)
    assert waits[1] > waits[0] >= 1_000
    assert dispatcher.dispatch_once() == 1
    (failed,) = webhooks.deliveries(f"down-{name}")
    assert (failed.state, failed.attempts, failed.next_attempt_at) == (DeliveryState.FAILED, 3, None)
    assert dispatcher.dispatch_once() == 0
    assert [retry_delay_ms(n, 10) for n in (1, 2, 3)] == [10, 20, 40]


def test_a_rolled_back_change_queues_nothing(
    registry: RegistryService, webhooks: WebhookService, name: str
) -> None:
    webhooks.create(f"rb-{name}", free_url(), ["alias.moved"], secret=SECRET)
    registry.create_model(name)
    registry.records.create_version(name, "s3://bucket/model", actor="ana", model_digest="d" * 64)

    def refuse(conn: object, move: object) -> None:
        raise InvalidInput("refused by a guard")

    def fail_after(conn: object, event: str, payload: object) -> None:
        raise RuntimeError("the transaction fails after the delivery row was written")

    with pytest.raises(InvalidInput):
        registry.records.set_alias(name, "staging", 1, actor="ana", guards=[refuse], events=registry.events)
    with pytest.raises(RuntimeError):
        registry.records.set_alias(name, "staging", 1, actor="ana", events=[*registry.events, fail_after])
    assert webhooks.deliveries(f"rb-{name}") == []
    with pytest.raises(NotFound):
        registry.get_version_by_alias(name, "staging")


def test_secret_is_never_listed_and_input_is_checked(
    registry: RegistryService, webhooks: WebhookService, name: str, receiver: WebhookReceiver
) -> None:
    created = webhooks.create(f"list-{name}", receiver.url, ["alias.moved"], secret=SECRET)
    listed = [w.to_json() for w in webhooks.list_webhooks()]
    assert created.to_json() in listed
    assert SECRET not in json.dumps(listed) and "secret" not in listed[0]
    assert webhooks.test(f"list-{name}") == (200, None)
    headers, _ = receiver.requests[0]
    assert headers["x-conveyor-event"] == "webhook.test"
    for bad in (
        dict(url="ftp://x", events=["alias.moved"], secret=SECRET),
        dict(url=receiver.url, events=["run.created"], secret=SECRET),
        dict(url=receiver.url, events=["alias.moved"], secret="short"),
    ):
        with pytest.raises(InvalidInput):
            webhooks.create(f"bad-{name}", **bad)
    webhooks.delete(f"list-{name}")
    with pytest.raises(NotFound):
        webhooks.get(f"list-{name}")


def test_cli_create_list_deliveries_delete(
    webhooks: WebhookService, receiver: WebhookReceiver, name: str
) -> None:
    runner = CliRunner()
    created = runner.invoke(
        app,
        ["registry", "webhooks", "create", f"cli-{name}", receiver.url, "--event", "alias.moved", "--json"],
    )
    assert created.exit_code == 0, created.output
    secret = json.loads(created.output)["secret"]
    listed = runner.invoke(app, ["registry", "webhooks", "list", "--json"])
    assert listed.exit_code == 0 and f"cli-{name}" in listed.output and secret not in listed.output
    tested = runner.invoke(app, ["registry", "webhooks", "test", f"cli-{name}"])
    assert tested.exit_code == 0, tested.output
    signature = receiver.requests[0][0]["x-conveyor-signature"]
    assert (
        signature
        == "sha256=" + hmac.new(secret.encode(), receiver.requests[0][1], hashlib.sha256).hexdigest()
    )
    shown = runner.invoke(app, ["registry", "webhooks", "deliveries", f"cli-{name}", "--json"])
    assert shown.exit_code == 0 and json.loads(shown.output) == {"deliveries": []}
    assert runner.invoke(app, ["registry", "webhooks", "delete", f"cli-{name}"]).exit_code == 0


def _make_due(registry: RegistryService, delivery_id: str) -> None:
    """Skip the backoff wait: make the delivery due now."""
    with registry.store._write() as conn:
        table = schema_webhooks.webhook_deliveries
        conn.execute(update(table).where(table.c.id == delivery_id).values(next_attempt_at=0))


def test_a_disabled_webhook_gets_no_new_deliveries(
    registry: RegistryService, webhooks: WebhookService, name: str
) -> None:
    webhooks.create(f"off-{name}", free_url(), ["model_version.created"], secret=SECRET)
    assert webhooks.set_status(f"off-{name}", "disabled").status is WebhookStatus.DISABLED
    registry.create_model(name)
    registry.records.create_version(
        name, "s3://bucket/model", actor="ana", model_digest="d" * 64, events=registry.events
    )
    assert webhooks.deliveries(f"off-{name}") == []


def test_update_changes_all_or_nothing_and_audits_a_rotation(
    registry: RegistryService, webhooks: WebhookService, name: str, receiver: WebhookReceiver
) -> None:
    """What MLflow's update_webhook needs: by id, every field, one audited transaction."""
    created = webhooks.create(f"up-{name}", free_url(), ["alias.moved"], secret=SECRET, status="disabled")
    webhooks.create(f"taken-{name}", free_url(), ["alias.moved"], secret=SECRET)
    assert webhooks.get_by_id(created.id).status is WebhookStatus.DISABLED
    for bad, error in (
        (dict(url="http:///no-host"), InvalidInput),
        (dict(url=receiver.url, events=[]), InvalidInput),
        (dict(url=receiver.url, secret="short"), InvalidInput),
        (dict(url=receiver.url, name=f"taken-{name}"), AlreadyExists),
    ):
        with pytest.raises(error):
            webhooks.update(created.id, **bad)
    assert webhooks.get_by_id(created.id) == created

    updated = webhooks.update(
        created.id,
        name=f"moved-{name}",
        url=receiver.url,
        events=["model_version.created"],
        secret="a-rotated-secret-0123",
        status="active",
    )
    assert (updated.id, updated.name, updated.url, updated.events, updated.status) == (
        created.id,
        f"moved-{name}",
        receiver.url,
        ("model_version.created",),
        WebhookStatus.ACTIVE,
    )
    assert webhooks.test(f"moved-{name}", event="alias.moved") == (200, None)
    headers, body = receiver.requests[0]
    expected = hmac.new(b"a-rotated-secret-0123", body, hashlib.sha256).hexdigest()
    assert headers["x-conveyor-signature"] == f"sha256={expected}"
    [record] = AuditLog(registry.store).read(
        resource_type="webhook", resource_id=f"moved-{name}", action="registry.webhook.update"
    )
    assert record.details == {"secret_rotated": True}
    with pytest.raises(NotFound, match="Webhook with ID 'nope' not found"):
        webhooks.update("nope", status="active")
