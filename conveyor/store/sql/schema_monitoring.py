"""Tables of model monitoring: reference profiles, monitor runs, result points, alert rules and alerts.

Kept beside :mod:`conveyor.store.sql.schema` on the same ``metadata``; that module imports
this one so that every table is known to Alembic.

Design notes:

* Rows name their model by name (``model``), as :class:`~conveyor.monitoring.points.MonitorPoint`
  does, and belong to the registered model's workspace: queries filter on
  ``model IN (names of the caller's workspace)``.
* ``monitor_points`` is keyed by the window and the series (model, version, window, metric,
  feature), so a re-run of a window replaces its values instead of adding to them.
* ``monitor_alerts.open_key`` is set while an alert is OPEN and NULL once it is resolved; a
  unique constraint on it keeps one open alert per rule and feature on every database (NULLs
  never collide), without a partial index.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Float, Index, Integer, String, Table, Text

from conveyor.store.sql.schema import metadata

#: The reference profile of one model version; the profile itself is an artifact.
monitor_profiles = Table(
    "monitor_profiles",
    metadata,
    Column("model", String(256), primary_key=True),
    Column("version", Integer, primary_key=True),
    #: ``registry/<model>/versions/<v>/profile.json``, relative to the artifact root.
    Column("path", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("columns", Integer, nullable=False),
    #: ``classification``, ``regression`` or NULL (no prediction profiled).
    Column("task", String(20), nullable=True),
    Column("label_column", String(250), nullable=True),
    #: ``CBPE.to_dict()`` as JSON when labels and probabilities were given; else NULL.
    Column("cbpe", Text, nullable=True),
    Column("created_by", String(256), nullable=False),
    Column("created", BigInteger, nullable=False),
)

#: One monitor run over one window; a re-run of the window is a new row.
monitor_runs = Table(
    "monitor_runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("model", String(256), nullable=False),
    #: NULL when the run failed before the version was resolved.
    Column("version", String(64), nullable=True),
    Column("alias", String(255), nullable=True),
    Column("window_start", BigInteger, nullable=False),
    Column("window_end", BigInteger, nullable=False),
    #: ``RUNNING``, ``FINISHED`` or ``FAILED``.
    Column("status", String(20), nullable=False),
    Column("started", BigInteger, nullable=False),
    Column("finished", BigInteger, nullable=True),
    Column("rows", BigInteger, nullable=True),
    Column("points", Integer, nullable=True),
    Column("report_path", Text, nullable=True),
    Column("error", Text, nullable=True),
    #: Small JSON object: label counts, performance kind, skipped steps.
    Column("details", Text, nullable=True),
    Column("created_by", String(256), nullable=False),
    Index("ix_monitor_runs_model_started", "model", "started"),
)

#: One value of one metric for one window: the time series ``monitor show`` and the exporter read.
monitor_points = Table(
    "monitor_points",
    metadata,
    Column("model", String(256), primary_key=True),
    Column("version", String(64), primary_key=True),
    Column("window_start", BigInteger, primary_key=True),
    Column("window_end", BigInteger, primary_key=True),
    Column("metric", String(64), primary_key=True),
    #: "" for dataset-level metrics.
    Column("feature", String(500), primary_key=True),
    Column("alias", String(255), nullable=False),
    Column("value", Float(precision=53), nullable=False),
    Column("estimated", Boolean, nullable=False),
    #: The run that wrote the value last.
    Column("run_id", String(32), nullable=False),
    Index("ix_monitor_points_model_window_end", "model", "window_end"),
)

#: An alert rule: ``metric op threshold`` on a model's points, for ``for_runs`` windows in a row.
monitor_alert_rules = Table(
    "monitor_alert_rules",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("model", String(256), nullable=False),
    Column("metric", String(64), nullable=False),
    #: "" matches every feature of a per-column metric (one alert per feature).
    Column("feature", String(500), nullable=False),
    Column("op", String(2), nullable=False),
    Column("threshold", Float(precision=53), nullable=False),
    #: ``info``, ``warning`` or ``critical``.
    Column("severity", String(20), nullable=False),
    Column("for_runs", Integer, nullable=False),
    Column("suggest_retrain", Boolean, nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("created", BigInteger, nullable=False),
    Index("ix_monitor_alert_rules_model", "model"),
)

#: An alert: opened when a rule's condition held, resolved when it cleared.
monitor_alerts = Table(
    "monitor_alerts",
    metadata,
    Column("id", String(32), primary_key=True),
    #: No foreign key: an alert outlives its rule's removal (the removal resolves it).
    Column("rule_id", String(32), nullable=False),
    Column("model", String(256), nullable=False),
    Column("version", String(64), nullable=False),
    Column("metric", String(64), nullable=False),
    Column("feature", String(500), nullable=False),
    Column("severity", String(20), nullable=False),
    #: ``OPEN`` or ``RESOLVED``.
    Column("state", String(20), nullable=False),
    #: SHA-256 of (rule, feature) while OPEN, NULL once resolved: one open alert per pair.
    Column("open_key", String(64), nullable=True, unique=True),
    Column("opened_at", BigInteger, nullable=False),
    Column("resolved_at", BigInteger, nullable=True),
    Column("last_value", Float(precision=53), nullable=True),
    Column("last_window_end", BigInteger, nullable=False),
    Column("last_run_id", String(32), nullable=True),
    Index("ix_monitor_alerts_model_opened_at", "model", "opened_at"),
)
