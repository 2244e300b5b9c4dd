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
