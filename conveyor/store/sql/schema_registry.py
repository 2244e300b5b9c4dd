"""Tables of the model registry (registered models, versions, aliases and their history).

Kept beside :mod:`conveyor.store.sql.schema` on the same ``metadata``; that module imports
this one so that every table is known to Alembic.

Design notes:

* Child tables refer to ``registered_models.id``, not the name, so a rename touches one
  row and the history of a renamed model stays attached to it.
* Version numbers come from ``registered_models.next_version``, bumped while the model's
  row is locked; deleting a version only flags it, so a number is never handed out twice.
* ``model_alias_events`` is append-only and has no foreign key: the history of a deleted
  model outlives it (``model_name`` keeps the name it had at the time of the move).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)

from conveyor.store.sql.schema import IdType, metadata

#: A named model: the unit that owns versions, aliases and (later) approval policies.
registered_models = Table(
    "registered_models",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("name", String(256), nullable=False, unique=True),
    Column("description", Text, nullable=True),
    Column("owner", String(256), nullable=True),
    Column("workspace", String(250), nullable=False, server_default=text("'default'")),
    #: The number the next version gets; only ever increases.
    Column("next_version", Integer, nullable=False, server_default=text("1")),
    Column("creation_time", BigInteger, nullable=False),
    Column("last_updated_time", BigInteger, nullable=False),
)

registered_model_tags = Table(
    "registered_model_tags",
    metadata,
    Column("model_id", IdType, ForeignKey("registered_models.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)

#: One registered version; ``source``, ``run_id`` and ``model_digest`` never change.
model_versions = Table(
    "model_versions",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("model_id", IdType, ForeignKey("registered_models.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("source", Text, nullable=False),
    Column("run_id", String(32), nullable=True),
    Column("run_link", Text, nullable=True),
    #: SHA-256 of the model (its manifest digest); NULL only while not READY.
    Column("model_digest", String(64), nullable=True),
    #: ``READY``, ``PENDING_REGISTRATION`` or ``FAILED_REGISTRATION``.
    Column("status", String(30), nullable=False),
    Column("status_message", Text, nullable=True),
    #: MLflow's deprecated stage: ``None``, ``Staging``, ``Production`` or ``Archived``.
    Column("current_stage", String(20), nullable=False, server_default=text("'None'")),
    Column("description", Text, nullable=True),
    Column("created_by", String(256), nullable=True),
    Column("creation_time", BigInteger, nullable=False),
    Column("last_updated_time", BigInteger, nullable=False),
    Column("deleted", Boolean, nullable=False, server_default=false()),
    UniqueConstraint("model_id", "version"),
    Index("ix_model_versions_run_id", "run_id"),
)

model_version_tags = Table(
    "model_version_tags",
    metadata,
    Column("version_id", IdType, ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)

#: Where each alias points now; its past lives in ``model_alias_events``.
model_aliases = Table(
    "model_aliases",
    metadata,
    Column("model_id", IdType, ForeignKey("registered_models.id", ondelete="CASCADE"), primary_key=True),
    Column("alias", String(255), primary_key=True),
    Column("version", Integer, nullable=False),
)

#: Every move of an alias, append-only: set (``new_version``), moved, or removed (NULL).
model_alias_events = Table(
    "model_alias_events",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("model_id", IdType, nullable=False),
    Column("model_name", String(256), nullable=False),
    Column("alias", String(255), nullable=False),
    Column("old_version", Integer, nullable=True),
    Column("new_version", Integer, nullable=True),
    Column("actor", String(256), nullable=False),
    Column("time", BigInteger, nullable=False),
    Column("reason", Text, nullable=True),
    #: The approval that allowed the move, for protected aliases.
    Column("approval_id", String(64), nullable=True),
    #: The audit record written in the same transaction.
    Column("audit_seq", BigInteger, nullable=True),
    Index("ix_model_alias_events_model_id_alias_time", "model_id", "alias", "time"),
)
