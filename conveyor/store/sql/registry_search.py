"""Registry searches compiled to SQL: filters become WHERE clauses, never Python post-filters.

The grammar is the shared one (:mod:`conveyor.store.search`); this module only maps its
attribute names to registry columns, and tags to ``EXISTS`` over the tag tables, so a page
of results is one indexed query however many rows exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, false, not_, or_, select

from conveyor.store import search as q
from conveyor.store.sql import schema_registry as r
from conveyor.store.sql import scope
from conveyor.store.sql.search import _child_exists, _compare, _directed

#: MLflow clients add ``tag.`mlflow.prompt.is_prompt` != 'true'`` to every registered-model
#: search to hide prompts. Models never carry that tag, so for this one key ``!=`` must
#: mean "has no such tag with that value", as MLflow's own server special-cases it.
PROMPT_TAG = "mlflow.prompt.is_prompt"

_MODEL_COLUMNS: dict[str, ColumnElement[Any]] = {
    "name": r.registered_models.c.name,
    "creation_timestamp": r.registered_models.c.creation_time,
    "last_updated_timestamp": r.registered_models.c.last_updated_time,
}

_VERSION_COLUMNS: dict[str, ColumnElement[Any]] = {
    "name": r.registered_models.c.name,
    "version_number": r.model_versions.c.version,
    "run_id": r.model_versions.c.run_id,
    "source_path": r.model_versions.c.source,
    "current_stage": r.model_versions.c.current_stage,
    "status": r.model_versions.c.status,
    "model_digest": r.model_versions.c.model_digest,
    "creation_timestamp": r.model_versions.c.creation_time,
    "last_updated_timestamp": r.model_versions.c.last_updated_time,
}


def _clause(node: q.Node, columns: dict[str, ColumnElement[Any]], tags: Any, owner: Any, fk: str) -> Any:
    if isinstance(node, q.And):
        return and_(*(_clause(item, columns, tags, owner, fk) for item in node.items))
    if isinstance(node, q.Or):
        return or_(*(_clause(item, columns, tags, owner, fk) for item in node.items))
    if node.entity is q.Entity.TAG:
        if node.key == PROMPT_TAG and node.op is q.Op.NE:
            return not_(_child_exists(tags.alias(), owner, fk, replace(node, op=q.Op.EQ)))
        return _child_exists(tags.alias(), owner, fk, node)
    return _compare(columns[node.key], node.op, node.value)


def build_model_query(filter_string: str | None, order_by: Sequence[str] | None) -> Select[Any]:
    """Select ``registered_models.id`` of matching models; ``name ASC`` breaks ties."""
    node = q.parse_registered_model_filter(filter_string)
    keys = q.parse_registered_model_order_by(order_by)
    table = r.registered_models
    query = select(table.c.id).where(*scope.workspace_is(table.c.workspace))
    if node is not None:
        query = query.where(_clause(node, _MODEL_COLUMNS, r.registered_model_tags, table.c.id, "model_id"))
    clauses = [_directed(_MODEL_COLUMNS[k.key], k.ascending) for k in keys]
    if all(k.key != "name" for k in keys):
        clauses.append(table.c.name.asc())
    return query.order_by(*clauses)


def build_version_query(filter_string: str | None, order_by: Sequence[str] | None) -> Select[Any]:
    """Select ``model_versions.id`` of live matching versions; ``name ASC, version DESC`` break ties."""
    node = q.parse_model_version_filter(filter_string)
    keys = q.parse_model_version_order_by(order_by)
    versions, models = r.model_versions, r.registered_models
    query = (
        select(versions.c.id)
        .select_from(versions.join(models, models.c.id == versions.c.model_id))
        .where(versions.c.deleted == false(), *scope.workspace_is(models.c.workspace))
    )
    if node is not None:
        query = query.where(
            _clause(node, _VERSION_COLUMNS, r.model_version_tags, versions.c.id, "version_id")
        )
    clauses = [_directed(_VERSION_COLUMNS[k.key], k.ascending) for k in keys]
    if all(k.key != "name" for k in keys):
        clauses.append(models.c.name.asc())
    if all(k.key != "version_number" for k in keys):
        clauses.append(versions.c.version.desc())
    return query.order_by(*clauses)
