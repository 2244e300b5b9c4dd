"""Tables of identity and access: users, service accounts, API tokens, workspaces, roles.

Kept beside :mod:`conveyor.store.sql.schema` on the same ``metadata``; that module imports
this one so that every table is known to Alembic.

No secret is stored: an API token keeps only the SHA-256 of its random part, a password
only its scrypt hash with the salt and cost parameters it was computed with (so the cost
can be raised later without locking anyone out). Principals are never deleted, only
disabled, so the audit log's actor names always resolve.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, ForeignKey, Integer, String, Table

from conveyor.store.sql.schema import IdType, metadata

#: A user or a service account: whoever a request acts as.
principals = Table(
    "principals",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    #: The login name, and the ``actor`` of the audit records it causes.
    Column("name", String(256), nullable=False, unique=True),
    #: ``user`` or ``service``.
    Column("kind", String(20), nullable=False),
    Column("display_name", String(256), nullable=True),
    #: A disabled principal's tokens and password are refused; the row stays for the audit log.
    Column("disabled", Boolean, nullable=False),
    Column("created", BigInteger, nullable=False),
)

#: An API token ``cvy_<id>_<secret>``: found by ``id``, checked against ``token_hash``.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column(
        "principal_id", IdType, ForeignKey("principals.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    #: What the owner calls it (``ci``, ``laptop``), to tell tokens apart when revoking.
    Column("name", String(100), nullable=False),
    #: Hex SHA-256 of the secret part; the secret itself is shown once, at creation.
    Column("token_hash", String(64), nullable=False),
    Column("created", BigInteger, nullable=False),
    #: NULL: never expires.
    Column("expires_at", BigInteger, nullable=True),
    #: Updated at most once a minute, so authentication is not a write per request.
    Column("last_used_at", BigInteger, nullable=True),
    Column("revoked_at", BigInteger, nullable=True),
)

#: A user's password for HTTP basic auth, as an scrypt hash.
passwords = Table(
    "passwords",
    metadata,
    Column("principal_id", IdType, ForeignKey("principals.id", ondelete="CASCADE"), primary_key=True),
    #: ``scrypt``; the column leaves room for another algorithm later.
    Column("algorithm", String(20), nullable=False),
    Column("cost", Integer, nullable=False),
    Column("block_size", Integer, nullable=False),
    Column("parallelism", Integer, nullable=False),
    #: Hex salt and hex derived key.
    Column("salt", String(64), nullable=False),
    Column("digest", String(128), nullable=False),
    Column("updated", BigInteger, nullable=False),
)

#: The unit of isolation; ``default`` exists from the migration on.
workspaces = Table(
    "workspaces",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("name", String(250), nullable=False, unique=True),
    Column("created", BigInteger, nullable=False),
)

#: Who holds which role where; a principal may hold several roles in one workspace.
role_bindings = Table(
    "role_bindings",
    metadata,
    Column("principal_id", IdType, ForeignKey("principals.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "workspace_id", IdType, ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True, index=True
    ),
    #: ``viewer``, ``contributor``, ``approver``, ``deployer``, ``admin`` or ``auditor``.
    Column("role", String(20), primary_key=True),
    Column("created", BigInteger, nullable=False),
)
