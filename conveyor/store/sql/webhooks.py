"""Registry webhooks on the SQL store: subscriptions and the transactional outbox.

:meth:`SqlWebhookStore.enqueue` is an :data:`EventHook`: the registry calls it with its
own write connection, so a delivery row commits (or rolls back) with the change that
caused it. The dispatcher (:mod:`conveyor.registry.webhooks`) claims due rows with a
lease, so several server processes never send one delivery at the same time, and records
each attempt's outcome here.
"""

from __future__ import annotations

import json
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, RowMapping, delete, insert, select, update

from conveyor.errors import AlreadyExists, InvalidInput, NotFound
from conveyor.store.base import now_ms
from conveyor.store.sql import schema_webhooks as w
from conveyor.store.sql.audit import ActorKind, AuditEvent, AuditLog
from conveyor.store.sql.store import SqlStore

#: Called inside a registry change's transaction with (connection, event name, payload).
EventHook = Callable[[Connection, str, dict[str, Any]], None]

#: The events a webhook may subscribe to.
EVENTS = (
    "model_version.created",
    "alias.moved",
    "alias.deleted",
    "approval.requested",
    "approval.decided",
    # Model monitoring (conveyor.store.sql.monitoring_alerts): an alert opened or resolved,
    # and the retrain suggestion of a rule that asks for one.
    "monitoring.alert.opened",
    "monitoring.alert.resolved",
    "monitoring.retrain.suggested",
)
DEFAULT_DELIVERY_LIMIT = 100


class WebhookStatus(StrEnum):
    ACTIVE = "ACTIVE"
    DISABLED = "DISABLED"


class DeliveryState(StrEnum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    #: Attempts exhausted; the row is kept so the failure can be inspected.
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class Webhook:
    """A subscription as the API shows it: never with its secret."""

    id: str
    name: str
    url: str
    events: tuple[str, ...]
    status: WebhookStatus
    created_by: str
    created: int

    def to_json(self) -> dict[str, Any]:
        return {**_fields(self), "events": list(self.events), "status": self.status.value}


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event for one webhook; ``payload`` is the exact body sent and signed."""

    id: str
    webhook_id: str
    event: str
    payload: str
    created: int
    state: DeliveryState
    attempts: int
    next_attempt_at: int | None
    delivered_at: int | None
    last_status: int | None
    last_error: str | None

    def to_json(self) -> dict[str, Any]:
        return {**_fields(self), "payload": json.loads(self.payload), "state": self.state.value}


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how to send a claimed delivery: the only place the secret leaves the store."""

    delivery: Delivery
    url: str
    secret: str


def publish(conn: Connection, hooks: Iterable[EventHook], event: str, payload: dict[str, Any]) -> None:
    """Offer one registry event to every hook, inside the caller's transaction."""
    for hook in hooks:
        hook(conn, event, payload)


class SqlWebhookStore:
    """Webhooks and their deliveries in the metadata database."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store

    # -- subscriptions -----------------------------------------------------------------------

    def create(
        self,
        name: str,
        url: str,
        events: Sequence[str],
        secret: str,
        actor: str,
        status: WebhookStatus = WebhookStatus.ACTIVE,
    ) -> Webhook:
        """Store a subscription (audited, without its secret).

        ``status`` lets a webhook be created DISABLED, so that it gets no delivery before
        its receiver is ready.

        Raises:
            InvalidInput: an empty name or secret, a non-HTTP URL, an unknown event.
            AlreadyExists: a webhook of that name exists.
        """
        values = {
            "id": uuid.uuid4().hex,
            "name": _check_name(name),
            "url": _check_url(url),
            "events": json.dumps(_check_events(events)),
            "secret": _check_secret(secret),
            "status": WebhookStatus(status).value,
            "created_by": actor,
            "created": now_ms(),
        }
        with self.store._write() as conn:
            if _exists(conn, values["name"]):
                raise AlreadyExists(f"Webhook {name!r} already exists")
            conn.execute(insert(w.webhooks).values(**values))
            created = _webhook(values)
            self._audit(conn, actor, "registry.webhook.create", created, None, created.to_json())
        return created

    def get(self, name: str) -> Webhook:
        """Raises: NotFound naming the webhook."""
        with self.store._read() as conn:
            return _webhook(_row(conn, name))

    def get_by_id(self, webhook_id: str) -> Webhook:
        """Raises: NotFound naming the id (MLflow's API addresses webhooks by id, not name)."""
        with self.store._read() as conn:
            return _webhook(_row_by_id(conn, webhook_id))

    def list_webhooks(self) -> list[Webhook]:
        """Every webhook, by name; secrets are not read."""
        with self.store._read() as conn:
            rows = conn.execute(select(w.webhooks).order_by(w.webhooks.c.name)).mappings()
            return [_webhook(row) for row in rows]

    def set_status(self, name: str, status: WebhookStatus, actor: str) -> Webhook:
        """Enable or disable; a disabled webhook gets no new deliveries (pending ones still go)."""
        with self.store._write() as conn:
            before = _webhook(_row(conn, name))
            conn.execute(update(w.webhooks).where(w.webhooks.c.id == before.id).values(status=status.value))
            after = _webhook(_row(conn, name))
            self._audit(conn, actor, "registry.webhook.update", after, before.to_json(), after.to_json())
        return after

    def update(
        self,
        webhook_id: str,
        actor: str,
        *,
        name: str | None = None,
        url: str | None = None,
        events: Sequence[str] | None = None,
        secret: str | None = None,
        status: WebhookStatus | None = None,
    ) -> Webhook:
        """Change the fields given (None: keep) in one audited transaction.

        A new secret is checked and stored like at creation; the audit record says that it
        was rotated, never what it is. Deliveries already queued keep their body but go to
        the URL, signed with the secret, in force when they are sent.

        Raises:
            InvalidInput: a bad name, URL, event or secret; nothing is changed.
            NotFound: no webhook has ``webhook_id``.
            AlreadyExists: another webhook has the new name.
        """
        values = _changes(name, url, events, secret, status)
        with self.store._write() as conn:
            before = _webhook(_row_by_id(conn, webhook_id))
            if values.get("name", before.name) != before.name and _exists(conn, values["name"]):
                raise AlreadyExists(f"Webhook {values['name']!r} already exists")
            if values:
                conn.execute(update(w.webhooks).where(w.webhooks.c.id == webhook_id).values(**values))
            after = _webhook(_row_by_id(conn, webhook_id))
            rotated = {"secret_rotated": True} if secret is not None else None
            self._audit(
                conn, actor, "registry.webhook.update", after, before.to_json(), after.to_json(), rotated
            )
        return after

    def delete(self, name: str, actor: str) -> None:
        """Delete the webhook and its deliveries, sent or not (audited)."""
        with self.store._write() as conn:
            found = _webhook(_row(conn, name))
            deliveries = w.webhook_deliveries
            conn.execute(delete(deliveries).where(deliveries.c.webhook_id == found.id))
            conn.execute(delete(w.webhooks).where(w.webhooks.c.id == found.id))
            self._audit(conn, actor, "registry.webhook.delete", found, found.to_json(), None)

    def secret(self, name: str) -> str:
        """The signing secret, for sending a test event; never part of a listing."""
        with self.store._read() as conn:
            return str(_row(conn, name)["secret"])

    # -- the outbox --------------------------------------------------------------------------

    def enqueue(self, conn: Connection, event: str, payload: dict[str, Any]) -> None:
        """The :data:`EventHook`: one delivery row per active webhook subscribed to ``event``.

        Runs on the caller's connection so the rows share the change's fate.
        """
        now = now_ms()
        rows = conn.execute(
            select(w.webhooks.c.id, w.webhooks.c.events).where(w.webhooks.c.status == WebhookStatus.ACTIVE)
        ).all()
        values = [
            _delivery_values(webhook_id, event, payload, now)
            for webhook_id, events in rows
            if event in json.loads(events)
        ]
        if values:
            conn.execute(insert(w.webhook_deliveries), values)

    def claim(self, limit: int, lease_ms: int) -> list[Target]:
        """Due deliveries, leased for ``lease_ms`` so that no other dispatcher sends them now.

        A dispatcher that dies mid-send leaves the lease to expire: the delivery is retried
        (at least once, never lost).
        """
        table = w.webhook_deliveries
        now = now_ms()
        query = (
            select(table, w.webhooks.c.url, w.webhooks.c.secret)
            .join(w.webhooks, w.webhooks.c.id == table.c.webhook_id)
            .where(table.c.state == DeliveryState.PENDING, table.c.next_attempt_at <= now)
            .order_by(table.c.next_attempt_at, table.c.created)
            .limit(limit)
        )
        with self.store._write() as conn:
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(of=table, skip_locked=True)
            rows = conn.execute(query).mappings().all()
            if rows:
                conn.execute(
                    update(table)
                    .where(table.c.id.in_([row["id"] for row in rows]))
                    .values(next_attempt_at=now + lease_ms)
                )
        return [Target(_delivery(row), row["url"], row["secret"]) for row in rows]

    def record_attempt(
        self, delivery_id: str, status: int | None, error: str | None, retry_at: int | None
    ) -> None:
        """Store an attempt's outcome: delivered (2xx), due again at ``retry_at``, or FAILED (None)."""
        now = now_ms()
        delivered = status is not None and 200 <= status < 300
        state = DeliveryState.DELIVERED if delivered else DeliveryState.FAILED
        if not delivered and retry_at is not None:
            state = DeliveryState.PENDING
        table = w.webhook_deliveries
        with self.store._write() as conn:
            conn.execute(
                update(table)
                .where(table.c.id == delivery_id)
                .values(
                    state=state.value,
                    attempts=table.c.attempts + 1,
                    next_attempt_at=retry_at if state is DeliveryState.PENDING else None,
                    delivered_at=now if delivered else None,
                    last_status=status,
                    last_error=None if delivered else error,
                )
            )

    def deliveries(
        self, name: str | None = None, state: DeliveryState | None = None, limit: int = DEFAULT_DELIVERY_LIMIT
    ) -> list[Delivery]:
        """Deliveries, newest first, of one webhook and/or in one state."""
        table = w.webhook_deliveries
        query = select(table).order_by(table.c.created.desc(), table.c.id).limit(limit)
        if state is not None:
            query = query.where(table.c.state == state.value)
        with self.store._read() as conn:
            if name is not None:
                query = query.where(table.c.webhook_id == _row(conn, name)["id"])
            return [_delivery(row) for row in conn.execute(query).mappings()]

    def _audit(
        self,
        conn: Connection,
        actor: str,
        action: str,
        webhook: Webhook,
        before: Any,
        after: Any,
        details: dict[str, Any] | None = None,
    ) -> None:
        event = AuditEvent(
            actor=actor,
            actor_kind=ActorKind.USER,
            action=action,
            resource_type="webhook",
            resource_id=webhook.name,
            before=before,
            after=after,
            details=details,
        )
        AuditLog(self.store).append(event, conn)


def encode_body(delivery_id: str, event: str, payload: dict[str, Any], created: int) -> str:
    """The JSON body of a delivery; its id and time are inside, so the signature covers them."""
    body = {"id": delivery_id, "event": event, "timestamp": created, "data": payload}
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def _delivery_values(webhook_id: str, event: str, payload: dict[str, Any], now: int) -> dict[str, Any]:
    delivery_id = uuid.uuid4().hex
    return {
        "id": delivery_id,
        "webhook_id": webhook_id,
        "event": event,
        "payload": encode_body(delivery_id, event, payload, now),
        "created": now,
        "state": DeliveryState.PENDING.value,
        "attempts": 0,
        "next_attempt_at": now,
    }


def _row(conn: Connection, name: str) -> RowMapping:
    row = conn.execute(select(w.webhooks).where(w.webhooks.c.name == name)).mappings().first()
    if row is None:
        raise NotFound(f"Webhook {name!r} not found")
    return row


def _row_by_id(conn: Connection, webhook_id: str) -> RowMapping:
    row = conn.execute(select(w.webhooks).where(w.webhooks.c.id == webhook_id)).mappings().first()
    if row is None:
        raise NotFound(f"Webhook with ID {webhook_id!r} not found")
    return row


def _exists(conn: Connection, name: str) -> bool:
    return conn.execute(select(w.webhooks.c.id).where(w.webhooks.c.name == name)).first() is not None


def _changes(
    name: str | None,
    url: str | None,
    events: Sequence[str] | None,
    secret: str | None,
    status: WebhookStatus | None,
) -> dict[str, Any]:
    """The columns an update sets, each checked as at creation; absent (None) fields stay."""
    checks: dict[str, tuple[Any, Callable[[Any], Any]]] = {
        "name": (name, _check_name),
        "url": (url, _check_url),
        "events": (events, lambda given: json.dumps(_check_events(given))),
        "secret": (secret, _check_secret),
        "status": (status, lambda given: WebhookStatus(given).value),
    }
    return {column: check(value) for column, (value, check) in checks.items() if value is not None}


def _webhook(row: Any) -> Webhook:
    return Webhook(
        row["id"],
        row["name"],
        row["url"],
        tuple(json.loads(row["events"])),
        WebhookStatus(row["status"]),
        row["created_by"],
        row["created"],
    )


def _delivery(row: Any) -> Delivery:
    return Delivery(
        row["id"],
        row["webhook_id"],
        row["event"],
        row["payload"],
        row["created"],
        DeliveryState(row["state"]),
        row["attempts"],
        row["next_attempt_at"],
        row["delivered_at"],
        row["last_status"],
        row["last_error"],
    )


def _fields(entity: Any) -> dict[str, Any]:
    return {name: getattr(entity, name) for name in entity.__slots__}


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 256:
        raise InvalidInput("A webhook needs a name of 1 to 256 characters")
    return name.strip()


def _check_url(url: str) -> str:
    """An absolute http(s) URL with a host; private addresses are allowed (intranet CI)."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise InvalidInput(f"Webhook URL {url!r} must start with http:// or https://")
    try:
        host = urllib.parse.urlsplit(url).hostname
    except ValueError as exc:
        raise InvalidInput(f"Webhook URL {url!r} is not a valid URL: {exc}") from None
    if not host:
        raise InvalidInput(f"Webhook URL {url!r} names no host: write it as https://host[:port]/path")
    if any(c.isspace() for c in url):
        raise InvalidInput(f"Webhook URL {url!r} contains white space: percent-encode it (%20)")
    return url


def _check_events(events: Sequence[str]) -> list[str]:
    unknown = sorted(set(events) - set(EVENTS))
    if unknown or not events:
        raise InvalidInput(
            f"Unknown or missing webhook events {unknown or '(none given)'}: choose among {', '.join(EVENTS)}"
        )
    return sorted(set(events))


def _check_secret(secret: str) -> str:
    if not isinstance(secret, str) or len(secret) < 16:
        raise InvalidInput("A webhook secret must be at least 16 characters (it keys the HMAC signature)")
    return secret
