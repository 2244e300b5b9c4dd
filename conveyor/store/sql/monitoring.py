"""Monitoring on the SQL store: reference profile records, monitor runs and their result points.

Every mutation appends its audit record in its own transaction. Rows belong to the
registered model's workspace: reads see only the caller's models, and writes refuse a
model the caller cannot see (``NotFound``, as the registry answers).

Points are written per window: :meth:`SqlMonitorStore.write_points` deletes what the
window held for the version and inserts the new values in one transaction, so a re-run
(after an interruption, or with labels that arrived since) replaces the window's values,
never duplicates them, and a reader sees the old set or the new one.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, delete, func, insert, select, update

from conveyor.errors import InvalidInput, NotFound
from conveyor.store.base import now_ms
from conveyor.store.sql import audit_hooks as audit
from conveyor.store.sql import schema_monitoring as m
from conveyor.store.sql import schema_registry as r
from conveyor.store.sql import scope
from conveyor.store.sql.monitoring_entities import (
    POINT_FIELDS,
    MonitorRun,
    ProfileRecord,
    RunStatus,
    monitor_run,
    point,
    profile_record,
)
from conveyor.store.sql.store import SqlStore

DEFAULT_RUN_LIMIT = 50
MAX_POINTS_RESULTS = 200_000
#: Longest error text kept on a run.
_MAX_ERROR = 4000


def models_visible(column: Any) -> list[ColumnElement[bool]]:
    """``column`` (a model name) names a registered model of the caller's workspace."""
    return scope.owned_by(column, r.registered_models.c.name, r.registered_models.c.workspace)


def check_model(conn: Connection, model: str) -> None:
    """Raises: NotFound when no registered model of the caller's workspace has this name."""
    table = r.registered_models
    query = select(table.c.id).where(table.c.name == model, *scope.workspace_is(table.c.workspace))
    if conn.execute(query).first() is None:
        raise NotFound(f"Registered model {model!r} not found")


class SqlMonitorStore:
    """Profiles, runs and points of model monitoring in the metadata database."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store

    # -- profiles ----------------------------------------------------------------------------

    def save_profile(self, record: ProfileRecord) -> ProfileRecord:
        """Record (or replace) the profile of ``record.model``/``record.version``.

        Raises:
            NotFound: no such registered model in the caller's workspace.
        """
        values = {
            "model": record.model,
            "version": record.version,
            "path": record.path,
            "sha256": record.sha256,
            "size": record.size,
            "rows": record.rows,
            "columns": record.columns,
            "task": record.task,
            "label_column": record.label_column,
            "cbpe": None if record.cbpe is None else json.dumps(record.cbpe, sort_keys=True),
            "created_by": record.created_by,
            "created": record.created,
        }
        table = m.monitor_profiles
        key = and_(table.c.model == record.model, table.c.version == record.version)
        with self.store._write() as conn:
            check_model(conn, record.model)
            before = conn.execute(select(table.c.sha256).where(key)).scalar()
            conn.execute(delete(table).where(key))
            conn.execute(insert(table).values(**values))
            audit.record(
                conn,
                "monitoring.profile.save",
                "model_version",
                f"{record.model}/{record.version}",
                before=None if before is None else {"sha256": before},
                after={"path": record.path, "sha256": record.sha256},
                details={"rows": record.rows, "columns": record.columns, "task": record.task},
            )
        return record

    def get_profile(self, model: str, version: int | str) -> ProfileRecord:
        """Raises: NotFound naming the version and the command that makes a profile."""
        table = m.monitor_profiles
        query = select(table).where(
            table.c.model == model, table.c.version == int(version), *models_visible(table.c.model)
        )
        with self.store._read() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            raise NotFound(
                f"Model {model} version {version} has no reference profile: create one with "
                f"`conveyor monitor profile models:/{model}/{version} --data <reference.parquet>`"
            )
        return profile_record(row)

    # -- runs --------------------------------------------------------------------------------

    def start_run(
        self,
        model: str,
        window_start: int,
        window_end: int,
        *,
        version: str | None,
        alias: str | None,
        created_by: str,
    ) -> MonitorRun:
        """A new RUNNING run of ``model`` (``version``, resolved through ``alias``) over a window."""
        if window_end <= window_start:
            raise InvalidInput(f"A window must end after it starts, got {window_start} .. {window_end}")
        values = {
            "id": uuid.uuid4().hex,
            "model": model,
            "version": version,
            "alias": alias,
            "window_start": window_start,
            "window_end": window_end,
            "status": RunStatus.RUNNING.value,
            "started": now_ms(),
            "created_by": created_by,
        }
        with self.store._write() as conn:
            check_model(conn, model)
            conn.execute(insert(m.monitor_runs).values(**values))
            after = {k: values[k] for k in ("version", "alias", "window_start", "window_end")}
            audit.record(conn, "monitoring.run.start", "monitor_run", values["id"], after=after)
            return monitor_run(_run_row(conn, values["id"]))

    def finish_run(
        self,
        run_id: str,
        status: RunStatus,
        *,
        version: str | None = None,
        rows: int | None = None,
        points: int | None = None,
        report_path: str | None = None,
        error: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> MonitorRun:
        """Mark a run FINISHED or FAILED with what it found."""
        values: dict[str, Any] = {
            "status": RunStatus(status).value,
            "finished": now_ms(),
            "rows": rows,
            "points": points,
            "report_path": report_path,
            "error": None if error is None else error[:_MAX_ERROR],
            "details": json.dumps(dict(details or {}), sort_keys=True, default=str),
        }
        if version is not None:
            values["version"] = version
        table = m.monitor_runs
        with self.store._write() as conn:
            _run_row(conn, run_id)
            conn.execute(update(table).where(table.c.id == run_id).values(**values))
            after = {k: values[k] for k in ("status", "rows", "points", "report_path", "error")}
            audit.record(conn, "monitoring.run.finish", "monitor_run", run_id, after=after)
            return monitor_run(_run_row(conn, run_id))

    def get_run(self, run_id: str) -> MonitorRun:
        """Raises: NotFound (also for another workspace's run)."""
        with self.store._read() as conn:
            return monitor_run(_run_row(conn, run_id))

    def list_runs(self, model: str | None = None, limit: int = DEFAULT_RUN_LIMIT) -> list[MonitorRun]:
        """Runs, newest first, of one model or all the caller can see."""
        table = m.monitor_runs
        query = select(table).where(*models_visible(table.c.model))
        if model is not None:
            query = query.where(table.c.model == model)
        query = query.order_by(table.c.started.desc(), table.c.id).limit(max(1, limit))
        with self.store._read() as conn:
            return [monitor_run(row) for row in conn.execute(query).mappings()]

    # -- points ------------------------------------------------------------------------------

    def write_points(
        self,
        run_id: str,
        *,
        model: str,
        version: str,
        window_start: int,
        window_end: int,
        points: Sequence[Mapping[str, Any]],
    ) -> int:
        """Replace the window's points of ``model``/``version`` with ``points``; returns how many.

        Each point has the fields of :data:`POINT_FIELDS`; its model, version and window
        must be the ones given. NaN values are left out (they carry no information and
        SQLite cannot store them).

        Raises:
            InvalidInput: a point of another series or window, or two points with one key.
        """
        rows = _point_rows(run_id, model, version, window_start, window_end, points)
        table = m.monitor_points
        window = and_(
            table.c.model == model,
            table.c.version == version,
            table.c.window_start == window_start,
            table.c.window_end == window_end,
        )
        with self.store._write() as conn:
            check_model(conn, model)
            replaced = conn.execute(delete(table).where(window)).rowcount
            if rows:
                conn.execute(insert(table), rows)
            details = {"run_id": run_id, "points": len(rows), "replaced": replaced}
            window_id = f"{model}/{version}@{window_start}-{window_end}"
            audit.record(conn, "monitoring.points.write", "monitor_window", window_id, details=details)
        return len(rows)

    def latest_points(self, model: str | None = None) -> list[dict[str, Any]]:
        """Per model and version, every point of its latest window (by end, then start)."""
        table = m.monitor_points
        latest = (
            select(table.c.model, table.c.version, func.max(table.c.window_end).label("end"))
            .where(*models_visible(table.c.model))
            .group_by(table.c.model, table.c.version)
        )
        if model is not None:
            latest = latest.where(table.c.model == model)
        latest = latest.subquery()
        query = (
            select(table)
            .join(
                latest,
                and_(
                    table.c.model == latest.c.model,
                    table.c.version == latest.c.version,
                    table.c.window_end == latest.c.end,
                ),
            )
            .order_by(table.c.model, table.c.version, table.c.window_start, table.c.metric, table.c.feature)
        )
        with self.store._read() as conn:
            found = [point(row) for row in conn.execute(query).mappings()]
        return _latest_start_only(found)

    def points(
        self,
        model: str,
        since: int,
        until: int,
        *,
        metric: str | None = None,
        feature: str | None = None,
        version: str | None = None,
        limit: int = MAX_POINTS_RESULTS,
    ) -> list[dict[str, Any]]:
        """Points of ``model`` whose window ends in ``(since, until]``, oldest window first."""
        table = m.monitor_points
        query = select(table).where(
            table.c.model == model,
            table.c.window_end > since,
            table.c.window_end <= until,
            *models_visible(table.c.model),
        )
        filters = ((table.c.metric, metric), (table.c.feature, feature), (table.c.version, version))
        for column, wanted in filters:
            if wanted is not None:
                query = query.where(column == wanted)
        query = query.order_by(
            table.c.window_end, table.c.window_start, table.c.version, table.c.metric, table.c.feature
        ).limit(max(1, min(limit, MAX_POINTS_RESULTS)))
        with self.store._read() as conn:
            return [point(row) for row in conn.execute(query).mappings()]

    def recent_windows(
        self, model: str, version: str, metric: str, until: int, windows: int
    ) -> dict[int, dict[str, float]]:
        """``{window_end: {feature: value}}`` of ``metric``, the last ``windows`` windows up to ``until``."""
        table = m.monitor_points
        series = and_(table.c.model == model, table.c.version == version, table.c.metric == metric)
        ends = (
            select(table.c.window_end)
            .where(series, table.c.window_end <= until)
            .distinct()
            .order_by(table.c.window_end.desc())
            .limit(windows)
        )
        with self.store._read() as conn:
            chosen = list(conn.execute(ends).scalars())
            if not chosen:
                return {}
            query = select(table.c.window_end, table.c.feature, table.c.value).where(
                series, table.c.window_end.in_(chosen)
            )
            found: dict[int, dict[str, float]] = {end: {} for end in chosen}
            for end, feature, value in conn.execute(query):
                found[end][feature] = value
        return found

    def has_later_window(self, model: str, window_end: int) -> bool:
        """Whether any point of ``model`` belongs to a window ending after ``window_end``."""
        table = m.monitor_points
        query = select(table.c.model).where(table.c.model == model, table.c.window_end > window_end).limit(1)
        with self.store._read() as conn:
            return conn.execute(query).first() is not None


def _run_row(conn: Connection, run_id: str) -> Any:
    table = m.monitor_runs
    query = select(table).where(table.c.id == run_id, *models_visible(table.c.model))
    row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFound(f"Monitor run {run_id!r} not found")
    return row


def _point_rows(
    run_id: str,
    model: str,
    version: str,
    window_start: int,
    window_end: int,
    points: Sequence[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    expected = {"model": model, "version": version, "window_start": window_start, "window_end": window_end}
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for given in points:
        values = {name: given[name] for name in POINT_FIELDS}
        wrong = {k: values[k] for k, v in expected.items() if values[k] != v}
        if wrong:
            name = f"{values['metric']}[{values['feature']}]"
            raise InvalidInput(f"Point {name} is not of this window: {wrong}")
        value = float(values["value"])
        if math.isnan(value):
            continue
        key = (values["metric"], values["feature"])
        if key in rows:
            raise InvalidInput(f"Two points for {key[0]}[{key[1]}] in one window")
        rows[key] = {**values, "value": value, "estimated": bool(values["estimated"]), "run_id": run_id}
    return list(rows.values())


def _latest_start_only(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Of windows sharing the latest end (a 1 h and a 24 h monitor), keep the latest start."""
    starts: dict[tuple[str, str], int] = {}
    for item in found:
        key = (item["model"], item["version"])
        starts[key] = max(starts.get(key, item["window_start"]), item["window_start"])
    return [p for p in found if p["window_start"] == starts[(p["model"], p["version"])]]
