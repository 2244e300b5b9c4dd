"""Compile parsed searches (:mod:`conveyor.store.search`) into SQLAlchemy Core selects.

User text never reaches SQL: the parser turns it into a typed tree and every value here
becomes a bound parameter. The same select runs on SQLite and PostgreSQL with the same
answers; where the two databases disagree, a small construct below compiles differently
per dialect so callers stay dialect-blind:

* ``LIKE`` is case-sensitive on both: PostgreSQL's ``LIKE`` already is, SQLite's is not
  (ASCII case is folded), so on SQLite the pattern is translated to ``GLOB``. A backslash
  escapes ``%``, ``_`` and itself on both. ``ILIKE`` is ``lower(x) LIKE lower(pattern)``
  (SQLite's ``lower`` folds ASCII only, so non-ASCII case differences match only on
  PostgreSQL).
* Strings sort by code point on both: SQLite compares bytes, PostgreSQL gets
  ``COLLATE "C"`` so a database created with a linguistic locale sorts the same way.

Semantics (MLflow's, made explicit):

* Filters on metrics, params, tags and datasets are ``EXISTS`` subqueries, so a run
  without the key never matches a comparison; ``!=``/``NOT IN`` mean "the key exists
  with another value"; ``IS NULL`` means "the key is absent".
* A metric is compared through ``latest_metrics``; a NaN latest value (stored as
  ``is_nan=true, value=0``) matches no numeric comparison, only ``IS [NOT] NULL``.
* Ordering by a metric/param/tag puts numbers (or strings) first, then NaN, then runs
  without the key, in both directions. Every run search ends with
  ``start_time DESC, run_uuid ASC`` so pages are stable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Select,
    String,
    and_,
    case,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from conveyor.store import search as ast
from conveyor.store.search import Comparison, Entity, Node, Op, OrderKey
from conveyor.store.sql import schema as s
from conveyor.store.sql import scope

__all__ = ["build_experiment_query", "build_run_count", "build_run_query"]

#: Escape character of LIKE patterns on every dialect.
_ESCAPE = "\\"

#: Input tag holding a dataset's role ("training", "eval"), as MLflow names it.
DATASET_CONTEXT_TAG = "mlflow.data.context"

_RUN_COLUMNS = {
    "run_id": s.runs.c.run_uuid,
    "run_name": s.runs.c.name,
    "status": s.runs.c.status,
    "user_id": s.runs.c.user_id,
    "artifact_uri": s.runs.c.artifact_uri,
    "lifecycle_stage": s.runs.c.lifecycle_stage,
    "start_time": s.runs.c.start_time,
    "end_time": s.runs.c.end_time,
    "experiment_id": s.runs.c.experiment_id,
}

_EXPERIMENT_COLUMNS = {
    "name": s.experiments.c.name,
    "creation_time": s.experiments.c.creation_time,
    "last_update_time": s.experiments.c.last_update_time,
    "experiment_id": s.experiments.c.id,
    "lifecycle_stage": s.experiments.c.lifecycle_stage,
}

# -- dialect-aware constructs ---------------------------------------------------------------


class _CaseSensitiveLike(FunctionElement[bool]):
    """``column LIKE pattern`` that honours case on every dialect.

    Arguments: the column, the pattern in LIKE syntax (backslash escapes) and the same
    pattern in GLOB syntax; each dialect compiles the one it can use.
    """

    name = "case_sensitive_like"
    inherit_cache = True


@compiles(_CaseSensitiveLike)
def _like_default(element: _CaseSensitiveLike, compiler: SQLCompiler, **kw: Any) -> str:
    column, like_pattern, _glob = element.clauses
    return f"({compiler.process(column.like(like_pattern, escape=_ESCAPE), **kw)})"


@compiles(_CaseSensitiveLike, "sqlite")
def _like_sqlite(element: _CaseSensitiveLike, compiler: SQLCompiler, **kw: Any) -> str:
    column, _like, glob_pattern = element.clauses
    return f"({compiler.process(column, **kw)} GLOB {compiler.process(glob_pattern, **kw)})"


class _JsonText(FunctionElement[str]):
    """The text under one key of a JSON object kept in a text column, or NULL.

    Arguments: the column, the key (PostgreSQL's ``->>``) and the JSON path (SQLite's
    ``json_extract``); see :func:`_json_text`.
    """

    name = "json_text"
    type = String()
    inherit_cache = True


@compiles(_JsonText)
def _json_default(element: _JsonText, compiler: SQLCompiler, **kw: Any) -> str:
    column, key, _path = element.clauses
    return f"(CAST({compiler.process(column, **kw)} AS JSON) ->> {compiler.process(key, **kw)})"


@compiles(_JsonText, "sqlite")
def _json_sqlite(element: _JsonText, compiler: SQLCompiler, **kw: Any) -> str:
    column, _key, path = element.clauses
    return f"json_extract({compiler.process(column, **kw)}, {compiler.process(path, **kw)})"


def _json_text(column: ColumnElement[Any], key: str) -> ColumnElement[str]:
    if '"' in key or "\\" in key:
        raise ValueError(f"JSON key {key!r} cannot be written as a SQLite JSON path")
    return _JsonText(column, literal(key), literal(f'$."{key}"'))


class _CodePointOrder(FunctionElement[Any]):
    """A string column compared by code point, for ``ORDER BY`` that agrees across dialects."""

    name = "code_point_order"
    inherit_cache = True

    def __init__(self, column: ColumnElement[Any]) -> None:
        super().__init__(column)
        self.type = column.type


@compiles(_CodePointOrder)
def _order_default(element: _CodePointOrder, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = element.clauses
    return compiler.process(column, **kw)


@compiles(_CodePointOrder, "postgresql")
def _order_postgresql(element: _CodePointOrder, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = element.clauses
    return compiler.process(column.collate("C"), **kw)


# -- LIKE patterns --------------------------------------------------------------------------


def _like_parts(pattern: str) -> list[tuple[bool, str]]:
    """Split a LIKE pattern into ``(is_wildcard, char)`` pairs.

    A backslash makes the next character literal; a trailing lone backslash is literal.
    """
    parts: list[tuple[bool, str]] = []
    chars = iter(pattern)
    for char in chars:
        if char == "\\":
            parts.append((False, next(chars, "\\")))
        else:
            parts.append((char in "%_", char))
    return parts


def _render_like(parts: list[tuple[bool, str]]) -> str:
    return "".join(c if wild or c not in "%_\\" else "\\" + c for wild, c in parts)


def _render_glob(parts: list[tuple[bool, str]]) -> str:
    wildcards = {"%": "*", "_": "?"}
    return "".join(wildcards[c] if wild else f"[{c}]" if c in "*?[" else c for wild, c in parts)


def _like(column: ColumnElement[Any], pattern: str) -> ColumnElement[bool]:
    parts = _like_parts(pattern)
    return _CaseSensitiveLike(column, literal(_render_like(parts)), literal(_render_glob(parts)))


def _ilike(column: ColumnElement[Any], pattern: str) -> ColumnElement[bool]:
    """Both sides folded by the database, so a value always matches itself; SQLite folds
    only ASCII letters, PostgreSQL all of Unicode."""
    rendered = literal(_render_like(_like_parts(pattern)))
    return func.lower(column).like(func.lower(rendered), escape=_ESCAPE)


# -- filters --------------------------------------------------------------------------------


def _compare(column: ColumnElement[Any], op: Op, value: Any) -> ColumnElement[bool]:
    """``column op value`` for every comparator except IS [NOT] NULL on child tables."""
    if op is Op.EQ:
        return column == value
    if op is Op.NE:
        return column != value
    if op is Op.LT:
        return column < value
    if op is Op.LE:
        return column <= value
    if op is Op.GT:
        return column > value
    if op is Op.GE:
        return column >= value
    if op is Op.LIKE:
        return _like(column, value)
    if op is Op.ILIKE:
        return _ilike(column, value)
    if op is Op.IN:
        return column.in_(value)
    if op is Op.NOT_IN:
        return column.not_in(value)
    if op is Op.IS_NULL:
        return column.is_(None)
    return column.is_not(None)


def _child_exists(
    table: FromClause, owner: ColumnElement[Any], owner_fk: str, node: Comparison
) -> ColumnElement[bool]:
    """EXISTS over a key/value child table (params, tags, experiment tags, latest metrics)."""
    conditions: list[ColumnElement[bool]] = [table.c[owner_fk] == owner, table.c.key == node.key]
    if node.op in (Op.IS_NULL, Op.IS_NOT_NULL):
        found = exists().where(*conditions)
        return not_(found) if node.op is Op.IS_NULL else found
    if node.entity is Entity.METRIC:
        conditions.append(table.c.is_nan == false())
    conditions.append(_compare(table.c.value, node.op, node.value))
    return exists().where(*conditions)


def _dataset_exists(node: Comparison) -> ColumnElement[bool]:
    inputs = s.inputs.alias("search_inputs")
    datasets = s.datasets.alias("search_datasets")
    if node.key == "context":
        column: ColumnElement[Any] = _json_text(inputs.c.tags, DATASET_CONTEXT_TAG)
    else:
        column = datasets.c[node.key]
    wanted = column.is_not(None) if node.op in (Op.IS_NULL, Op.IS_NOT_NULL) else None
    condition = wanted if wanted is not None else _compare(column, node.op, node.value)
    found = (
        select(inputs.c.run_id)
        .select_from(inputs.join(datasets, datasets.c.id == inputs.c.dataset_id))
        .where(inputs.c.run_id == s.runs.c.id, condition)
        .exists()
    )
    return not_(found) if node.op is Op.IS_NULL else found


def _run_clause(node: Node) -> ColumnElement[bool]:
    if isinstance(node, ast.And):
        return and_(*(_run_clause(item) for item in node.items))
    if isinstance(node, ast.Or):
        return or_(*(_run_clause(item) for item in node.items))
    if node.entity is Entity.METRIC:
        return _child_exists(s.latest_metrics.alias(), s.runs.c.id, "run_id", node)
    if node.entity is Entity.PARAM:
        return _child_exists(s.params.alias(), s.runs.c.id, "run_id", node)
    if node.entity is Entity.TAG:
        return _child_exists(s.tags.alias(), s.runs.c.id, "run_id", node)
    if node.entity is Entity.DATASET:
        return _dataset_exists(node)
    return _compare(_RUN_COLUMNS[node.key], node.op, node.value)


def _experiment_clause(node: Node) -> ColumnElement[bool]:
    if isinstance(node, ast.And):
        return and_(*(_experiment_clause(item) for item in node.items))
    if isinstance(node, ast.Or):
        return or_(*(_experiment_clause(item) for item in node.items))
    if node.entity is Entity.TAG:
        table = s.experiment_tags.alias()
        return _child_exists(table, s.experiments.c.id, "experiment_id", node)
    return _compare(_EXPERIMENT_COLUMNS[node.key], node.op, node.value)


def _in(column: ColumnElement[Any], values: Sequence[Any]) -> ColumnElement[bool]:
    """``=`` for one value so the planner can seek the index; ``IN`` otherwise."""
    if len(values) == 1:
        return column == values[0]
    return column.in_(values)


def _run_scope(experiment_ids: Sequence[int], stages: Sequence[str]) -> list[ColumnElement[bool]]:
    return [
        _in(s.runs.c.experiment_id, list(experiment_ids)),
        _in(s.runs.c.lifecycle_stage, list(stages)),
        *scope.runs_visible(),
    ]


# -- ordering -------------------------------------------------------------------------------


def _directed(column: ColumnElement[Any], ascending: bool) -> ColumnElement[Any]:
    if isinstance(column.type, String):
        column = _CodePointOrder(column)
    return column.asc() if ascending else column.desc()


def _conjuncts(node: Node | None) -> tuple[Node, ...]:
    if node is None:
        return ()
    return node.items if isinstance(node, ast.And) else (node,)


def _metric_bounds(node: Node | None, keys: list[OrderKey]) -> dict[str, list[Comparison]]:
    """Comparisons of the filter that bound a metric the search is ordered by.

    Such a metric exists, with a number, in every matching run, so its ordering join can
    be inner and carry those comparisons itself. The database then reads runs in the
    order of ``ix_latest_metrics_key_value`` and stops at the page size, instead of
    ranking every run of the experiment (2 ms instead of 95 ms over 100,000 runs).
    """
    ordered = {k.key for k in keys if k.entity is Entity.METRIC}
    bounds: dict[str, list[Comparison]] = {}
    for item in _conjuncts(node):
        if (
            isinstance(item, Comparison)
            and item.entity is Entity.METRIC
            and item.key in ordered
            and item.op not in (Op.IS_NULL, Op.IS_NOT_NULL)
        ):
            bounds.setdefault(item.key, []).append(item)
    return bounds


def _run_order(query: Select[Any], keys: list[OrderKey], bounds: dict[str, list[Comparison]]) -> Select[Any]:
    clauses: list[ColumnElement[Any]] = []
    seen: set[str] = set()
    for index, key in enumerate(keys):
        if key.entity is Entity.ATTRIBUTE:
            column = _RUN_COLUMNS[key.key]
            if column.nullable:
                clauses.append(column.is_(None))
            clauses.append(_directed(column, key.ascending))
            seen.add(key.key)
            continue
        table = {Entity.METRIC: s.latest_metrics, Entity.PARAM: s.params, Entity.TAG: s.tags}[key.entity]
        joined = table.alias(f"order_{index}")
        condition = and_(joined.c.run_id == s.runs.c.id, joined.c.key == key.key)
        if key.entity is Entity.METRIC and key.key in bounds:
            limits = [_compare(joined.c.value, b.op, b.value) for b in bounds.pop(key.key)]
            query = query.join(joined, and_(condition, joined.c.is_nan == false(), *limits))
            clauses.append(_directed(joined.c.value, key.ascending))
            continue
        query = query.outerjoin(joined, condition)
        if key.entity is Entity.METRIC:
            rank = case((joined.c.run_id.is_(None), 2), (joined.c.is_nan == true(), 1), else_=0)
            clauses.append(rank)
        else:
            clauses.append(joined.c.run_id.is_(None))
        clauses.append(_directed(joined.c.value, key.ascending))
    if "start_time" not in seen:
        clauses.append(s.runs.c.start_time.desc())
    if "run_id" not in seen:
        clauses.append(_directed(s.runs.c.run_uuid, True))
    return query.order_by(*clauses)


# -- public API -----------------------------------------------------------------------------


def build_run_query(
    experiment_ids: Sequence[int],
    stages: Sequence[str],
    filter_string: str | None,
    order_by: Sequence[str] | None,
) -> Select[Any]:
    """Select ``(runs.id, runs.run_uuid)`` of matching runs in search order.

    The caller adds ``offset``/``limit`` and loads the runs by id; keeping the search to
    two narrow columns lets the database answer from indexes and sort small rows.
    Raises ``InvalidInput`` for a bad filter or order_by.
    """
    node = ast.parse_run_filter(filter_string)
    keys = ast.parse_run_order_by(order_by)
    query = select(s.runs.c.id, s.runs.c.run_uuid).where(*_run_scope(experiment_ids, stages))
    bounds = _metric_bounds(node, keys)
    pushed = {id(b) for group in bounds.values() for b in group}
    remaining = [item for item in _conjuncts(node) if id(item) not in pushed]
    if remaining:
        query = query.where(and_(*(_run_clause(item) for item in remaining)))
    return _run_order(query, keys, bounds)


def build_run_count(
    experiment_ids: Sequence[int], stages: Sequence[str], filter_string: str | None
) -> Select[Any]:
    """``SELECT count(*)`` of the runs ``build_run_query`` would return, over all pages."""
    node = ast.parse_run_filter(filter_string)
    query = select(func.count()).select_from(s.runs).where(*_run_scope(experiment_ids, stages))
    if node is not None:
        query = query.where(_run_clause(node))
    return query


def build_experiment_query(
    stages: Sequence[str], filter_string: str | None, order_by: Sequence[str] | None
) -> Select[Any]:
    """Select ``experiments.id`` of matching experiments in search order.

    Without ``order_by`` the order is MLflow's: ``creation_time DESC, experiment_id ASC``;
    otherwise ``experiment_id DESC`` breaks ties unless the caller ordered by it.
    """
    node = ast.parse_experiment_filter(filter_string)
    keys = ast.parse_experiment_order_by(order_by) or [
        OrderKey(Entity.ATTRIBUTE, "creation_time", ascending=False),
        OrderKey(Entity.ATTRIBUTE, "experiment_id", ascending=True),
    ]
    query = select(s.experiments.c.id).where(
        _in(s.experiments.c.lifecycle_stage, list(stages)), *scope.workspace_is(s.experiments.c.workspace)
    )
    if node is not None:
        query = query.where(_experiment_clause(node))
    clauses = [_directed(_EXPERIMENT_COLUMNS[k.key], k.ascending) for k in keys]
    if all(k.key != "experiment_id" for k in keys):
        clauses.append(s.experiments.c.id.desc())
    return query.order_by(*clauses)
