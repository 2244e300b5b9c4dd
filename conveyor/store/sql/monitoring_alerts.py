"""Alert rules and alerts of model monitoring on the SQL store.

:meth:`SqlAlertStore.apply` writes what an evaluation decided (open, update, resolve) in
one transaction, with an audit record per change and the webhook events (``EventHook``,
the registry's outbox by default) on the same connection: an alert, its record and its
notification commit together or not at all. A unique ``open_key`` keeps one open alert
per rule and feature even when two monitor runs race.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy import exc as sa_exc

from conveyor.errors import Conflict, NotFound
from conveyor.store.base import now_ms
from conveyor.store.sql import audit_hooks as audit
from conveyor.store.sql import schema_monitoring as m
from conveyor.store.sql.monitoring import check_model, models_visible
from conveyor.store.sql.monitoring_entities import (
    Alert,
    AlertChange,
    AlertRule,
    AlertState,
    alert,
    alert_rule,
    check_rule,
    open_key,
)
from conveyor.store.sql.store import SqlStore
from conveyor.store.sql.webhooks import EventHook, SqlWebhookStore, publish

OPENED = "monitoring.alert.opened"
RESOLVED = "monitoring.alert.resolved"
RETRAIN = "monitoring.retrain.suggested"
DEFAULT_ALERT_LIMIT = 100


class SqlAlertStore:
    """Alert rules and alerts in the metadata database.

    Args:
        store: The SQL metadata store.
        events: Called in each alert change's transaction with ``(conn, event, payload)``;
            None (the default) queues webhook deliveries; ``()`` sends nothing.
    """

    def __init__(self, store: SqlStore, events: Sequence[EventHook] | None = None) -> None:
        self.store = store
        self.events = (SqlWebhookStore(store).enqueue,) if events is None else tuple(events)

    # -- rules -------------------------------------------------------------------------------

    def add_rule(
        self,
        model: str,
        metric: str,
        op: str,
        threshold: float,
        *,
        feature: str = "",
        severity: str = "warning",
        for_runs: int = 1,
        suggest_retrain: bool = False,
        created_by: str,
    ) -> AlertRule:
        """Store a rule on ``model`` (audited).

        Raises:
            InvalidInput: an unknown operator or severity, ``for_runs`` out of range.
            NotFound: no such registered model in the caller's workspace.
        """
        check_rule(op, severity, for_runs, threshold)
        values = {
            "id": uuid.uuid4().hex,
            "model": model,
            "metric": metric,
            "feature": feature or "",
            "op": op,
            "threshold": float(threshold),
            "severity": severity,
            "for_runs": for_runs,
            "suggest_retrain": suggest_retrain,
            "created_by": created_by,
            "created": now_ms(),
        }
        with self.store._write() as conn:
            check_model(conn, model)
            conn.execute(insert(m.monitor_alert_rules).values(**values))
            rule = alert_rule(values)  # type: ignore[arg-type]
            audit.record(conn, "monitoring.rule.create", "monitor_rule", rule.rule_id, after=rule.to_json())
        return rule

    def list_rules(self, model: str | None = None) -> list[AlertRule]:
        """Rules of one model, or every rule the caller can see, by model then creation."""
        table = m.monitor_alert_rules
        query = select(table).where(*models_visible(table.c.model))
        if model is not None:
            query = query.where(table.c.model == model)
        with self.store._read() as conn:
            rows = conn.execute(query.order_by(table.c.model, table.c.created, table.c.id)).mappings()
            return [alert_rule(row) for row in rows]

    def remove_rule(self, rule_id: str) -> AlertRule:
        """Delete a rule; its open alerts are resolved (with their webhook events).

        Raises:
            NotFound: no such rule (in the caller's workspace).
        """
        table = m.monitor_alert_rules
        with self.store._write() as conn:
            row = (
                conn.execute(select(table).where(table.c.id == rule_id, *models_visible(table.c.model)))
                .mappings()
                .first()
            )
            if row is None:
                raise NotFound(
                    f"Alert rule {rule_id!r} not found; `conveyor monitor alerts rules` lists them"
                )
            rule = alert_rule(row)
            for found in _open_alerts(conn, rule_id=rule_id):
                context = {"model": rule.model, "version": found.version, "reason": "rule removed"}
                change = AlertChange(
                    "resolve", rule, found.feature, found.version, None, found.last_window_end, None, context
                )
                self._resolve(conn, replace(change, alert_id=found.alert_id), now_ms())
            conn.execute(delete(table).where(table.c.id == rule_id))
            audit.record(conn, "monitoring.rule.delete", "monitor_rule", rule_id, before=rule.to_json())
        return rule

    # -- alerts ------------------------------------------------------------------------------

    def list_alerts(
        self, model: str | None = None, *, open_only: bool = False, limit: int = DEFAULT_ALERT_LIMIT
    ) -> list[Alert]:
        """Alerts, newest first, of one model or all the caller can see."""
        table = m.monitor_alerts
        query = select(table).where(*models_visible(table.c.model))
        if model is not None:
            query = query.where(table.c.model == model)
        if open_only:
            query = query.where(table.c.state == AlertState.OPEN.value)
        query = query.order_by(table.c.opened_at.desc(), table.c.id).limit(max(1, limit))
        with self.store._read() as conn:
            return [alert(row) for row in conn.execute(query).mappings()]

    def open_alerts(self, model: str) -> list[Alert]:
        """The model's open alerts (what an evaluation compares with)."""
        with self.store._read() as conn:
            return _open_alerts(conn, model=model)

    def apply(self, changes: Sequence[AlertChange]) -> list[Alert]:
        """Write the changes of one evaluation in one transaction; returns the alerts as stored.

        An ``open`` that finds the pair already open (a concurrent run got there first)
        becomes an ``update``; an ``update`` or ``resolve`` of an alert resolved meanwhile
        does nothing.

        Raises:
            Conflict: a concurrent evaluation opened the same alert between the check and
                the insert (PostgreSQL); running the monitor again settles it.
        """
        if not changes:
            return []
        now = now_ms()
        try:
            with self.store._write() as conn:
                return [a for c in changes if (a := self._apply(conn, c, now)) is not None]
        except sa_exc.IntegrityError as exc:
            raise Conflict("Another monitor run changed these alerts at the same time; run it again") from exc

    def _apply(self, conn: Connection, change: AlertChange, now: int) -> Alert | None:
        current = _open_alerts(conn, rule_id=change.rule.rule_id, feature=change.feature)
        if change.kind == "open" and not current:
            return self._open(conn, change, now)
        if not current:
            return None  # resolved meanwhile: nothing to update or resolve
        change = replace(change, alert_id=current[0].alert_id)
        if change.kind == "resolve":
            return self._resolve(conn, change, now)
        return self._update(conn, change)

    def _open(self, conn: Connection, change: AlertChange, now: int) -> Alert:
        rule = change.rule
        values = {
            "id": uuid.uuid4().hex,
            "rule_id": rule.rule_id,
            "model": rule.model,
            "version": change.version,
            "metric": rule.metric,
            "feature": change.feature,
            "severity": rule.severity,
            "state": AlertState.OPEN.value,
            "open_key": open_key(rule.rule_id, change.feature),
            "opened_at": now,
            "last_value": change.value,
            "last_window_end": change.window_end,
            "last_run_id": change.run_id,
        }
        conn.execute(insert(m.monitor_alerts).values(**values))
        opened = _alert(conn, values["id"])
        audit.record(conn, "monitoring.alert.open", "monitor_alert", opened.alert_id, after=opened.to_json())
        publish(conn, self.events, OPENED, _payload(change, opened))
        if rule.suggest_retrain:
            publish(conn, self.events, RETRAIN, _payload(change, opened))
        return opened

    def _update(self, conn: Connection, change: AlertChange) -> Alert:
        """The breach persists: remember the latest value, send nothing (de-duplication)."""
        table = m.monitor_alerts
        values = {
            "version": change.version,
            "last_value": change.value,
            "last_window_end": change.window_end,
            "last_run_id": change.run_id,
        }
        conn.execute(update(table).where(table.c.id == change.alert_id).values(**values))
        audit.record(conn, "monitoring.alert.update", "monitor_alert", str(change.alert_id), after=values)
        return _alert(conn, str(change.alert_id))

    def _resolve(self, conn: Connection, change: AlertChange, now: int) -> Alert:
        table = m.monitor_alerts
        alert_id = str(change.alert_id)
        values: dict[str, Any] = {"state": AlertState.RESOLVED.value, "open_key": None, "resolved_at": now}
        if change.value is not None:
            values.update(
                last_value=change.value, last_window_end=change.window_end, last_run_id=change.run_id
            )
        conn.execute(update(table).where(table.c.id == alert_id).values(**values))
        resolved = _alert(conn, alert_id)
        audit.record(conn, "monitoring.alert.resolve", "monitor_alert", alert_id, after=resolved.to_json())
        publish(conn, self.events, RESOLVED, _payload(change, resolved))
        return resolved


def _payload(change: AlertChange, found: Alert) -> dict[str, Any]:
    return {**change.context, "rule": change.rule.to_json(), "alert": found.to_json()}


def _alert(conn: Connection, alert_id: str) -> Alert:
    query = select(m.monitor_alerts).where(m.monitor_alerts.c.id == alert_id)
    return alert(conn.execute(query).mappings().one())


def _open_alerts(
    conn: Connection, *, model: str | None = None, rule_id: str | None = None, feature: str | None = None
) -> list[Alert]:
    table = m.monitor_alerts
    query = select(table).where(table.c.state == AlertState.OPEN.value)
    if model is not None:
        query = query.where(table.c.model == model)
    if rule_id is not None:
        query = query.where(table.c.rule_id == rule_id)
    if feature is not None:
        query = query.where(table.c.feature == feature)
    return [alert(row) for row in conn.execute(query.order_by(table.c.opened_at, table.c.id)).mappings()]
