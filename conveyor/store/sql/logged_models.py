"""MLflow 3 "logged models" on the SQL store: a model's identity, status, tags and params.

MLflow 3's ``log_model`` no longer hides a model inside a run's artifact folder; it creates
a logged model (``m-<hex>``) with its own artifact location next to the runs
(``<experiment location>/models/<model_id>/artifacts``), uploads the files there and marks
it READY. ``runs:/<run>/<name>`` URIs are resolved by searching the run's experiment for a
model of that name whose ``source_run_id`` is the run.

This class works on :class:`~conveyor.store.sql.store.SqlStore`'s connections and the
``logged_models*`` tables, plus ``run_outputs`` (which run output which model at which
step); it validates its input the way the tracking store does, so the HTTP layer only
translates.
"""

from __future__ import annotations

import operator
import re
import uuid
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy import Connection, RowMapping, Table, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from conveyor.errors import ExperimentNotFound, InvalidInput, InvalidState, NotFound, RunNotFound
from conveyor.store import search as q
from conveyor.store import validation as v
from conveyor.store.base import now_ms
from conveyor.store.entities import LifecycleStage, Page, Param, Tag
from conveyor.store.names import generate_run_name
from conveyor.store.sql import audit_hooks as audit
from conveyor.store.sql import schema as s
from conveyor.store.sql import scope
from conveyor.store.sql.rows import IN_CHUNK
from conveyor.store.sql.store import SqlStore, decode_page_token, encode_page_token

MAX_NAME_LENGTH = 500
MAX_ITEMS_PER_REQUEST = 100
DEFAULT_SEARCH_RESULTS = 50
MAX_SEARCH_RESULTS = 1000


class LoggedModelStatus(StrEnum):
    """Stored status; the wire names (``LOGGED_MODEL_READY`` …) are the HTTP layer's business."""

    PENDING = "PENDING"
    READY = "READY"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class LoggedModel:
    model_id: str
    experiment_id: str
    name: str
    artifact_location: str
    status: LoggedModelStatus
    creation_time: int
    last_updated_time: int
    lifecycle_stage: LifecycleStage
    source_run_id: str | None = None
    model_type: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OrderField:
    """One ``order_by`` item: an attribute name from :data:`ORDER_FIELDS` and its direction."""

    name: str
    ascending: bool = True


#: Attributes a search may order by, mapped to the entity field that holds them.
ORDER_FIELDS = {
    "name": "name",
    "model_id": "model_id",
    "model_type": "model_type",
    "status": "status",
    "source_run_id": "source_run_id",
    "creation_timestamp": "creation_time",
    "creation_time": "creation_time",
    "last_updated_timestamp": "last_updated_time",
    "last_updated_time": "last_updated_time",
}

_STATUS_ALIASES = {
    "LOGGED_MODEL_PENDING": LoggedModelStatus.PENDING,
    "LOGGED_MODEL_READY": LoggedModelStatus.READY,
    "LOGGED_MODEL_UPLOAD_FAILED": LoggedModelStatus.FAILED,
    "UPLOAD_FAILED": LoggedModelStatus.FAILED,
}


def parse_status(value: str) -> LoggedModelStatus:
    """A status from its stored or wire name (``READY`` or ``LOGGED_MODEL_READY``)."""
    if value in _STATUS_ALIASES:
        return _STATUS_ALIASES[value]
    try:
        return LoggedModelStatus(value)
    except ValueError:
        names = ", ".join([*_STATUS_ALIASES, *LoggedModelStatus])
        raise InvalidInput(f"Invalid logged model status {value!r}: use one of {names}") from None


class SqlLoggedModelStore:
    """Create, read, finalize, tag and search logged models in the tracking database."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store

    # -- writing ---------------------------------------------------------------------------

    def create(
        self,
        experiment_id: str,
        name: str | None = None,
        model_type: str | None = None,
        source_run_id: str | None = None,
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> LoggedModel:
        """A PENDING model in an active experiment; its artifact location sits beside the runs'."""
        experiment_id = v.check_experiment_id(experiment_id)
        name = _check_text(name or generate_run_name(), "name")
        model_type = None if model_type is None else _check_text(model_type, "model_type")
        if source_run_id is not None:
            v.check_run_id(source_run_id)
        checked_params = _check_params(params or {})
        checked_tags = _check_tags(tags or {})
        model_id = f"m-{uuid.uuid4().hex}"
        now = now_ms()
        with self.store._write() as conn:
            location = _active_experiment_location(conn, experiment_id)
            if source_run_id is not None:
                _run_pk(conn, source_run_id)
            conn.execute(
                insert(s.logged_models).values(
                    model_id=model_id,
                    experiment_id=int(experiment_id),
                    name=name,
                    artifact_location=f"{location.rstrip('/')}/models/{model_id}/artifacts",
                    status=LoggedModelStatus.PENDING.value,
                    source_run_id=source_run_id,
                    model_type=model_type,
                    creation_time=now,
                    last_updated_time=now,
                    lifecycle_stage=LifecycleStage.ACTIVE.value,
                )
            )
            _insert_params(conn, model_id, checked_params)
            _upsert_tags(conn, model_id, checked_tags)
            after = {"experiment_id": experiment_id, "name": name, "source_run_id": source_run_id}
            audit.record(conn, "logged_model.create", "logged_model", model_id, after=after)
            return _load(conn, [_model_row(conn, model_id)])[0]

    def finalize(self, model_id: str, status: LoggedModelStatus) -> LoggedModel:
        """Record how the upload ended (READY or FAILED) and return the model."""
        with self.store._write() as conn:
            before = {"status": _model_row(conn, model_id)["status"]}
            after = {"status": LoggedModelStatus(status).value}
            conn.execute(
                update(s.logged_models)
                .where(s.logged_models.c.model_id == model_id)
                .values(**after, last_updated_time=now_ms())
            )
            audit.record(conn, "logged_model.finalize", "logged_model", model_id, before=before, after=after)
            return _load(conn, [_model_row(conn, model_id)])[0]

    def delete(self, model_id: str) -> None:
        """Soft delete: the model disappears from gets and searches; its files stay until collected."""
        with self.store._write() as conn:
            _model_row(conn, model_id)
            conn.execute(
                update(s.logged_models)
                .where(s.logged_models.c.model_id == model_id)
                .values(lifecycle_stage=LifecycleStage.DELETED.value, last_updated_time=now_ms())
            )
            after = {"lifecycle_stage": LifecycleStage.DELETED.value}
            audit.record(conn, "logged_model.delete", "logged_model", model_id, after=after)

    def deleted(self, older_than_ms: int | None = None) -> list[tuple[str, str]]:
        """``(model_id, artifact_location)`` of soft-deleted models (deleted before the cutoff), for gc."""
        table = s.logged_models
        query = select(table.c.model_id, table.c.artifact_location).where(
            table.c.lifecycle_stage == LifecycleStage.DELETED.value,
            *scope.experiment_visible(table.c.experiment_id),
        )
        if older_than_ms is not None:
            query = query.where(table.c.last_updated_time < older_than_ms)
        with self.store._read() as conn:
            return [(r[0], r[1]) for r in conn.execute(query.order_by(table.c.model_id))]

    def hard_delete(self, model_id: str) -> None:
        """Remove a soft-deleted model's rows for good (its files are the caller's to remove)."""
        with self.store._write() as conn:
            row = _model_row(conn, model_id, allow_deleted=True)
            if row["lifecycle_stage"] != LifecycleStage.DELETED:
                raise InvalidState(
                    f"Logged model {model_id} must be deleted before it can be removed for good."
                )
            for table in (s.run_outputs, s.logged_model_tags, s.logged_model_params, s.logged_models):
                conn.execute(delete(table).where(table.c.model_id == model_id))
            before = {"lifecycle_stage": LifecycleStage.DELETED.value}
            audit.record(conn, "logged_model.purge", "logged_model", model_id, before=before)

    def set_tags(self, model_id: str, tags: Mapping[str, str]) -> None:
        """Insert or overwrite tags."""
        checked = _check_tags(tags)
        with self.store._write() as conn:
            _model_row(conn, model_id)
            _upsert_tags(conn, model_id, checked)
            _touch(conn, model_id)
            details = {"count": len(checked), **audit.key_list(checked)}
            audit.record(
                conn, "logged_model.tags.set", "logged_model", model_id, after=checked, details=details
            )

    def delete_tag(self, model_id: str, key: str) -> None:
        """Remove one tag; an absent key raises ``NotFound``."""
        v.check_key(key, "tag")
        table = s.logged_model_tags
        with self.store._write() as conn:
            _model_row(conn, model_id)
            result = conn.execute(delete(table).where(table.c.model_id == model_id, table.c.key == key))
            if result.rowcount == 0:
                raise NotFound(f"No tag with key {key!r} on logged model {model_id}")
            _touch(conn, model_id)
            audit.record(conn, "logged_model.tag.delete", "logged_model", model_id, details={"key": key})

    def log_params(self, model_id: str, params: Mapping[str, str]) -> None:
        """Add params; as on runs, re-logging the same value is a no-op and a new value an error."""
        checked = _check_params(params)
        with self.store._write() as conn:
            _model_row(conn, model_id)
            _insert_params(conn, model_id, checked)
            _touch(conn, model_id)
            details = {"count": len(checked), **audit.key_list(checked)}
            audit.record(
                conn, "logged_model.params.log", "logged_model", model_id, after=checked, details=details
            )

    # -- reading ---------------------------------------------------------------------------

    def get(self, model_id: str, *, allow_deleted: bool = False) -> LoggedModel:
        with self.store._read() as conn:
            return _load(conn, [_model_row(conn, model_id, allow_deleted=allow_deleted)])[0]

    def search(
        self,
        experiment_ids: Sequence[str],
        filter_string: str | None = None,
        order_by: Sequence[OrderField] = (),
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> Page[LoggedModel]:
        """Active models of the experiments matching the filter, newest first by default.

        The filter uses the run search grammar over ``name``, ``model_id``, ``model_type``,
        ``status``, ``source_run_id``, ``creation_timestamp``, ``last_updated_timestamp``,
        ``tags.<key>`` and ``params.<key>``. Matching happens in Python over the
        experiments' models, which are few next to runs.
        """
        limit = DEFAULT_SEARCH_RESULTS if max_results is None else max_results
        v.check_max_results(limit, MAX_SEARCH_RESULTS)
        ids = [int(v.check_experiment_id(e)) for e in experiment_ids]
        node = parse_filter(filter_string)
        offset = decode_page_token(page_token)
        table = s.logged_models
        with self.store._read() as conn:
            found = conn.execute(
                select(table).where(
                    table.c.experiment_id.in_(ids),
                    table.c.lifecycle_stage == LifecycleStage.ACTIVE.value,
                    *scope.experiment_visible(table.c.experiment_id),
                )
            ).mappings()
            models = [m for m in _load(conn, list(found)) if node is None or _matches(node, m)]
        models = _sorted(models, order_by)
        page = models[offset : offset + limit]
        more = offset + limit < len(models)
        return Page(page, encode_page_token(offset + limit) if more else None)

    def outputs_for_runs(self, run_ids: Sequence[str]) -> dict[str, list[tuple[str, int]]]:
        """``(model_id, step)`` of the active models each run output, by step, then oldest model first."""
        outputs, runs, models = s.run_outputs, s.runs, s.logged_models
        found: dict[str, list[tuple[str, int]]] = defaultdict(list)
        if not run_ids:
            return found
        with self.store._read() as conn:
            for part in _batches(list(run_ids)):
                query = (
                    select(runs.c.run_uuid, outputs.c.model_id, outputs.c.step)
                    .select_from(
                        outputs.join(runs, runs.c.id == outputs.c.run_id).join(
                            models, models.c.model_id == outputs.c.model_id
                        )
                    )
                    .where(
                        runs.c.run_uuid.in_(part),
                        models.c.lifecycle_stage == LifecycleStage.ACTIVE.value,
                    )
                    .order_by(outputs.c.step, models.c.creation_time, models.c.model_id)
                )
                for run_id, model_id, step in conn.execute(query):
                    found[run_id].append((model_id, step))
        return found

    def record_outputs(self, run_id: str, outputs: Sequence[tuple[str, int]]) -> None:
        """Record that an active run output these ``(model_id, step)`` pairs (``runs/outputs``).

        All or nothing: an unknown or deleted model fails the whole request. Recording a pair
        again is a no-op. A model created without a source run takes this run as its source,
        so ``runs:/<run>/<name>`` finds it.
        """
        v.check_run_id(run_id)
        for _, step in outputs:
            if type(step) is not int:
                raise InvalidInput(f"Invalid logged model output step {step!r}: must be an integer")
        with self.store._write() as conn:
            run_pk = _active_run_pk(conn, run_id)
            if not outputs:
                return
            for model_id in dict.fromkeys(model_id for model_id, _ in outputs):
                if _model_row(conn, model_id)["source_run_id"] is None:
                    conn.execute(
                        update(s.logged_models)
                        .where(s.logged_models.c.model_id == model_id)
                        .values(source_run_id=run_id, last_updated_time=now_ms())
                    )
            unique = dict.fromkeys((model_id, step) for model_id, step in outputs)
            rows = [{"run_id": run_pk, "model_id": model_id, "step": step} for model_id, step in unique]
            conn.execute(_dialect_insert(conn, s.run_outputs).on_conflict_do_nothing(), rows)


# -- validation -----------------------------------------------------------------------------


def _check_text(value: object, field_name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"Invalid logged model {field_name} {value!r}: must be a non-empty string")
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidInput(
            f"Logged model {field_name} is {len(value)} characters long, "
            f"at most {MAX_NAME_LENGTH} are allowed"
        )
    return value


def _check_count(items: Mapping[str, str], kind: str) -> None:
    if len(items) > MAX_ITEMS_PER_REQUEST:
        raise InvalidInput(
            f"A logged model request can carry at most {MAX_ITEMS_PER_REQUEST} {kind}, got {len(items)}; "
            "send the rest in further requests."
        )


def _check_params(params: Mapping[str, str]) -> dict[str, str]:
    _check_count(params, "params")
    return {p.key: p.value for p in (v.check_param(Param(k, val)) for k, val in params.items())}


def _check_tags(tags: Mapping[str, str]) -> dict[str, str]:
    _check_count(tags, "tags")
    return {t.key: t.value for t in (v.check_tag(Tag(k, val)) for k, val in tags.items())}


# -- rows -----------------------------------------------------------------------------------


def _dialect_insert(conn: Connection, table: Table) -> sqlite.Insert | postgresql.Insert:
    """An insert with ``ON CONFLICT`` support, on whichever database this is."""
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def _active_experiment_location(conn: Connection, experiment_id: str) -> str:
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
    if row["lifecycle_stage"] != LifecycleStage.ACTIVE:
        raise InvalidState(f"Cannot create a logged model in experiment {experiment_id}: it is deleted.")
    return str(row["artifact_location"])


def _run_pk(conn: Connection, run_id: str) -> int:
    pk = conn.execute(select(s.runs.c.id).where(s.runs.c.run_uuid == run_id, *scope.runs_visible())).scalar()
    if pk is None:
        raise RunNotFound(f"Run with id={run_id} not found")
    return int(pk)


def _active_run_pk(conn: Connection, run_id: str) -> int:
    row = conn.execute(
        select(s.runs.c.id, s.runs.c.lifecycle_stage).where(
            s.runs.c.run_uuid == run_id, *scope.runs_visible()
        )
    ).first()
    if row is None:
        raise RunNotFound(f"Run with id={run_id} not found")
    if row.lifecycle_stage != LifecycleStage.ACTIVE:
        raise InvalidState(
            f"The run {run_id} must be in the 'active' state. Current state is {row.lifecycle_stage}."
        )
    return int(row.id)


def _model_row(conn: Connection, model_id: str, *, allow_deleted: bool = False) -> RowMapping:
    if not isinstance(model_id, str) or not model_id:
        raise InvalidInput(f"Invalid logged model id {model_id!r}")
    table = s.logged_models
    query = select(table).where(
        table.c.model_id == model_id, *scope.experiment_visible(table.c.experiment_id)
    )
    row = conn.execute(query).mappings().first()
    if row is None or (not allow_deleted and row["lifecycle_stage"] != LifecycleStage.ACTIVE):
        raise NotFound(f"Logged model with ID '{model_id}' not found.")
    return row


def _touch(conn: Connection, model_id: str) -> None:
    conn.execute(
        update(s.logged_models)
        .where(s.logged_models.c.model_id == model_id)
        .values(last_updated_time=now_ms())
    )


def _insert_params(conn: Connection, model_id: str, params: dict[str, str]) -> None:
    if not params:
        return
    table = s.logged_model_params
    existing = dict(
        conn.execute(
            select(table.c.key, table.c.value).where(
                table.c.model_id == model_id, table.c.key.in_(list(params))
            )
        ).all()
    )
    for key, old in existing.items():
        if old != params[key]:
            raise InvalidInput(
                f"Changing param values is not allowed. Param with key='{key}' was already logged with "
                f"value='{old}' for logged model '{model_id}'. Attempted logging new value '{params[key]}'."
            )
    new = [{"model_id": model_id, "key": k, "value": val} for k, val in params.items() if k not in existing]
    if new:
        conn.execute(insert(table), new)


def _upsert_tags(conn: Connection, model_id: str, tags: dict[str, str]) -> None:
    if not tags:
        return
    stmt = _dialect_insert(conn, s.logged_model_tags)
    stmt = stmt.on_conflict_do_update(index_elements=["model_id", "key"], set_={"value": stmt.excluded.value})
    conn.execute(stmt, [{"model_id": model_id, "key": k, "value": val} for k, val in tags.items()])


def _batches(items: list[str]) -> Iterator[list[str]]:
    """Slices that keep ``IN (...)`` lists within every database's bound-parameter limit."""
    for start in range(0, len(items), IN_CHUNK):
        yield items[start : start + IN_CHUNK]


def _children(conn: Connection, table: Table, ids: list[str]) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = defaultdict(dict)
    for part in _batches(ids):
        for model_id, key, value in conn.execute(
            select(table.c.model_id, table.c.key, table.c.value).where(table.c.model_id.in_(part))
        ):
            found[model_id][key] = value
    return found


def _load(conn: Connection, rows: list[RowMapping]) -> list[LoggedModel]:
    ids = [r["model_id"] for r in rows]
    tags = _children(conn, s.logged_model_tags, ids)
    params = _children(conn, s.logged_model_params, ids)
    return [
        LoggedModel(
            model_id=r["model_id"],
            experiment_id=str(r["experiment_id"]),
            name=r["name"],
            artifact_location=r["artifact_location"],
            status=parse_status(r["status"]),
            creation_time=r["creation_time"],
            last_updated_time=r["last_updated_time"],
            lifecycle_stage=LifecycleStage(r["lifecycle_stage"]),
            source_run_id=r["source_run_id"],
            model_type=r["model_type"],
            tags=tags.get(r["model_id"], {}),
            params=params.get(r["model_id"], {}),
        )
        for r in rows
    ]


# -- search ---------------------------------------------------------------------------------


def parse_filter(text: str | None) -> q.Node | None:
    """The filter's tree, or None for no filter; metric comparisons are refused for now."""
    node = q.parse_logged_model_filter(text)
    if node is not None and _mentions_metrics(node):
        raise InvalidInput(
            f"Invalid filter {text!r}: logged models cannot be filtered by metrics yet; "
            "filter on attributes, params.<key> or tags.<key>."
        )
    return node


def _mentions_metrics(node: q.Node) -> bool:
    if isinstance(node, q.Comparison):
        return node.entity is q.Entity.METRIC
    return any(_mentions_metrics(item) for item in node.items)


def _value_of(model: LoggedModel, comparison: q.Comparison) -> str | int | None:
    if comparison.entity is q.Entity.TAG:
        return model.tags.get(comparison.key)
    if comparison.entity is q.Entity.PARAM:
        return model.params.get(comparison.key)
    key = comparison.key
    if key == "experiment_id":
        return int(model.experiment_id)
    if key == "status":
        return model.status.value
    value: str | int | None = getattr(model, ORDER_FIELDS.get(key, key))
    return value


def _matches(node: q.Node, model: LoggedModel) -> bool:
    if isinstance(node, q.And):
        return all(_matches(item, model) for item in node.items)
    if isinstance(node, q.Or):
        return any(_matches(item, model) for item in node.items)
    expected = node.value
    if node.entity is q.Entity.ATTRIBUTE and node.key == "status":
        expected = _status_names(expected)
    return _compare(_value_of(model, node), node.op, expected)


def _status_names(value: q.Value) -> q.Value:
    """Filter values for ``status`` in stored form, whichever spelling the user wrote."""
    if isinstance(value, tuple):
        return tuple(parse_status(str(x)).value for x in value)
    return None if value is None else parse_status(str(value)).value


_COMPARATORS = {
    q.Op.EQ: operator.eq,
    q.Op.NE: operator.ne,
    q.Op.LT: operator.lt,
    q.Op.LE: operator.le,
    q.Op.GT: operator.gt,
    q.Op.GE: operator.ge,
}


def _compare(actual: object, op: q.Op, expected: object) -> bool:
    if op is q.Op.IS_NULL:
        return actual is None
    if op is q.Op.IS_NOT_NULL:
        return actual is not None
    if actual is None:
        return False
    if op in (q.Op.IN, q.Op.NOT_IN):
        inside = isinstance(expected, tuple) and actual in expected
        return inside if op is q.Op.IN else not inside
    if op in (q.Op.LIKE, q.Op.ILIKE):
        flags = re.IGNORECASE if op is q.Op.ILIKE else 0
        return re.fullmatch(_like_regex(str(expected)), str(actual), flags | re.DOTALL) is not None
    return bool(_COMPARATORS[op](actual, expected))


def _like_regex(pattern: str) -> str:
    return "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)


def _sorted(models: list[LoggedModel], order_by: Sequence[OrderField]) -> list[LoggedModel]:
    """Stable sorts from the last key to the first; missing values sort last either way."""
    result = sorted(models, key=lambda m: m.model_id)
    keys = list(order_by) or [OrderField("creation_timestamp", ascending=False)]
    for item in reversed(keys):
        attr = ORDER_FIELDS[item.name]
        present = [m for m in result if getattr(m, attr) is not None]
        absent = [m for m in result if getattr(m, attr) is None]
        present.sort(key=operator.attrgetter(attr), reverse=not item.ascending)
        result = present + absent
    return result
