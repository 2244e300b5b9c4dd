"""The metadata store on SQLAlchemy: one implementation for SQLite and PostgreSQL.

The constructor only records the URL; :meth:`SqlStore.open` connects and checks the
schema. Every write runs in one transaction, so a crash or a rejected batch leaves the
database as it was before the request.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import math
import uuid
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping, bindparam, delete, func, insert, select, tuple_, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite

from conveyor.errors import (
    AlreadyExists,
    ExperimentNotFound,
    InvalidInput,
    InvalidState,
    NotFound,
    RunNotFound,
)
from conveyor.store.actor import workspace_for_new_objects
from conveyor.store.base import DEFAULT_EXPERIMENT_ID, MANAGED_ARTIFACT_SCHEME, TrackingStore, now_ms
from conveyor.store.entities import (
    ArtifactRecord,
    DatasetInput,
    Experiment,
    LifecycleStage,
    Metric,
    Page,
    Param,
    Run,
    RunInfo,
    RunStatus,
    Tag,
    ViewType,
)
from conveyor.store.names import generate_run_name
from conveyor.store.sql import audit_hooks as audit
from conveyor.store.sql import migrations, rows, scope
from conveyor.store.sql import schema as s
from conveyor.store.sql import search as sql_search
from conveyor.store.sql.engine import create_engines, ensure_parent_folder, translate_errors

RUN_NAME_TAG = "mlflow.runName"
#: Column order of metric points on the hot write path.
_POINT_COLUMNS = ("run_id", "key", "step", "timestamp", "value", "is_nan")
#: LIMIT for "all of them": both dialects take a bound bigint.
_NO_LIMIT = 2**62


class SqlStore(TrackingStore):
    """Tracking store on any SQLAlchemy URL Conveyor supports (``sqlite:///``, ``postgresql+psycopg://``)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._writer: Engine | None = None
        self._reader: Engine | None = None
        self._compiled: dict[str, Any] = {}

    # -- lifecycle -------------------------------------------------------------------------

    def open(self, *, upgrade: bool = True) -> SqlStore:
        """Connect, and bring an empty or outdated schema to the current revision.

        With ``upgrade=False`` an outdated schema is an error that names
        ``conveyor db upgrade``, for deployments that migrate as a separate step.
        """
        with translate_errors(self.url):
            ensure_parent_folder(self.url)
            self._writer, self._reader = create_engines(self.url)
            migrations.ensure_current(self._writer, self.url, upgrade=upgrade)
        return self

    def close(self) -> None:
        for engine in {self._writer, self._reader} - {None}:
            engine.dispose()  # type: ignore[union-attr]
        self._writer = self._reader = None

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        if self._writer is None:
            self.open()
        assert self._writer is not None
        with translate_errors(self.url), self._writer.begin() as conn:
            yield conn

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        if self._reader is None:
            self.open()
        assert self._reader is not None
        with translate_errors(self.url), self._reader.connect() as conn:
            yield conn

    @property
    def _dialect(self) -> str:
        assert self._writer is not None
        return self._writer.dialect.name

    def _insert(self, table):  # type: ignore[no-untyped-def]
        """A dialect insert that supports ``ON CONFLICT`` (same API on SQLite and PostgreSQL)."""
        return (postgresql.insert if self._dialect == "postgresql" else sqlite.insert)(table)

    # -- experiments -----------------------------------------------------------------------

    def _create_experiment(self, name: str, artifact_location: str | None, tags: dict[str, str]) -> str:
        created = now_ms()
        try:
            with self._write() as conn:
                if self._experiment_row_by_name(conn, name) is not None:
                    raise AlreadyExists(f"Experiment(name={name}) already exists.")
                result = conn.execute(
                    insert(s.experiments).values(
                        name=name,
                        workspace=workspace_for_new_objects(),
                        artifact_location=artifact_location or "",
                        lifecycle_stage=LifecycleStage.ACTIVE,
                        creation_time=created,
                        last_update_time=created,
                    )
                )
                experiment_id = result.inserted_primary_key[0]
                if not artifact_location:
                    conn.execute(
                        update(s.experiments)
                        .where(s.experiments.c.id == experiment_id)
                        .values(artifact_location=f"{MANAGED_ARTIFACT_SCHEME}/{experiment_id}")
                    )
                if tags:
                    conn.execute(
                        insert(s.experiment_tags),
                        [{"experiment_id": experiment_id, "key": k, "value": v} for k, v in tags.items()],
                    )
                after = {"name": name, "artifact_location": artifact_location, "tags": tags}
                audit.record(conn, "experiment.create", "experiment", str(experiment_id), after=after)
        except sa_exc.IntegrityError as exc:
            raise AlreadyExists(f"Experiment(name={name}) already exists.") from exc
        return str(experiment_id)

    def _experiment_row(self, conn: Connection, experiment_id: str) -> RowMapping:
        row = (
            conn.execute(
                select(s.experiments).where(
                    s.experiments.c.id == int(experiment_id), *scope.workspace_is(s.experiments.c.workspace)
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            raise ExperimentNotFound(f"No Experiment with id={experiment_id} exists")
        return row

    @staticmethod
    def _experiment_row_by_name(conn: Connection, name: str) -> RowMapping | None:
        query = select(s.experiments).where(
            s.experiments.c.name == name, *scope.workspace_is(s.experiments.c.workspace)
        )
        return conn.execute(query).mappings().first()

    def _to_experiment(self, conn: Connection, row: RowMapping) -> Experiment:
        tags = rows.load_experiment_tags(conn, [row["id"]])
        return rows.experiment_from_row(row, tags.get(row["id"], {}))

    def _get_experiment(self, experiment_id: str) -> Experiment:
        with self._read() as conn:
            return self._to_experiment(conn, self._experiment_row(conn, experiment_id))

    def _get_experiment_by_name(self, name: str) -> Experiment | None:
        with self._read() as conn:
            row = self._experiment_row_by_name(conn, name)
            return None if row is None else self._to_experiment(conn, row)

    def _search_experiments(
        self,
        view_type: ViewType,
        filter_string: str,
        order_by: list[str],
        max_results: int,
        page_token: str | None,
    ) -> Page[Experiment]:
        offset = decode_page_token(page_token)
        query = sql_search.build_experiment_query(tuple(view_type.stages()), filter_string, order_by)
        with self._read() as conn:
            ids = [r[0] for r in conn.execute(query.offset(offset).limit(max_results + 1))]
            more = len(ids) > max_results
            ids = ids[:max_results]
            found = {
                r["id"]: r
                for r in conn.execute(select(s.experiments).where(s.experiments.c.id.in_(ids))).mappings()
            }
            tags = rows.load_experiment_tags(conn, ids)
            items = [rows.experiment_from_row(found[i], tags.get(i, {})) for i in ids]
        return Page(items, encode_page_token(offset + max_results) if more else None)

    def _rename_experiment(self, experiment_id: str, new_name: str) -> None:
        try:
            with self._write() as conn:
                row = self._experiment_row(conn, experiment_id)
                self._require_active_experiment(row)
                if row["name"] != new_name and self._experiment_row_by_name(conn, new_name) is not None:
                    raise AlreadyExists(f"Experiment(name={new_name}) already exists.")
                conn.execute(
                    update(s.experiments)
                    .where(s.experiments.c.id == row["id"])
                    .values(name=new_name, last_update_time=now_ms())
                )
                before, after = {"name": row["name"]}, {"name": new_name}
                audit.record(
                    conn, "experiment.rename", "experiment", experiment_id, before=before, after=after
                )
        except sa_exc.IntegrityError as exc:
            raise AlreadyExists(f"Experiment(name={new_name}) already exists.") from exc

    @staticmethod
    def _require_active_experiment(row: RowMapping) -> None:
        if row["lifecycle_stage"] != LifecycleStage.ACTIVE:
            raise InvalidState(f"Cannot change experiment {row['id']}: it is deleted. Restore it first.")

    def _delete_experiment(self, experiment_id: str) -> None:
        if experiment_id == DEFAULT_EXPERIMENT_ID:
            raise InvalidInput("Cannot delete the default experiment '0'.")
        when = now_ms()
        with self._write() as conn:
            row = self._experiment_row(conn, experiment_id)
            self._require_active_experiment(row)
            conn.execute(
                update(s.experiments)
                .where(s.experiments.c.id == row["id"])
                .values(lifecycle_stage=LifecycleStage.DELETED, last_update_time=when)
            )
            # Runs deleted with the experiment carry its deletion time, so a restore brings
            # back exactly these and not runs deleted on their own before.
            conn.execute(
                update(s.runs)
                .where(
                    s.runs.c.experiment_id == row["id"],
                    s.runs.c.lifecycle_stage == LifecycleStage.ACTIVE,
                )
                .values(lifecycle_stage=LifecycleStage.DELETED, deleted_time=when)
            )
            _record_stage(conn, "experiment.delete", "experiment", experiment_id, LifecycleStage.DELETED)

    def _restore_experiment(self, experiment_id: str) -> None:
        with self._write() as conn:
            row = self._experiment_row(conn, experiment_id)
            if row["lifecycle_stage"] != LifecycleStage.DELETED:
                raise InvalidState(f"Cannot restore experiment {experiment_id}: it is not deleted.")
            conn.execute(
                update(s.experiments)
                .where(s.experiments.c.id == row["id"])
                .values(lifecycle_stage=LifecycleStage.ACTIVE, last_update_time=now_ms())
            )
            conn.execute(
                update(s.runs)
                .where(
                    s.runs.c.experiment_id == row["id"],
                    s.runs.c.deleted_time == row["last_update_time"],
                )
                .values(lifecycle_stage=LifecycleStage.ACTIVE, deleted_time=None)
            )
            _record_stage(conn, "experiment.restore", "experiment", experiment_id, LifecycleStage.ACTIVE)

    def _set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        with self._write() as conn:
            row = self._experiment_row(conn, experiment_id)
            self._require_active_experiment(row)
            stmt = self._insert(s.experiment_tags).values(experiment_id=row["id"], key=key, value=value)
            conn.execute(
                stmt.on_conflict_do_update(index_elements=["experiment_id", "key"], set_={"value": value})
            )
            details = {"key": key}
            audit.record(
                conn, "experiment.tag.set", "experiment", experiment_id, after={key: value}, details=details
            )

    def _delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        with self._write() as conn:
            row = self._experiment_row(conn, experiment_id)
            self._require_active_experiment(row)
            table = s.experiment_tags
            result = conn.execute(delete(table).where(table.c.experiment_id == row["id"], table.c.key == key))
            if result.rowcount == 0:
                raise NotFound(f"No tag with name: {key} in experiment with id {experiment_id}")
            audit.record(conn, "experiment.tag.delete", "experiment", experiment_id, details={"key": key})

    # -- runs ------------------------------------------------------------------------------

    def _create_run(
        self,
        experiment_id: str,
        user_id: str,
        start_time: int,
        tags: list[Tag],
        run_name: str | None,
    ) -> Run:
        tag_map = {t.key: t.value for t in tags}
        name = run_name or tag_map.get(RUN_NAME_TAG) or generate_run_name()
        if run_name and tag_map.get(RUN_NAME_TAG, run_name) != run_name:
            raise InvalidInput(
                f"Both 'run_name' ({run_name!r}) and tag '{RUN_NAME_TAG}' ({tag_map[RUN_NAME_TAG]!r}) "
                "were given with different values"
            )
        tag_map[RUN_NAME_TAG] = name
        run_uuid = uuid.uuid4().hex
        with self._write() as conn:
            experiment = self._experiment_row(conn, experiment_id)
            if experiment["lifecycle_stage"] != LifecycleStage.ACTIVE:
                raise InvalidState(
                    f"The experiment {experiment_id} must be in the 'active' state. "
                    f"Current state is {experiment['lifecycle_stage']}."
                )
            values = {
                "run_uuid": run_uuid,
                "experiment_id": experiment["id"],
                "name": name,
                "user_id": user_id,
                "status": RunStatus.RUNNING,
                "start_time": start_time,
                "end_time": None,
                "artifact_uri": f"{experiment['artifact_location'].rstrip('/')}/{run_uuid}/artifacts",
                "lifecycle_stage": LifecycleStage.ACTIVE,
            }
            run_pk = conn.execute(insert(s.runs).values(**values)).inserted_primary_key[0]
            conn.execute(
                insert(s.tags),
                [{"run_id": run_pk, "key": k, "value": v} for k, v in tag_map.items()],
            )
            after = {"experiment_id": experiment_id, "name": name, "user_id": user_id, "tags": tag_map}
            audit.record(
                conn, "run.create", "run", run_uuid, after=after, details={"experiment_id": experiment_id}
            )
        info = rows.run_info_from_row({"id": run_pk, **values})  # type: ignore[arg-type]
        return Run(info=info, tags=tag_map)

    @staticmethod
    def _run_row(conn: Connection, run_id: str) -> RowMapping:
        query = select(s.runs).where(s.runs.c.run_uuid == run_id, *scope.runs_visible())
        row = conn.execute(query).mappings().first()
        if row is None:
            raise RunNotFound(f"Run with id={run_id} not found")
        return row

    @classmethod
    def _active_run_row(cls, conn: Connection, run_id: str) -> RowMapping:
        row = cls._run_row(conn, run_id)
        if row["lifecycle_stage"] != LifecycleStage.ACTIVE:
            raise InvalidState(
                f"The run {run_id} must be in the 'active' state. Current state is {row['lifecycle_stage']}."
            )
        return row

    @classmethod
    def _open_run_row(cls, conn: Connection, run_id: str) -> RowMapping:
        """An active run that has not ended: the only kind that accepts metrics and params."""
        row = cls._active_run_row(conn, run_id)
        if RunStatus(row["status"]).is_terminal:
            raise InvalidState(
                f"The run {run_id} is {row['status']}: metrics and params can only be logged to a "
                "run that has not ended. Set its status back to RUNNING to resume it."
            )
        return row

    def _get_run(self, run_id: str) -> Run:
        with self._read() as conn:
            return rows.load_runs(conn, [self._run_row(conn, run_id)])[0]

    def _update_run_info(
        self, run_id: str, status: RunStatus | None, end_time: int | None, run_name: str | None
    ) -> RunInfo:
        with self._write() as conn:
            row = self._active_run_row(conn, run_id)
            values: dict[str, object] = {}
            if status is not None:
                values["status"] = status
                if not status.is_terminal:
                    values["end_time"] = None
            if end_time is not None:
                values["end_time"] = end_time
            if run_name:
                values["name"] = run_name
                self._upsert_tags(conn, row["id"], [Tag(RUN_NAME_TAG, run_name)])
            if values:
                conn.execute(update(s.runs).where(s.runs.c.id == row["id"]).values(**values))
                before = {key: row[key] for key in values}
                audit.record(conn, "run.update", "run", run_id, before=before, after=values)
            return rows.run_info_from_row({**row, **values})  # type: ignore[arg-type]

    def _delete_run(self, run_id: str) -> None:
        with self._write() as conn:
            row = self._active_run_row(conn, run_id)
            conn.execute(
                update(s.runs)
                .where(s.runs.c.id == row["id"])
                .values(lifecycle_stage=LifecycleStage.DELETED, deleted_time=now_ms())
            )
            _record_stage(conn, "run.delete", "run", run_id, LifecycleStage.DELETED)

    def _restore_run(self, run_id: str) -> None:
        with self._write() as conn:
            row = self._run_row(conn, run_id)
            experiment = self._experiment_row(conn, str(row["experiment_id"]))
            if experiment["lifecycle_stage"] != LifecycleStage.ACTIVE:
                raise InvalidState(f"Cannot restore run {run_id}: its experiment is deleted.")
            conn.execute(
                update(s.runs)
                .where(s.runs.c.id == row["id"])
                .values(lifecycle_stage=LifecycleStage.ACTIVE, deleted_time=None)
            )
            _record_stage(conn, "run.restore", "run", run_id, LifecycleStage.ACTIVE)

    # -- logging ---------------------------------------------------------------------------

    def _log_batch(self, run_id: str, metrics: list[Metric], params: list[Param], tags: list[Tag]) -> None:
        with self._write() as conn:
            row = (
                self._open_run_row(conn, run_id)
                if (metrics or params)
                else self._active_run_row(conn, run_id)
            )
            if params:
                self._insert_params(conn, row["id"], run_id, params)
            if tags:
                self._upsert_tags(conn, row["id"], tags)
                if name := next((t.value for t in reversed(tags) if t.key == RUN_NAME_TAG), None):
                    conn.execute(update(s.runs).where(s.runs.c.id == row["id"]).values(name=name))
            if metrics:
                self._insert_metrics(conn, row["id"], metrics)
            audit.record_many(conn, audit.batch_events(run_id, metrics, params, tags))

    def _insert_params(self, conn: Connection, run_pk: int, run_id: str, params: list[Param]) -> None:
        wanted = {p.key: p.value for p in params}
        existing = conn.execute(
            select(s.params.c.key, s.params.c.value).where(
                s.params.c.run_id == run_pk, s.params.c.key.in_(list(wanted))
            )
        ).all()
        for key, old in existing:
            if old != wanted[key]:
                raise InvalidInput(
                    f"Changing param values is not allowed. Param with key='{key}' was already logged "
                    f"with value='{old}' for run ID='{run_id}'. Attempted logging new value '{wanted[key]}'."
                )
        new = [{"run_id": run_pk, "key": k, "value": v} for k, v in wanted.items() if k not in dict(existing)]
        if new:
            conn.execute(insert(s.params), new)

    def _upsert_tags(self, conn: Connection, run_pk: int, tags: list[Tag]) -> None:
        latest = {t.key: t.value for t in tags}
        stmt = self._insert(s.tags)
        stmt = stmt.on_conflict_do_update(
            index_elements=["run_id", "key"], set_={"value": stmt.excluded.value}
        )
        conn.execute(stmt, [{"run_id": run_pk, "key": k, "value": v} for k, v in latest.items()])

    def _insert_metrics(self, conn: Connection, run_pk: int, metrics: list[Metric]) -> None:
        isnan = math.isnan
        points = [
            (run_pk, m.key, m.step, m.timestamp, 0.0 if isnan(m.value) else m.value, isnan(m.value))
            for m in metrics
        ]
        self._execute_many(conn, "insert_metrics", points)
        newest: dict[str, tuple[Any, ...]] = {}
        for point in points:
            current = newest.get(point[1])
            # (step, timestamp, value) decides which point is the latest, as in MLflow.
            if current is None or point[2:5] > current[2:5]:
                newest[point[1]] = point
        self._execute_many(conn, "upsert_latest_metrics", list(newest.values()))

    def _bulk_statement(self, name: str) -> Any:
        if name == "metric_history":
            table = s.metrics
            return (
                select(table.c.step, table.c.timestamp, table.c.value, table.c.is_nan)
                .where(table.c.run_id == bindparam("run_id"), table.c.key == bindparam("key"))
                .order_by(table.c.step, table.c.timestamp, table.c.value)
                .limit(bindparam("limit"))
                .offset(bindparam("offset"))
            )
        if name == "insert_metrics":
            return self._insert(s.metrics).on_conflict_do_nothing()
        table = s.latest_metrics
        stmt = self._insert(table)
        return stmt.on_conflict_do_update(
            index_elements=["run_id", "key"],
            set_={c: stmt.excluded[c] for c in ("step", "timestamp", "value", "is_nan")},
            where=tuple_(table.c.step, table.c.timestamp, table.c.value)
            < tuple_(stmt.excluded.step, stmt.excluded.timestamp, stmt.excluded.value),
        )

    def _hot_statement(self, conn: Connection, name: str) -> Any:
        compiled = self._compiled.get(name)
        if compiled is None:
            compiled = self._compiled[name] = self._bulk_statement(name).compile(dialect=conn.dialect)
        return compiled

    def _execute_many(self, conn: Connection, name: str, rows_: list[tuple[Any, ...]]) -> None:
        """Run a hot-path statement over many rows straight through the driver.

        Rows are tuples in :data:`_POINT_COLUMNS` order. SQLAlchemy's statement building
        and per-row parameter processing cost more than SQLite's insert itself, on one
        point as on 10,000. The statement is still built and compiled by SQLAlchemy, once
        per store, so it stays dialect-correct and parameterised.
        """
        compiled = self._hot_statement(conn, name)
        if not compiled.positional:
            params: list[Any] = [dict(zip(_POINT_COLUMNS, row, strict=True)) for row in rows_]
        elif tuple(compiled.positiontup) == _POINT_COLUMNS:
            params = rows_
        else:
            order = [_POINT_COLUMNS.index(column) for column in compiled.positiontup]
            params = [tuple(row[i] for i in order) for row in rows_]
        conn.exec_driver_sql(str(compiled), params)

    def _driver_rows(self, conn: Connection, name: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Plain tuples from a hot-path query: building result rows costs more than reading 10,000 points."""
        compiled = self._hot_statement(conn, name)
        bound = tuple(params[key] for key in compiled.positiontup) if compiled.positional else params
        cursor = conn.connection.cursor()
        try:
            cursor.execute(str(compiled), bound)
            return cursor.fetchall()
        finally:
            cursor.close()

    def _delete_tag(self, run_id: str, key: str) -> None:
        with self._write() as conn:
            row = self._active_run_row(conn, run_id)
            result = conn.execute(delete(s.tags).where(s.tags.c.run_id == row["id"], s.tags.c.key == key))
            if result.rowcount == 0:
                raise NotFound(f"No tag with name: {key} in run with id {run_id}")
            audit.record(conn, "run.tag.delete", "run", run_id, details={"key": key})

    def _log_inputs(self, run_id: str, inputs: list[DatasetInput]) -> None:
        with self._write() as conn:
            row = self._active_run_row(conn, run_id)
            for item in inputs:
                dataset_id = self._dataset_id(conn, row["experiment_id"], item)
                stmt = self._insert(s.inputs).values(
                    run_id=row["id"],
                    dataset_id=dataset_id,
                    tags=json.dumps(item.tags, sort_keys=True),
                )
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["run_id", "dataset_id"], set_={"tags": stmt.excluded.tags}
                    )
                )
            datasets = [{"name": i.dataset.name, "digest": i.dataset.digest} for i in inputs]
            audit.record(
                conn, "run.inputs.log", "run", run_id, after=datasets, details={"datasets": len(datasets)}
            )

    def _dataset_id(self, conn: Connection, experiment_pk: int, item: DatasetInput) -> int:
        ds = item.dataset
        table = s.datasets
        stmt = self._insert(table).values(
            experiment_id=experiment_pk,
            name=ds.name,
            digest=ds.digest,
            source_type=ds.source_type,
            source=ds.source,
            schema=ds.schema,
            profile=ds.profile,
        )
        conn.execute(stmt.on_conflict_do_nothing())
        return conn.execute(
            select(table.c.id).where(
                table.c.experiment_id == experiment_pk,
                table.c.name == ds.name,
                table.c.digest == ds.digest,
            )
        ).scalar_one()

    # -- reading metrics and searching -----------------------------------------------------

    def _get_metric_history(
        self, run_id: str, key: str, max_results: int | None, page_token: str | None
    ) -> Page[Metric]:
        offset = decode_page_token(page_token)
        limit = _NO_LIMIT if max_results is None else max_results + 1
        with self._read() as conn:
            row = self._run_row(conn, run_id)
            found = self._driver_rows(
                conn, "metric_history", {"run_id": row["id"], "key": key, "limit": limit, "offset": offset}
            )
        more = max_results is not None and len(found) > max_results
        points = [
            Metric(key, rows.metric_value(value, is_nan), timestamp, step)
            for step, timestamp, value, is_nan in found[:max_results]
        ]
        token = encode_page_token(offset + len(points)) if more else None
        return Page(points, token)

    def _search_runs(
        self,
        experiment_ids: list[str],
        filter_string: str,
        view_type: ViewType,
        max_results: int,
        order_by: list[str],
        page_token: str | None,
    ) -> Page[Run]:
        offset = decode_page_token(page_token)
        query = sql_search.build_run_query(
            [int(e) for e in experiment_ids], tuple(view_type.stages()), filter_string, order_by
        )
        with self._read() as conn:
            ids = [r[0] for r in conn.execute(query.offset(offset).limit(max_results + 1))]
            more = len(ids) > max_results
            ids = ids[:max_results]
            found: dict[int, RowMapping] = {}
            for part in rows.chunks(ids):
                for row in conn.execute(select(s.runs).where(s.runs.c.id.in_(part))).mappings():
                    found[row["id"]] = row
            runs = rows.load_runs(conn, [found[i] for i in ids])
        return Page(runs, encode_page_token(offset + max_results) if more else None)

    def _count_runs(self, experiment_ids: list[str], filter_string: str, view_type: ViewType) -> int:
        query = sql_search.build_run_count(
            [int(e) for e in experiment_ids], tuple(view_type.stages()), filter_string
        )
        with self._read() as conn:
            return int(conn.execute(query).scalar_one())

    # -- artifact index --------------------------------------------------------------------

    def _record_artifact(self, record: ArtifactRecord) -> None:
        with self._write() as conn:
            if not scope.visible_artifact_paths(conn, [record.path]):
                raise NotFound(f"No experiment or model owns '{record.path}' in this workspace.")
            run_pk = None if record.run_id is None else self._run_row(conn, record.run_id)["id"]
            values = {
                "path": record.path,
                "run_id": run_pk,
                "size": record.size,
                "sha256": record.sha256,
                "created_time": record.created_time or now_ms(),
            }
            stmt = self._insert(s.artifacts).values(**values)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["path"], set_={k: v for k, v in values.items() if k != "path"}
                )
            )
            after = {"size": record.size, "sha256": record.sha256}
            audit.record(
                conn,
                "artifact.record",
                "artifact",
                record.path,
                after=after,
                details={"run_id": record.run_id},
            )

    def _artifact_query(self):  # type: ignore[no-untyped-def]
        return select(s.artifacts, s.runs.c.run_uuid).outerjoin(s.runs, s.runs.c.id == s.artifacts.c.run_id)

    def _get_artifact_record(self, path: str) -> ArtifactRecord | None:
        with self._read() as conn:
            row = conn.execute(self._artifact_query().where(s.artifacts.c.path == path)).mappings().first()
            if row is None or not scope.visible_artifact_paths(conn, [path]):
                return None
        return rows.artifact_from_row(row, row["run_uuid"])

    def _list_artifact_records(self, prefix: str) -> list[ArtifactRecord]:
        query = (
            self._artifact_query()
            .where(_starts_with(s.artifacts.c.path, prefix))
            .order_by(s.artifacts.c.path)
        )
        with self._read() as conn:
            found = list(conn.execute(query).mappings())
            visible = scope.visible_artifact_paths(conn, (r["path"] for r in found))
        return [rows.artifact_from_row(r, r["run_uuid"]) for r in found if r["path"] in visible]

    def _delete_artifact_records(self, prefix: str) -> int:
        table = s.artifacts
        condition = (table.c.path == prefix) | _starts_with(table.c.path, prefix.rstrip("/") + "/")
        with self._write() as conn:
            matching = list(conn.execute(select(table.c.path).where(condition)).scalars())
            visible = scope.visible_artifact_paths(conn, matching)
            if len(visible) < len(matching):
                condition = table.c.path.in_(sorted(visible))
            removed = conn.execute(delete(table).where(condition)).rowcount if visible else 0
            if removed:
                audit.record(conn, "artifact.delete", "artifact", prefix, details={"records": removed})
            return removed

    # -- garbage collection ----------------------------------------------------------------

    def _deleted_run_ids(self, older_than_ms: int | None) -> list[str]:
        query = select(s.runs.c.run_uuid).where(
            s.runs.c.lifecycle_stage == LifecycleStage.DELETED, *scope.runs_visible()
        )
        if older_than_ms is not None:
            query = query.where(s.runs.c.deleted_time < older_than_ms)
        with self._read() as conn:
            return [r[0] for r in conn.execute(query.order_by(s.runs.c.id))]

    def _hard_delete_run(self, run_id: str) -> None:
        with self._write() as conn:
            row = self._run_row(conn, run_id)
            if row["lifecycle_stage"] != LifecycleStage.DELETED:
                raise InvalidState(f"Run {run_id} must be deleted before it can be removed for good.")
            for table in (
                s.metrics,
                s.latest_metrics,
                s.params,
                s.tags,
                s.inputs,
                s.run_outputs,
                s.artifacts,
            ):
                conn.execute(delete(table).where(table.c.run_id == row["id"]))
            conn.execute(delete(s.runs).where(s.runs.c.id == row["id"]))
            audit.record(conn, "run.purge", "run", run_id, before={"lifecycle_stage": LifecycleStage.DELETED})


def _record_stage(conn: Connection, action: str, kind: str, resource_id: str, stage: LifecycleStage) -> None:
    """Audit a soft delete or a restore: the lifecycle stage is the only field that changes."""
    other = LifecycleStage.ACTIVE if stage == LifecycleStage.DELETED else LifecycleStage.DELETED
    audit.record(
        conn, action, kind, resource_id, before={"lifecycle_stage": other}, after={"lifecycle_stage": stage}
    )


def _starts_with(column, prefix: str):  # type: ignore[no-untyped-def]
    """Prefix match that treats ``%`` and ``_`` in paths literally."""
    return func.substr(column, 1, len(prefix)) == prefix


def encode_page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def decode_page_token(token: str | None) -> int:
    """Offsets behind an opaque token, as MLflow does, so MLflow clients can page through us."""
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise InvalidInput(f"Invalid page token {token[:40]!r}: it was not produced by this server") from None
    if not isinstance(offset, int) or offset < 0:
        raise InvalidInput(f"Invalid page token {token[:40]!r}: bad offset")
    return offset
