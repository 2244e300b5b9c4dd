"""The record of pipeline runs: runs, their steps, the output cache and artifact rows.

The engine writes here in few, large transactions: a run and all of its step rows when it
starts, then batches of step changes (with their artifact rows and cache entries) as steps
finish, then the run's end. Every batch is one transaction, so a crash or a kill leaves the
record at the last batch, never between a step's status and its outputs.

JSON columns hold what is read whole and never filtered on; this module encodes and
decodes them so callers see dicts and lists.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

import orjson
from sqlalchemy import Compiled, Connection, RowMapping, bindparam, delete, insert, select, update

from conveyor.errors import InvalidInput, NotFound
from conveyor.store.actor import DEFAULT_WORKSPACE, workspace_for_new_objects
from conveyor.store.sql import audit_hooks as audit
from conveyor.store.sql import schema as s
from conveyor.store.sql import scope
from conveyor.store.sql.rows import IN_CHUNK
from conveyor.store.sql.store import SqlStore

#: Shortest run id prefix accepted where a run id is expected.
MIN_PREFIX = 6


class RunState(StrEnum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class StepState(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    #: Outputs reused from an earlier run (``cached_from``) without running the step.
    CACHED = "CACHED"
    FAILED = "FAILED"
    #: Not run because a step it reads from failed, or the run stopped on the first failure.
    SKIPPED = "SKIPPED"
    CANCELLED = "CANCELLED"

    @property
    def done(self) -> bool:
        """Whether the step's outputs exist (a resumed run reuses them)."""
        return self in (StepState.SUCCEEDED, StepState.CACHED)


_JSON_RUN_FIELDS = ("params", "spec")
_JSON_STEP_FIELDS = ("cache_parts", "inputs", "outputs")


@dataclass(frozen=True)
class PipelineRun:
    """One execution of a pipeline (a row of ``pipeline_runs``)."""

    id: str
    pipeline: str
    target: str
    status: RunState
    params: dict[str, Any]
    spec: dict[str, Any]
    executor: str
    mode: str
    host: str
    user: str
    python_version: str
    packages_hash: str
    start_time: int
    executor_address: str | None = None
    tracking_run_id: str | None = None
    resumed_from: str | None = None
    schedule_id: str | None = None
    git_commit: str | None = None
    git_dirty: bool | None = None
    end_time: int | None = None
    error: str | None = None
    #: Set by the store when the run is created: the creator's workspace.
    workspace: str = DEFAULT_WORKSPACE


@dataclass(frozen=True)
class StepRecord:
    """One node of a pipeline run (a row of ``pipeline_steps``)."""

    run_id: str
    node_id: str
    step_name: str
    position: int
    status: StepState
    attempts: int = 0
    tasks: int = 1
    start_time: int | None = None
    end_time: int | None = None
    cache_key: str | None = None
    cache_parts: dict[str, Any] | None = None
    cached_from: str | None = None
    inputs: dict[str, Any] | None = None
    outputs: Any = None
    stdout: str | None = None
    stderr: str | None = None
    error: str | None = None
    traceback: str | None = None
    worker: str | None = None

    @property
    def duration_ms(self) -> int | None:
        if self.start_time is None or self.end_time is None:
            return None
        return self.end_time - self.start_time


@dataclass(frozen=True)
class ArtifactRow:
    """An artifact a step read (``role="input"``) or wrote (``role="output"``)."""

    run_id: str
    node_id: str
    role: str
    name: str
    path: str
    sha256: str
    serializer: str
    size: int
    producer_run_id: str | None = None


@dataclass(frozen=True)
class CacheEntry:
    """What a cache key produced: a JSON-ready description of the outputs."""

    cache_key: str
    outputs: Any
    run_id: str
    node_id: str
    created: int


@dataclass
class StepChanges:
    """Everything one flush writes: changed steps (whole rows), artifacts, cache entries."""

    steps: list[StepRecord] = field(default_factory=list)
    artifacts: list[ArtifactRow] = field(default_factory=list)
    cache: list[CacheEntry] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.steps or self.artifacts or self.cache)


class PipelineRecords:
    """Reads and writes the pipeline tables of a SQL store."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self._compiled: dict[str, Compiled] = {}

    # -- writing ---------------------------------------------------------------------------

    def create_run(self, run: PipelineRun, steps: Sequence[StepRecord]) -> None:
        """Insert the run and every step row (normally PENDING) in one transaction."""
        with self.store._write() as conn:
            values = {**_run_values(run), "workspace": workspace_for_new_objects()}
            conn.execute(insert(s.pipeline_runs).values(values))
            if steps:
                conn.execute(insert(s.pipeline_steps), [_step_values(step) for step in steps])
            after = {
                "pipeline": run.pipeline,
                "target": run.target,
                "params": run.params,
                "executor": run.executor,
            }
            details = {"pipeline": run.pipeline, "steps": len(steps), "schedule_id": run.schedule_id}
            audit.record(conn, "pipeline_run.create", "pipeline_run", run.id, after=after, details=details)

    def apply(self, changes: StepChanges) -> None:
        """Write a batch of step changes, artifact rows and cache entries atomically."""
        if not changes:
            return
        with self.store._write() as conn:
            self._update_steps(conn, changes.steps)
            if changes.artifacts:
                conn.execute(insert(s.pipeline_artifacts), [vars_of(a) for a in changes.artifacts])
            if changes.cache:
                self._upsert_cache(conn, changes.cache)

    def finish_run(self, run_id: str, status: RunState, end_time: int, error: str | None = None) -> None:
        with self.store._write() as conn:
            after = {"status": status.value, "end_time": end_time, "error": error}
            conn.execute(update(s.pipeline_runs).where(s.pipeline_runs.c.id == run_id).values(**after))
            details = {"status": status.value}
            audit.record(conn, "pipeline_run.finish", "pipeline_run", run_id, after=after, details=details)

    def forget_cache(self, keys: Iterable[str]) -> None:
        """Drop cache entries whose outputs are gone or no longer verify."""
        keys = list(keys)
        with self.store._write() as conn:
            for chunk in _chunks(keys):
                conn.execute(delete(s.pipeline_cache).where(s.pipeline_cache.c.cache_key.in_(chunk)))

    # -- reading ---------------------------------------------------------------------------

    def get_run(self, run_id: str) -> PipelineRun:
        """The run with id ``run_id``, or the only one whose id starts with it.

        Raises:
            InvalidInput: a prefix shorter than 6 characters, or one matching several runs.
            NotFound: no such run.
        """
        with self.store._read() as conn:
            return _to_run(self._run_row(conn, run_id))

    def list_runs(
        self, pipeline: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[PipelineRun]:
        """Newest first."""
        table = s.pipeline_runs
        query = (
            select(table)
            .where(*scope.workspace_is(table.c.workspace))
            .order_by(table.c.start_time.desc())
            .limit(limit)
        )
        if pipeline is not None:
            query = query.where(s.pipeline_runs.c.pipeline == pipeline)
        if status is not None:
            query = query.where(s.pipeline_runs.c.status == status.upper())
        with self.store._read() as conn:
            return [_to_run(row) for row in conn.execute(query).mappings()]

    def steps(self, run_id: str) -> list[StepRecord]:
        """The run's steps in graph order."""
        query = (
            select(s.pipeline_steps)
            .where(s.pipeline_steps.c.run_id == run_id)
            .order_by(s.pipeline_steps.c.position)
        )
        with self.store._read() as conn:
            return [_to_step(row) for row in conn.execute(query).mappings()]

    def step(self, run_id: str, node_id: str) -> StepRecord:
        """Raises NotFound, listing the run's nodes."""
        with self.store._read() as conn:
            row = (
                conn.execute(
                    select(s.pipeline_steps).where(
                        s.pipeline_steps.c.run_id == run_id, s.pipeline_steps.c.node_id == node_id
                    )
                )
                .mappings()
                .first()
            )
            if row is None:
                nodes = conn.scalars(
                    select(s.pipeline_steps.c.node_id)
                    .where(s.pipeline_steps.c.run_id == run_id)
                    .order_by(s.pipeline_steps.c.position)
                ).all()
                raise NotFound(
                    f"Pipeline run {run_id} has no step {node_id!r}; its steps: {', '.join(nodes) or 'none'}"
                )
            return _to_step(row)

    def previous_step(self, pipeline: str, node_id: str, before: int, exclude_run: str) -> StepRecord | None:
        """The latest earlier execution of ``node_id`` in a run of ``pipeline`` that had a cache key."""
        query = (
            select(s.pipeline_steps)
            .join(s.pipeline_runs, s.pipeline_runs.c.id == s.pipeline_steps.c.run_id)
            .where(
                s.pipeline_runs.c.pipeline == pipeline,
                s.pipeline_runs.c.start_time <= before,
                s.pipeline_runs.c.id != exclude_run,
                s.pipeline_steps.c.node_id == node_id,
                s.pipeline_steps.c.cache_parts.is_not(None),
            )
            .order_by(s.pipeline_runs.c.start_time.desc())
            .limit(1)
        )
        with self.store._read() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else _to_step(row)

    def cached(self, keys: Sequence[str]) -> dict[str, CacheEntry]:
        """The cache entries among ``keys``.

        Called once per step while a pipeline runs, so a single key goes straight through
        the driver with a statement compiled once (SQLAlchemy's per-call statement work
        costs more than SQLite's lookup).
        """
        table = s.pipeline_cache
        found: dict[str, CacheEntry] = {}
        with self.store._read() as conn:
            if len(keys) == 1:
                one = select(table).where(table.c.cache_key == bindparam("key"))
                rows = self._driver(conn, "cache_one", one, [{"key": keys[0]}], fetch=True)
            else:
                rows = []
                for chunk in _chunks(list(keys)):
                    rows += conn.execute(select(table).where(table.c.cache_key.in_(chunk))).all()
        for key, outputs, run_id, node_id, created in rows:
            found[key] = CacheEntry(key, orjson.loads(outputs), run_id, node_id, created)
        return found

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _run_row(conn: Connection, run_id: str) -> RowMapping:
        table = s.pipeline_runs
        if not isinstance(run_id, str) or not run_id:
            raise InvalidInput("A pipeline run id is required")
        visible = scope.workspace_is(table.c.workspace)
        row = conn.execute(select(table).where(table.c.id == run_id, *visible)).mappings().first()
        if row is not None:
            return row
        if len(run_id) < MIN_PREFIX:
            raise InvalidInput(
                f"Pipeline run id {run_id!r} is too short: give at least {MIN_PREFIX} characters"
            )
        escaped = run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = (
            conn.execute(select(table).where(table.c.id.like(f"{escaped}%", escape="\\"), *visible).limit(5))
            .mappings()
            .all()
        )
        if not rows:
            raise NotFound(f"No pipeline run {run_id!r}; `conveyor pipeline runs` lists them")
        if len(rows) > 1:
            matches = ", ".join(r["id"] for r in rows)
            raise InvalidInput(
                f"Pipeline run id prefix {run_id!r} matches several runs ({matches}); give more characters"
            )
        return rows[0]

    def _update_steps(self, conn: Connection, steps: Sequence[StepRecord]) -> None:
        if not steps:
            return
        table = s.pipeline_steps
        columns = [c.name for c in table.columns if c.name not in ("run_id", "node_id")]
        statement = (
            update(table)
            .where(table.c.run_id == bindparam("b_run_id"), table.c.node_id == bindparam("b_node_id"))
            .values({name: bindparam(name) for name in columns})
        )
        rows = []
        for step in steps:
            values = _step_values(step)
            values["b_run_id"], values["b_node_id"] = values.pop("run_id"), values.pop("node_id")
            rows.append(values)
        self._driver(conn, "update_steps", statement, rows)

    def _driver(
        self, conn: Connection, name: str, statement: Any, rows: list[dict[str, Any]], *, fetch: bool = False
    ) -> list[Any]:
        """Execute a statement compiled once per store straight through the DB-API driver."""
        compiled = self._compiled.get(name)
        if compiled is None:
            compiled = self._compiled[name] = statement.compile(dialect=conn.dialect)
        if compiled.positional:
            params: list[Any] = [tuple(row[key] for key in compiled.positiontup) for row in rows]
        else:
            params = rows
        if fetch:
            cursor = conn.connection.cursor()
            try:
                cursor.execute(str(compiled), params[0])
                return cursor.fetchall()
            finally:
                cursor.close()
        conn.exec_driver_sql(str(compiled), params if len(params) > 1 else params[0])
        return []

    def _upsert_cache(self, conn: Connection, entries: Sequence[CacheEntry]) -> None:
        rows = [
            {
                "cache_key": e.cache_key,
                "outputs": _dump(e.outputs),
                "run_id": e.run_id,
                "node_id": e.node_id,
                "created": e.created,
            }
            for e in {e.cache_key: e for e in entries}.values()
        ]
        statement = self.store._insert(s.pipeline_cache)
        statement = statement.on_conflict_do_update(
            index_elements=["cache_key"],
            set_={
                "outputs": statement.excluded.outputs,
                "run_id": statement.excluded.run_id,
                "node_id": statement.excluded.node_id,
                "created": statement.excluded.created,
            },
        )
        conn.execute(statement, rows)


def vars_of(item: Any) -> dict[str, Any]:
    """A dataclass as a dict of its fields, enums as their values (shallow, unlike ``asdict``)."""
    values = {f.name: getattr(item, f.name) for f in fields(item)}
    return {k: (v.value if isinstance(v, StrEnum) else v) for k, v in values.items()}


def _run_values(run: PipelineRun) -> dict[str, Any]:
    values = vars_of(run)
    for name in _JSON_RUN_FIELDS:
        values[name] = _dump(values[name])
    return values


def _step_values(step: StepRecord) -> dict[str, Any]:
    values = vars_of(step)
    for name in _JSON_STEP_FIELDS:
        values[name] = None if values[name] is None else _dump(values[name])
    return values


def _to_run(row: RowMapping) -> PipelineRun:
    values = dict(row)
    for name in _JSON_RUN_FIELDS:
        values[name] = orjson.loads(values[name])
    values["status"] = RunState(values["status"])
    return PipelineRun(**values)


def _to_step(row: RowMapping) -> StepRecord:
    values = dict(row)
    for name in _JSON_STEP_FIELDS:
        if values[name] is not None:
            values[name] = orjson.loads(values[name])
    values["status"] = StepState(values["status"])
    return StepRecord(**values)


def _dump(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), IN_CHUNK):
        yield items[start : start + IN_CHUNK]


__all__ = [
    "ArtifactRow",
    "CacheEntry",
    "PipelineRecords",
    "PipelineRun",
    "RunState",
    "StepChanges",
    "StepRecord",
    "StepState",
]
