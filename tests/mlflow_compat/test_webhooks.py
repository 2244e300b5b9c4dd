"""MLflow's webhook API, driven by the official ``mlflow`` client against a live server.

Deliveries go to a real HTTP receiver on 127.0.0.1, which checks each body's HMAC
signature the way docs/registry.md tells receivers to.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import mlflow
import mlflow.sklearn
import numpy as np
import pytest
from mlflow.entities.webhook import WebhookStatus
from mlflow.exceptions import MlflowException, RestException
from sklearn.linear_model import LogisticRegression

from conveyor.registry.webhooks import WebhookService
from conveyor.store.sql.store import SqlStore
from conveyor.testing.webhooks import WebhookReceiver, verified

from .conftest import Server

pytestmark = pytest.mark.slow

SECRET = "webhook-secret-0123456789"
WEBHOOKS = "/api/2.0/mlflow/webhooks"
VERSION_CREATED = {"entity": "MODEL_VERSION", "action": "CREATED"}


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as found:
        yield found


@pytest.fixture
def hooks(server: Server) -> Iterator[WebhookService]:
    """The server's webhooks, straight on its database; emptied after each test."""
    store = SqlStore(server.database_url).open()
    service = WebhookService(store)
    yield service
    for found in service.list_webhooks():
        service.delete(found.name)
    store.close()


def _name() -> str:
    return f"hook-{uuid.uuid4().hex[:8]}"


def test_lifecycle_through_the_client_never_shows_the_secret(
    client: mlflow.MlflowClient, hooks: WebhookService, receiver: WebhookReceiver
) -> None:
    name = _name()
    created = client.create_webhook(name, receiver.url, ["model_version.created"], secret=SECRET)
    assert (created.name, created.url, created.status) == (name, receiver.url, WebhookStatus.ACTIVE)
    assert [str(e) for e in created.events] == ["model_version.created"]
    assert created.secret is None and created.creation_timestamp > 0
    assert hooks.get(name).events == ("model_version.created",)

    got = client.get_webhook(created.webhook_id)
    assert (got.webhook_id, got.name, got.secret) == (created.webhook_id, name, None)
    assert [w.webhook_id for w in client.list_webhooks()] == [created.webhook_id]

    updated = client.update_webhook(
        created.webhook_id,
        name=name + "-2",
        events=["model_version_alias.created", "model_version_alias.deleted"],
        status="DISABLED",
        secret="a-rotated-secret-0123",
    )
    assert (updated.name, updated.status) == (name + "-2", WebhookStatus.DISABLED)
    assert hooks.get(name + "-2").events == ("alias.deleted", "alias.moved")

    result = client.test_webhook(created.webhook_id, event="model_version_alias.deleted")
    assert (result.success, result.response_status, result.error_message) == (True, 200, None)
    headers, body = receiver.requests[-1]
    assert verified("a-rotated-secret-0123", headers, body)["data"] == {
        "event": "alias.deleted",
        "webhook": name + "-2",
    }
    assert headers["x-conveyor-event"] == "webhook.test"

    client.delete_webhook(created.webhook_id)
    with pytest.raises(RestException) as caught:
        client.get_webhook(created.webhook_id)
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_creating_a_version_sends_a_signed_delivery(
    client: mlflow.MlflowClient, hooks: WebhookService, receiver: WebhookReceiver
) -> None:
    client.create_webhook(
        _name(), receiver.url, ["model_version.created", "model_version_alias.created"], secret=SECRET
    )
    model = f"churn-{uuid.uuid4().hex[:8]}"
    features = np.random.default_rng(0).normal(size=(20, 2))
    mlflow.set_experiment(model)
    with mlflow.start_run():
        logged = mlflow.sklearn.log_model(
            LogisticRegression().fit(features, features[:, 0] > 0), name="model", pip_requirements=[]
        )
    client.create_registered_model(model)
    version = client.create_model_version(model, f"models:/{logged.model_id}")
    client.set_registered_model_alias(model, "challenger", version.version)

    created, moved = receiver.wait_for(2, SECRET)
    assert created["event"] == "model_version.created"
    assert created["data"]["model"] == model and created["data"]["version"] == 1  # type: ignore[index]
    assert moved["event"] == "alias.moved"
    assert moved["data"]["alias"] == "challenger"  # type: ignore[index]
    headers, body = receiver.requests[0]
    with pytest.raises(AssertionError, match="bad webhook signature"):
        verified("not-the-secret-at-all", headers, body)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"url": "ftp://ci/hook", "events": [VERSION_CREATED]}, "must start with http:// or https://"),
        ({"url": "http:///hook", "events": [VERSION_CREATED]}, "names no host"),
        ({"url": "http://ci/hook", "events": []}, "Missing value for required parameter 'events'"),
        ({"url": "http://ci/hook"}, "Missing value for required parameter 'events'"),
        (
            {"url": "http://ci/hook", "events": [{"entity": "REGISTERED_MODEL", "action": "CREATED"}]},
            "registered_model.created is not one Conveyor sends",
        ),
        (
            {"url": "http://ci/hook", "events": [{"entity": "APPROVAL", "action": "CREATED"}]},
            "Invalid value \"APPROVAL\" for parameter 'events.entity'",
        ),
        (
            {"url": "http://ci/hook", "events": [VERSION_CREATED], "secret": ""},
            "Missing value for required parameter 'secret'",
        ),
        (
            {"url": "http://ci/hook", "events": [VERSION_CREATED], "secret": "short"},
            "at least 16 characters",
        ),
        (
            {"url": "http://ci/hook", "events": [VERSION_CREATED], "description": "deploys"},
            "Conveyor webhooks have no description",
        ),
    ],
)
def test_bad_input_is_a_400_naming_the_problem(
    http: httpx.Client, hooks: WebhookService, body: dict[str, object], message: str
) -> None:
    response = http.post(WEBHOOKS, json={"name": _name(), "secret": SECRET, **body})
    assert response.status_code == 400, response.text
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert message in response.json()["message"]
    assert hooks.list_webhooks() == []


def test_the_client_refuses_an_event_conveyor_does_not_send(client: mlflow.MlflowClient) -> None:
    with pytest.raises(RestException, match="is not one Conveyor sends") as caught:
        client.create_webhook(_name(), "http://ci/hook", ["model_version_tag.set"], secret=SECRET)
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException, match="Invalid entity or action"):
        client.create_webhook(_name(), "http://ci/hook", ["approval.requested"], secret=SECRET)  # type: ignore[list-item]


def test_approval_events_stay_conveyors_own(client: mlflow.MlflowClient, hooks: WebhookService) -> None:
    """MLflow cannot name them: hidden from its API, and kept when it replaces the events."""
    only = hooks.create(_name(), "http://ci/only", ["approval.requested"], secret=SECRET)
    mixed = hooks.create(_name(), "http://ci/mixed", ["alias.moved", "approval.decided"], secret=SECRET)
    assert [w.webhook_id for w in client.list_webhooks()] == [mixed.id]
    assert [str(e) for e in client.get_webhook(mixed.id).events] == ["model_version_alias.created"]
    with pytest.raises(RestException, match="conveyor registry webhooks") as caught:
        client.get_webhook(only.id)
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(RestException, match="conveyor registry webhooks"):
        client.update_webhook(only.id, status="DISABLED")
    assert hooks.get(only.name).status == "ACTIVE"

    client.update_webhook(mixed.id, events=["model_version.created"])
    assert hooks.get(mixed.name).events == ("approval.decided", "model_version.created")
    client.delete_webhook(only.id)
    assert [w.name for w in hooks.list_webhooks()] == [mixed.name]


def test_listing_pages_newest_first(client: mlflow.MlflowClient, hooks: WebhookService) -> None:
    for _ in range(3):
        client.create_webhook(_name(), "http://ci/hook", ["model_version.created"], secret=SECRET)
    first = client.list_webhooks(max_results=2)
    second = client.list_webhooks(max_results=2, page_token=first.token)
    listed = [*first, *second]
    assert (len(first), len(second), second.token or None) == (2, 1, None)
    assert {w.name for w in listed} == {w.name for w in hooks.list_webhooks()}
    times = [w.creation_timestamp for w in listed]
    assert times == sorted(times, reverse=True)
    with pytest.raises(RestException, match="max_results must be between 1 and 1000"):
        client.list_webhooks(max_results=1001)
