"""Registry webhooks: signed JSON POSTs of registry events, sent from a transactional outbox.

A registry change (version created, alias moved or deleted, approval requested or
decided) queues one delivery per subscribed webhook in its own transaction (see
:mod:`conveyor.store.sql.webhooks`). :class:`WebhookDispatcher` then sends them: a
``POST`` of the JSON body with the headers ``X-Conveyor-Event``, ``X-Conveyor-Delivery``,
``X-Conveyor-Timestamp`` and ``X-Conveyor-Signature: sha256=<hex HMAC-SHA256 of the raw
body, keyed with the webhook's secret>``. A 2xx answer delivers it; anything else (or no
answer) is retried with exponential backoff until ``max_attempts``, then kept as FAILED.
Delivery is at least once: receivers should de-duplicate by ``X-Conveyor-Delivery``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

import httpx

from conveyor.errors import InvalidInput
from conveyor.store.base import now_ms
from conveyor.store.sql.webhooks import (
    EVENTS,
    Delivery,
    DeliveryState,
    SqlWebhookStore,
    Target,
    Webhook,
    WebhookStatus,
    encode_body,
)
from conveyor.tracking.context import current_user

if TYPE_CHECKING:
    from conveyor.store.sql.store import SqlStore

__all__ = [
    "EVENTS",
    "Delivery",
    "DeliveryState",
    "Webhook",
    "WebhookDispatcher",
    "WebhookService",
    "WebhookStatus",
    "sign",
]

log = logging.getLogger(__name__)

#: Attempts before a delivery is given up (kept as FAILED).
MAX_ATTEMPTS = 8
#: Delay before the first retry; each further retry waits twice as long, up to the cap.
BASE_DELAY_MS = 10_000
MAX_DELAY_MS = 3_600_000
#: How long a claimed delivery is reserved for the dispatcher that claimed it.
LEASE_MS = 60_000
TIMEOUT_S = 10.0
#: The event a test POST carries; not queued, never retried.
TEST_EVENT = "webhook.test"


def sign(secret: str, body: bytes) -> str:
    """The ``X-Conveyor-Signature`` value: receivers recompute it to trust the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def retry_delay_ms(attempts: int, base_ms: int = BASE_DELAY_MS) -> int:
    """Backoff after ``attempts`` failed attempts: base, 2 * base, 4 * base... capped at an hour."""
    return min(base_ms * 2 ** max(attempts - 1, 0), MAX_DELAY_MS)


class WebhookService:
    """Create, list, delete and test webhooks; inspect their deliveries."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self.records = SqlWebhookStore(store)

    def create(
        self,
        name: str,
        url: str,
        events: Sequence[str] = EVENTS,
        *,
        secret: str,
        actor: str | None = None,
        status: WebhookStatus | str = WebhookStatus.ACTIVE,
    ) -> Webhook:
        """Subscribe ``url`` to ``events``; ``secret`` keys the signature (returned by nothing).

        Raises:
            InvalidInput: a bad name, URL, event or a secret under 16 characters.
            AlreadyExists: a webhook of that name exists.
        """
        wanted = WebhookStatus(str(status).upper())
        return self.records.create(name, url, events, secret, actor or current_user(), wanted)

    def list_webhooks(self) -> list[Webhook]:
        """Every webhook, without secrets."""
        return self.records.list_webhooks()

    def get(self, name: str) -> Webhook:
        return self.records.get(name)

    def get_by_id(self, webhook_id: str) -> Webhook:
        """The webhook with that id (what MLflow's API addresses), without its secret."""
        return self.records.get_by_id(webhook_id)

    def update(
        self,
        webhook_id: str,
        *,
        name: str | None = None,
        url: str | None = None,
        events: Sequence[str] | None = None,
        secret: str | None = None,
        status: WebhookStatus | str | None = None,
        actor: str | None = None,
    ) -> Webhook:
        """Rename, re-target, re-subscribe, rotate the secret or (dis)enable, in one audited change.

        Raises:
            InvalidInput: a bad value; nothing is changed.
            NotFound: no webhook has that id.
            AlreadyExists: the new name is taken.
        """
        wanted = None if status is None else WebhookStatus(str(status).upper())
        return self.records.update(
            webhook_id,
            actor or current_user(),
            name=name,
            url=url,
            events=events,
            secret=secret,
            status=wanted,
        )

    def set_status(self, name: str, status: WebhookStatus | str, *, actor: str | None = None) -> Webhook:
        """Disable a webhook (it gets no new deliveries) or enable it again."""
        return self.records.set_status(name, WebhookStatus(str(status).upper()), actor or current_user())

    def delete(self, name: str, *, actor: str | None = None) -> None:
        """Delete the webhook and its deliveries; audited."""
        self.records.delete(name, actor or current_user())

    def deliveries(
        self, name: str | None = None, state: DeliveryState | str | None = None, limit: int = 100
    ) -> list[Delivery]:
        """Deliveries, newest first: what was sent, how often, and the last answer."""
        wanted = None if state is None else DeliveryState(str(state).upper())
        return self.records.deliveries(name, wanted, limit)

    def test(
        self, name: str, client: httpx.Client | None = None, *, event: str | None = None
    ) -> tuple[int | None, str | None]:
        """POST a signed ``webhook.test`` event now, outside the outbox: (status, error).

        ``event`` names the subscription being tried (MLflow's ``test_webhook`` takes one);
        it travels in the test's data so the receiver can tell which path it exercised.

        Raises:
            InvalidInput: ``event`` is not one of :data:`EVENTS`.
            NotFound: no webhook of that name.
        """
        found = self.records.get(name)
        data = {"webhook": found.name}
        if event is not None:
            if event not in EVENTS:
                raise InvalidInput(f"Unknown webhook event {event!r}: choose among {', '.join(EVENTS)}")
            data["event"] = event
        delivery_id = uuid.uuid4().hex
        body = encode_body(delivery_id, TEST_EVENT, data, now_ms())
        with client or httpx.Client(timeout=TIMEOUT_S) as http:
            return post(http, found.url, self.records.secret(name), TEST_EVENT, delivery_id, body)


def post(
    client: httpx.Client, url: str, secret: str, event: str, delivery_id: str, body: str
) -> tuple[int | None, str | None]:
    """One signed POST: the answer's status, and an error text unless it was 2xx."""
    raw = body.encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Conveyor-Webhooks",
        "X-Conveyor-Event": event,
        "X-Conveyor-Delivery": delivery_id,
        "X-Conveyor-Timestamp": str(now_ms() // 1000),
        "X-Conveyor-Signature": sign(secret, raw),
    }
    try:
        response = client.post(url, content=raw, headers=headers)
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"
    if response.is_success:
        return response.status_code, None
    return response.status_code, f"HTTP {response.status_code}: {response.text[:500]}"


class WebhookDispatcher:
    """Sends due deliveries: :meth:`dispatch_once` for tests and the CLI, a thread in the server.

    Args:
        store: The SQL metadata store whose outbox is sent.
        client: The HTTP client (tests pass one with a transport); one is made otherwise.
        max_attempts: Attempts before a delivery is kept as FAILED.
        base_delay_ms: First retry delay; doubled on each further failure.
        interval_s: How often the background thread looks for due deliveries.
    """

    def __init__(
        self,
        store: SqlStore,
        *,
        client: httpx.Client | None = None,
        max_attempts: int = MAX_ATTEMPTS,
        base_delay_ms: int = BASE_DELAY_MS,
        interval_s: float = 2.0,
    ) -> None:
        self.records = SqlWebhookStore(store)
        self.client = client
        self.max_attempts = max_attempts
        self.base_delay_ms = base_delay_ms
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def dispatch_once(self, limit: int = 50) -> int:
        """Send every due delivery (up to ``limit``) once; returns how many were attempted."""
        targets = self.records.claim(limit, LEASE_MS)
        if not targets:
            return 0
        if self.client is not None:
            self._send_all(self.client, targets)
        else:
            with httpx.Client(timeout=TIMEOUT_S) as client:
                self._send_all(client, targets)
        return len(targets)

    def start(self) -> None:
        """Dispatch in a daemon thread until :meth:`stop` (the server's lifespan calls both)."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="conveyor-webhooks", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.dispatch_once()
            except Exception:  # the database may be briefly away; never kill the server's thread
                log.exception("Webhook dispatch failed; retrying in %.0f s", self.interval_s)
            self._stop.wait(self.interval_s)

    def _send_all(self, client: httpx.Client, targets: list[Target]) -> None:
        for target in targets:
            delivery = target.delivery
            status, error = post(
                client, target.url, target.secret, delivery.event, delivery.id, delivery.payload
            )
            self.records.record_attempt(delivery.id, status, error, self._retry_at(delivery, error))

    def _retry_at(self, delivery: Delivery, error: str | None) -> int | None:
        """When to try again after this attempt; None when delivered or out of attempts."""
        attempts = delivery.attempts + 1
        if error is None or attempts >= self.max_attempts:
            return None
        return now_ms() + retry_delay_ms(attempts, self.base_delay_ms)
