"""Tables of the metadata store, as SQLAlchemy Core.

Changing anything here needs an Alembic revision under ``migrations/versions``; the test
``tests/store/test_migrations.py`` fails when the two drift apart.

Design notes:

* Runs have an integer surrogate key (``runs.id``) used by every child table, so the big
  tables (metrics) carry a 4-8 byte key instead of a 32-character UUID. ``run_uuid`` is
  the public id.
* ``metrics`` is an append-only time series whose primary key is the whole point, so a
  retried batch is idempotent. SQLite cannot store NaN (it becomes NULL), so NaN is kept
  as ``value=0, is_nan=true`` on every back end.
* ``latest_metrics`` holds one row per (run, key), maintained on every write, so search
  and run listing never scan the time series (MLflow #1571).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

IdType = BigInteger().with_variant(Integer(), "sqlite")

experiments = Table(
    "experiments",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("name", String(500), nullable=False, unique=True),
    Column("artifact_location", Text, nullable=False),
    #: The unit of isolation: runs, metrics and artifacts belong to the experiment's workspace.
    Column("workspace", String(250), nullable=False, server_default=text("'default'"), index=True),
    Column("lifecycle_stage", String(20), nullable=False),
    Column("creation_time", BigInteger, nullable=False),
    Column("last_update_time", BigInteger, nullable=False),
)

experiment_tags = Table(
    "experiment_tags",
    metadata,
    Column("experiment_id", IdType, ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("run_uuid", String(256), nullable=False, unique=True),
    Column("experiment_id", IdType, ForeignKey("experiments.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(250), nullable=False),
    Column("user_id", String(256), nullable=False),
    Column("status", String(20), nullable=False),
    Column("start_time", BigInteger, nullable=False),
    Column("end_time", BigInteger, nullable=True),
    Column("artifact_uri", Text, nullable=False),
    Column("lifecycle_stage", String(20), nullable=False),
    Column("deleted_time", BigInteger, nullable=True),
    Index("ix_runs_experiment_stage_start", "experiment_id", "lifecycle_stage", "start_time"),
)

params = Table(
    "params",
    metadata,
    Column("run_id", IdType, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
    sqlite_with_rowid=False,
)

tags = Table(
    "tags",
    metadata,
    Column("run_id", IdType, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
    sqlite_with_rowid=False,
)

metrics = Table(
    "metrics",
    metadata,
    Column("run_id", IdType, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("step", BigInteger, primary_key=True),
    Column("timestamp", BigInteger, primary_key=True),
    Column("value", Float(precision=53), primary_key=True),
    Column("is_nan", Boolean, primary_key=True),
    sqlite_with_rowid=False,
)

latest_metrics = Table(
    "latest_metrics",
    metadata,
    Column("run_id", IdType, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("value", Float(precision=53), nullable=False),
    Column("is_nan", Boolean, nullable=False),
    Index("ix_latest_metrics_key_value", "key", "value"),
    sqlite_with_rowid=False,
)

datasets = Table(
    "datasets",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("experiment_id", IdType, ForeignKey("experiments.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(500), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("source_type", String(36), nullable=False),
    Column("source", Text, nullable=False),
    Column("schema", Text, nullable=True),
    Column("profile", Text, nullable=True),
    UniqueConstraint("experiment_id", "name", "digest"),
)

inputs = Table(
    "inputs",
    metadata,
    Column("run_id", IdType, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("dataset_id", IdType, ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True),
    #: JSON object of the input's tags (``mlflow.data.context`` and friends).
    Column("tags", Text, nullable=False),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    #: Relative to the artifact root: ``<experiment>/<run>/artifacts/<file>``.
    Column("path", String(1024), nullable=False, unique=True),
    Column("run_id", IdType, ForeignKey("runs.id", ondelete="CASCADE"), nullable=True, index=True),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("created_time", BigInteger, nullable=False),
)

logged_models = Table(
    "logged_models",
    metadata,
    Column("model_id", String(64), primary_key=True),
    Column("experiment_id", IdType, ForeignKey("experiments.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(500), nullable=False),
    Column("artifact_location", Text, nullable=False),
    Column("status", String(20), nullable=False),
    Column("source_run_id", String(256), nullable=True, index=True),
    Column("model_type", String(500), nullable=True),
    Column("creation_time", BigInteger, nullable=False),
    Column("last_updated_time", BigInteger, nullable=False),
    Column("lifecycle_stage", String(20), nullable=False),
)

logged_model_tags = Table(
    "logged_model_tags",
    metadata,
    Column(
        "model_id",
        String(64),
        ForeignKey("logged_models.model_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)

logged_model_params = Table(
    "logged_model_params",
    metadata,
    Column(
        "model_id",
        String(64),
        ForeignKey("logged_models.model_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)

#: Which run output which logged model at which step (MLflow's ``runs/outputs``). A model
#: may be output by several runs, and by one run at several steps; re-recording is a no-op.
run_outputs = Table(
    "run_outputs",
    metadata,
    Column("run_id", IdType, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "model_id",
        String(64),
        ForeignKey("logged_models.model_id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
    Column("step", BigInteger, primary_key=True),
    sqlite_with_rowid=False,
)

# -- pipelines ---------------------------------------------------------------------------
# Pipeline runs are recorded beside tracking runs: a pipeline run owns one tracking run
# (``tracking_run_id``) that its steps log params and metrics into. JSON columns hold
# structures that are read whole and never filtered on (the graph, a step's inputs).

#: One execution of a pipeline: where it ran, on what code, and how it ended.
pipeline_runs = Table(
    "pipeline_runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("pipeline", String(250), nullable=False),
    #: How to load the pipeline again (``path/to/file.py:name`` or ``module:name``).
    Column("target", Text, nullable=False),
    Column("status", String(20), nullable=False),
    Column("params", Text, nullable=False),
    Column("spec", Text, nullable=False),
    Column("executor", String(50), nullable=False),
    Column("executor_address", Text, nullable=True),
    Column("mode", String(20), nullable=False),
    Column("tracking_run_id", String(32), nullable=True),
    Column("resumed_from", String(32), nullable=True),
    Column("schedule_id", String(32), nullable=True),
    Column("host", String(250), nullable=False),
    Column("user", String(250), nullable=False),
    Column("git_commit", String(64), nullable=True),
    Column("git_dirty", Boolean, nullable=True),
    Column("python_version", String(32), nullable=False),
    Column("packages_hash", String(64), nullable=False),
    Column("start_time", BigInteger, nullable=False),
    Column("end_time", BigInteger, nullable=True),
    Column("error", Text, nullable=True),
    Column("workspace", String(250), nullable=False, server_default=text("'default'"), index=True),
    Index("ix_pipeline_runs_pipeline_start_time", "pipeline", "start_time"),
)

#: One node of a pipeline run (a mapped node is one row for all its items).
pipeline_steps = Table(
    "pipeline_steps",
    metadata,
    Column("run_id", String(32), ForeignKey("pipeline_runs.id", ondelete="CASCADE"), primary_key=True),
    Column("node_id", String(250), primary_key=True),
    Column("step_name", String(250), nullable=False),
    #: Index in the run's topological order, so listings keep the graph's order.
    Column("position", Integer, nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("tasks", Integer, nullable=False),
    Column("start_time", BigInteger, nullable=True),
    Column("end_time", BigInteger, nullable=True),
    #: Hex SHA-256 over ``cache_parts``; for a mapped node, over its items' keys.
    Column("cache_key", String(64), nullable=True),
    Column("cache_parts", Text, nullable=True),
    #: The run whose outputs a cache hit reused.
    Column("cached_from", String(32), nullable=True),
    Column("inputs", Text, nullable=True),
    Column("outputs", Text, nullable=True),
    Column("stdout", Text, nullable=True),
    Column("stderr", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("traceback", Text, nullable=True),
    Column("worker", String(250), nullable=True),
    sqlite_with_rowid=False,
)

#: Cache key → the outputs a successful execution produced with it.
pipeline_cache = Table(
    "pipeline_cache",
    metadata,
    Column("cache_key", String(64), primary_key=True),
    Column("outputs", Text, nullable=False),
    Column("run_id", String(32), nullable=False),
    Column("node_id", String(250), nullable=False),
    Column("created", BigInteger, nullable=False),
    sqlite_with_rowid=False,
)

#: Every artifact a step read or wrote, for lineage queries in both directions.
pipeline_artifacts = Table(
    "pipeline_artifacts",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("pipeline_runs.id", ondelete="CASCADE"), nullable=False),
    Column("node_id", String(250), nullable=False),
    #: ``input`` or ``output``.
    Column("role", String(10), nullable=False),
    #: The parameter an input went to, or the output's name (``0``, ``1``… for tuple parts,
    #: ``[i]`` suffixes for mapped items).
    Column("name", String(250), nullable=False),
    Column("path", String(1000), nullable=False, index=True),
    Column("sha256", String(64), nullable=False, index=True),
    Column("serializer", String(50), nullable=False),
    Column("size", BigInteger, nullable=False),
    #: The run that first wrote the bytes (differs from ``run_id`` for cache hits and reads).
    Column("producer_run_id", String(32), nullable=True),
    Index("ix_pipeline_artifacts_run_id_node_id", "run_id", "node_id"),
)

#: A pipeline to run on a cron schedule; ``next_fire_time`` is claimed by compare-and-set.
pipeline_schedules = Table(
    "pipeline_schedules",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(250), nullable=False, unique=True),
    Column("target", Text, nullable=False),
    Column("params", Text, nullable=False),
    Column("cron", String(100), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("executor", String(50), nullable=False),
    Column("executor_address", Text, nullable=True),
    Column("enabled", Boolean, nullable=False),
    Column("next_fire_time", BigInteger, nullable=False),
    Column("last_fire_time", BigInteger, nullable=True),
    Column("last_run_id", String(32), nullable=True),
    Column("created", BigInteger, nullable=False),
)

# -- audit log ---------------------------------------------------------------------------
# Append-only and hash-chained: ``conveyor.store.sql.audit`` is the only writer, and the
# migration adds triggers that refuse UPDATE and DELETE (a later migration that rebuilds
# this table in SQLite batch mode must create them again). States are kept as digests
# only, so the log proves what changed without copying what may be confidential.

#: One mutating action, linked to the record before it by ``prev_hash``.
audit_log = Table(
    "audit_log",
    metadata,
    #: 1, 2, 3…: gap-free, assigned while the appender holds the write lock.
    Column("seq", IdType, primary_key=True, autoincrement=False),
    Column("time", BigInteger, nullable=False),
    Column("actor", String(256), nullable=False),
    #: ``user``, ``service``, ``system`` or ``anonymous``.
    Column("actor_kind", String(20), nullable=False),
    #: The client's address, when the action came over the network.
    Column("source", String(256), nullable=True),
    Column("workspace", String(250), nullable=True),
    #: ``<resource>.<verb>``, e.g. ``run.create``, ``registry.alias.set``.
    Column("action", String(100), nullable=False),
    Column("resource_type", String(50), nullable=False),
    Column("resource_id", String(500), nullable=False),
    #: Hex SHA-256 of the canonical JSON of the state before / after (NULL: none).
    Column("before_digest", String(64), nullable=True),
    Column("after_digest", String(64), nullable=True),
    Column("request_id", String(100), nullable=True),
    #: Small JSON object (canonical: keys sorted, no whitespace).
    Column("details", Text, nullable=True),
    #: ``hash`` of the record ``seq - 1``; 64 zeros for the first record.
    Column("prev_hash", String(64), nullable=False),
    #: Hex SHA-256 of the canonical JSON of every other column.
    Column("hash", String(64), nullable=False),
    # The only secondary index: "what happened to this model/run" is the auditor's common
    # question. Every tracking write appends here, so each index costs every write; time
    # ranges are seq ranges (``AuditLog.seq_before``) and actor filters scan (migration 0009).
    Index("ix_audit_log_resource_type_resource_id", "resource_type", "resource_id"),
)

# Tables kept in modules of their own, on the same metadata; imported last so that they
# may refer to the tables above.
from conveyor.store.sql import (  # noqa: E402, F401
    schema_approvals,
    schema_identity,
    schema_monitoring,
    schema_registry,
    schema_webhooks,
)
