"""Aliases and their history: every move is an event, written with its audit record.

``model_aliases`` says where each alias points now; ``model_alias_events`` says where it
pointed at any moment, who moved it, why and under which approval. The two change only
through :func:`record_move`, inside the caller's transaction, after the model's row was
locked, so the current pointer and the last event always agree.

Time travel: the version an alias named at time ``T`` is the ``new_version`` of its last
event at or before ``T`` (ties broken by event id, which follows commit order because
moves of one model serialize).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, RowMapping, delete, insert, select, update

from conveyor.store.base import now_ms
from conveyor.store.sql import schema_registry as r
from conveyor.store.sql.audit import ActorKind, AuditEvent, AuditLog
from conveyor.store.sql.registry_entities import AliasEvent, AliasMove
from conveyor.store.sql.store import SqlStore


def current(conn: Connection, model_id: int, alias: str) -> int | None:
    table = r.model_aliases
    return conn.execute(
        select(table.c.version).where(table.c.model_id == model_id, table.c.alias == alias)
    ).scalar_one_or_none()


def aliases_of(conn: Connection, model_id: int, version: int) -> list[str]:
    table = r.model_aliases
    query = select(table.c.alias).where(table.c.model_id == model_id, table.c.version == version)
    return sorted(conn.execute(query).scalars())


def aliases_by_model(conn: Connection, model_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    found: dict[int, dict[str, int]] = defaultdict(dict)
    if model_ids:
        table = r.model_aliases
        for row in conn.execute(select(table).where(table.c.model_id.in_(list(model_ids)))).mappings():
            found[row["model_id"]][row["alias"]] = row["version"]
    return found


def record_move(conn: Connection, store: SqlStore, model: RowMapping, move: AliasMove) -> AliasEvent:
    """Apply ``move`` to the pointer, append its event and its audit record, in ``conn``."""
    _apply(conn, model["id"], move)
    record = AuditLog(store).append(
        AuditEvent(
            actor=move.actor,
            actor_kind=ActorKind.USER,
            action="registry.alias.set" if move.new_version is not None else "registry.alias.delete",
            resource_type="model_alias",
            resource_id=f"{move.model_name}@{move.alias}",
            workspace=model["workspace"],
            before=None if move.old_version is None else {"version": move.old_version},
            after=None if move.new_version is None else {"version": move.new_version},
            details=_details(move),
        ),
        conn,
    )
    values = {
        "model_id": model["id"],
        "model_name": move.model_name,
        "alias": move.alias,
        "old_version": move.old_version,
        "new_version": move.new_version,
        "actor": move.actor,
        "time": record.time,
        "reason": move.reason,
        "approval_id": move.approval_id,
        "audit_seq": record.seq,
    }
    event_id = conn.execute(insert(r.model_alias_events).values(**values)).inserted_primary_key[0]
    conn.execute(
        update(r.registered_models)
        .where(r.registered_models.c.id == model["id"])
        .values(last_updated_time=now_ms())
    )
    return _event({"id": event_id, **values})


def history(conn: Connection, model_id: int, alias: str | None, at: int | None) -> list[AliasEvent]:
    table = r.model_alias_events
    query = select(table).where(table.c.model_id == model_id)
    if alias is not None:
        query = query.where(table.c.alias == alias)
    if at is not None:
        query = query.where(table.c.time <= at)
    return [_event(row) for row in conn.execute(query.order_by(table.c.time, table.c.id)).mappings()]


def _apply(conn: Connection, model_id: int, move: AliasMove) -> None:
    table = r.model_aliases
    where = (table.c.model_id == model_id, table.c.alias == move.alias)
    if move.new_version is None:
        conn.execute(delete(table).where(*where))
    elif move.old_version is None:
        conn.execute(insert(table).values(model_id=model_id, alias=move.alias, version=move.new_version))
    else:
        conn.execute(update(table).where(*where).values(version=move.new_version))


def _details(move: AliasMove) -> dict[str, Any]:
    found = {"reason": move.reason, "approval_id": move.approval_id}
    return {key: value for key, value in found.items() if value is not None}


def _event(row: Any) -> AliasEvent:
    return AliasEvent(
        id=row["id"],
        model_name=row["model_name"],
        alias=row["alias"],
        old_version=row["old_version"],
        new_version=row["new_version"],
        actor=row["actor"],
        time=row["time"],
        reason=row["reason"],
        approval_id=row["approval_id"],
        audit_seq=row["audit_seq"],
    )
