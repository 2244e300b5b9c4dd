"""The audit records the SQL stores append inside their own write transactions.

Each store mutation calls :func:`record` (or :func:`record_many`) with the connection of
the transaction that makes the change, so the change and its record commit together or
not at all, and a refused change leaves no record. The actor comes from
:func:`conveyor.store.actor.current_actor`: the server's request, or the OS user.

Logging is the hot path, so a batch of metrics, params or tags makes one record per kind
(counts and keys in ``details``), never one per point, and ``before``/``after`` are small
dicts of the changed fields, hashed but not stored (:mod:`conveyor.store.sql.audit`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection

from conveyor.store.actor import current_actor
from conveyor.store.entities import Metric, Param, Tag
from conveyor.store.sql.audit import AuditEvent, append_events, state_digest

#: Characters of keys listed per record; the rest are counted. Keeps ``details`` far
#: below the log's 8 KiB limit even for four-byte UTF-8 keys.
_KEYS_BUDGET = 1500
#: Longest ``resource_id`` the log stores; longer ones (deep artifact paths) are digested.
_MAX_ID = 500


def event(
    action: str,
    resource_type: str,
    resource_id: str,
    *,
    before: Any = None,
    after: Any = None,
    details: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """An event by the current actor: the one the server set for this request, or the OS user."""
    actor = current_actor()
    return AuditEvent(
        actor=actor.name,
        actor_kind=actor.kind,
        source=actor.source,
        workspace=actor.workspace,
        request_id=actor.request_id,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id if len(resource_id) <= _MAX_ID else f"sha256:{state_digest(resource_id)}",
        before=before,
        after=after,
        details=details,
    )


def record(
    conn: Connection,
    action: str,
    resource_type: str,
    resource_id: str,
    *,
    before: Any = None,
    after: Any = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Append one record in ``conn``'s transaction (see :func:`event` for the fields)."""
    append_events(
        conn, [event(action, resource_type, resource_id, before=before, after=after, details=details)]
    )


def record_many(conn: Connection, events: Sequence[AuditEvent]) -> None:
    """Append several records with one read of the chain's head and one insert."""
    append_events(conn, events)


def batch_events(
    run_id: str, metrics: list[Metric], params: list[Param], tags: list[Tag]
) -> list[AuditEvent]:
    """One event per kind of data in a ``log_batch``: params, tags, then metrics."""
    events = []
    if params:
        after = {p.key: p.value for p in params}
        details = {"run_id": run_id, "count": len(after), **key_list(after)}
        events.append(event("run.params.log", "run", run_id, after=after, details=details))
    if tags:
        after = {t.key: t.value for t in tags}
        details = {"run_id": run_id, "count": len(after), **key_list(after)}
        events.append(event("run.tags.set", "run", run_id, after=after, details=details))
    if metrics:
        events.append(metrics_event(run_id, metrics))
    return events


def metrics_event(run_id: str, metrics: list[Metric]) -> AuditEvent:
    """One event for a batch of points: their count and keys, and the digest of the points."""
    points = [(m.key, m.value, m.step, m.timestamp) for m in metrics]
    details = {"run_id": run_id, "points": len(points), **key_list(m.key for m in metrics)}
    return event("run.metrics.log", "run", run_id, after=points, details=details)


def key_list(keys: Iterable[str]) -> dict[str, Any]:
    """``{"keys": [...]}`` sorted, plus ``keys_omitted`` when listing them all would be too long."""
    unique = sorted(set(keys))
    listed, used = [], 0
    for key in unique:
        used += len(key) + 3
        if used > _KEYS_BUDGET:
            break
        listed.append(key)
    out: dict[str, Any] = {"keys": listed}
    if len(listed) < len(unique):
        out["keys_omitted"] = len(unique) - len(listed)
    return out


__all__ = ["batch_events", "event", "key_list", "metrics_event", "record", "record_many"]
