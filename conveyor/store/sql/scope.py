"""The workspace filter every query of a scoped table carries.

Isolation lives in the queries, not in the pages they return: a search in one workspace
never reads another's rows, so counts, page sizes and page tokens are right, and a lookup
by id of another workspace's object finds nothing, as if it did not exist (404, not 403:
whether an id exists elsewhere is itself something the caller may not learn).

Each helper returns a list of conditions to splat into ``.where(...)``: empty when the
caller sees every workspace (:func:`~conveyor.store.actor.current_workspace` is None).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, Connection, select

from conveyor.store.actor import current_workspace
from conveyor.store.sql import schema as s
from conveyor.store.sql import schema_registry as r


def workspace_is(column: Any) -> list[ColumnElement[bool]]:
    """``column`` (a table's own ``workspace``) equals the caller's workspace."""
    workspace = current_workspace()
    return [] if workspace is None else [column == workspace]


def owned_by(column: Any, owner_key: Any, owner_workspace: Any) -> list[ColumnElement[bool]]:
    """``column`` names an owner (by ``owner_key``) whose ``owner_workspace`` is the caller's.

    For tables that belong to an experiment, a model or a pipeline run: one indexed
    subquery instead of a join, so the statements that use it keep their shape.
    """
    in_workspace = workspace_is(owner_workspace)
    return [column.in_(select(owner_key).where(*in_workspace))] if in_workspace else []


def experiment_visible(experiment_id_column: Any) -> list[ColumnElement[bool]]:
    """``experiment_id_column`` names an experiment of the caller's workspace (runs, logged models)."""
    return owned_by(experiment_id_column, s.experiments.c.id, s.experiments.c.workspace)


def runs_visible() -> list[ColumnElement[bool]]:
    """Runs whose experiment is in the caller's workspace."""
    return experiment_visible(s.runs.c.experiment_id)


_EXPERIMENT_PATH = re.compile(r"^(?P<experiment>[0-9]+)(?:/|$)")
_MODEL_PATH = re.compile(r"^registry/(?P<model>[^/]+)(?:/|$)")


def visible_artifact_paths(conn: Connection, paths: Iterable[str]) -> set[str]:
    """Which of ``paths`` (relative to the artifact root) the caller may see.

    A path under ``<experiment id>/`` belongs to that experiment's workspace, one under
    ``registry/<model>/`` to the model's; any other path is shared by every workspace.
    """
    paths = list(paths)
    workspace = current_workspace()
    if workspace is None:
        return set(paths)
    experiments = {m["experiment"] for p in paths if (m := _EXPERIMENT_PATH.match(p))}
    models = {m["model"] for p in paths if (m := _MODEL_PATH.match(p))}
    seen_experiments = _owned(
        conn, s.experiments.c.id, s.experiments.c.workspace, {int(e) for e in experiments}
    )
    seen_models = _owned(conn, r.registered_models.c.name, r.registered_models.c.workspace, models)
    return {p for p in paths if _owner_seen(p, {str(e) for e in seen_experiments}, seen_models)}


def _owned(conn: Connection, key: Any, workspace_column: Any, keys: set[Any]) -> set[Any]:
    if not keys:
        return set()
    query = select(key).where(key.in_(sorted(keys)), *workspace_is(workspace_column))
    return set(conn.execute(query).scalars())


def _owner_seen(path: str, experiments: set[str], models: set[str]) -> bool:
    if match := _EXPERIMENT_PATH.match(path):
        return match["experiment"] in experiments
    if match := _MODEL_PATH.match(path):
        return match["model"] in models
    return True
