"""Tables of registry webhooks: subscriptions, and the outbox of deliveries to send.

Kept beside :mod:`conveyor.store.sql.schema` on the same ``metadata``; that module imports
this one so that every table is known to Alembic.

Design notes:

* ``webhook_deliveries`` is a transactional outbox: a registry change inserts its rows in
  the change's own transaction, so an event is never lost (the row commits with the
  change) and never sent for a change that rolled back (the row rolls back with it).
  The dispatcher sends them afterwards, at least once.
* ``secret`` is the shared HMAC key as given: Conveyor must read it back to sign, so a
  hash would not do. The list APIs never return it.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, String, Table, Text

from conveyor.store.sql.schema import metadata

#: One subscription: which events are POSTed to which URL, signed with which secret.
webhooks = Table(
    "webhooks",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(256), nullable=False, unique=True),
    Column("url", Text, nullable=False),
    #: JSON list of event names, e.g. ``["alias.moved"]``.
    Column("events", Text, nullable=False),
    Column("secret", Text, nullable=False),
    #: ``ACTIVE`` or ``DISABLED`` (a disabled webhook gets no new deliveries).
    Column("status", String(20), nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("created", BigInteger, nullable=False),
)

#: One event to POST to one webhook, and how sending it went so far.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("webhook_id", String(32), ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("event", String(64), nullable=False),
    #: The JSON body, exactly as it is sent (and signed).
    Column("payload", Text, nullable=False),
    Column("created", BigInteger, nullable=False),
    #: ``PENDING``, ``DELIVERED`` or ``FAILED`` (attempts exhausted; kept for inspection).
    Column("state", String(20), nullable=False),
    Column("attempts", Integer, nullable=False),
    #: When the dispatcher may (re)try; NULL once delivered or failed.
    Column("next_attempt_at", BigInteger, nullable=True),
    Column("delivered_at", BigInteger, nullable=True),
    #: HTTP status of the last attempt (NULL: no response, see ``last_error``).
    Column("last_status", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Index("ix_webhook_deliveries_state_next_attempt_at", "state", "next_attempt_at"),
    Index("ix_webhook_deliveries_webhook_id_created", "webhook_id", "created"),
)
