"""Tables of approvals (four eyes): alias policies and promotion requests.

Kept beside :mod:`conveyor.store.sql.schema` on the same ``metadata``; that module imports
this one so that every table is known to Alembic.

Design notes:

* ``alias_policies.scope`` is ``*`` (the default for every model) or a registered model's
  id as text, so a policy follows its model through a rename. Without a row, the built-in
  default applies: ``champion`` and ``production`` are protected.
* ``approval_requests`` rows are never deleted: rejected and expired requests stay, so an
  auditor sees every promotion that was asked for, not only those that happened. The
  model's name is kept as it was when the request was made.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, String, Table, Text, false

from conveyor.store.sql.schema import IdType, metadata

#: What moving an alias needs: an approval (``protected``) and which evidence.
alias_policies = Table(
    "alias_policies",
    metadata,
    #: ``*`` or the registered model's id.
    Column("scope", String(32), primary_key=True),
    Column("alias", String(255), primary_key=True),
    Column("protected", Boolean, nullable=False),
    #: JSON list of ``{"metric", "op", "value", "dataset"}`` thresholds.
    Column("metrics", Text, nullable=False),
    Column("require_model_card", Boolean, nullable=False),
    #: The source run's reproducibility grade must be A (clean tree, pinned environment).
    Column("require_reproducible", Boolean, nullable=False, server_default=false()),
    #: A pipeline step that must have succeeded in the run that produced the version.
    Column("require_validation_step", String(250), nullable=True),
    #: Hours after which a pending request expires.
    Column("expiry_hours", Integer, nullable=False),
    Column("updated_by", String(256), nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

#: One request to point a protected alias at a version, and what became of it.
approval_requests = Table(
    "approval_requests",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("model_id", IdType, nullable=False),
    Column("model_name", String(256), nullable=False),
    Column("version", Integer, nullable=False),
    Column("alias", String(255), nullable=False),
    Column("reason", Text, nullable=False),
    Column("requested_by", String(256), nullable=False),
    Column("requested_at", BigInteger, nullable=False),
    #: ``PENDING``, ``APPROVED``, ``REJECTED``, ``EXPIRED`` or ``APPLIED``.
    Column("status", String(20), nullable=False),
    Column("decided_by", String(256), nullable=True),
    Column("decided_at", BigInteger, nullable=True),
    Column("decision_reason", Text, nullable=True),
    #: JSON: each check the policy asked for, the value found and whether it passed.
    Column("evidence", Text, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("applied_at", BigInteger, nullable=True),
    Index("ix_approval_requests_status_requested_at", "status", "requested_at"),
    Index("ix_approval_requests_model_id_alias", "model_id", "alias"),
)
