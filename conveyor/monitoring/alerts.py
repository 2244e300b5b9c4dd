"""Alert rules on monitor results, and deciding what a new window does to the alerts.

A rule is ``metric op threshold`` on a model (``share_drifted > 0.3``), optionally for one
feature, with a severity, and ``for_runs``: how many windows in a row must breach before
an alert opens (1: the first). After each monitor run:

- a breach without an open alert for (rule, feature) **opens** one: an alert record, a
  ``monitoring.alert.opened`` webhook event, and ``monitoring.retrain.suggested`` when the
  rule has ``suggest_retrain``;
- a breach with an open alert **updates** its last value and sends nothing (one open
  alert per rule and feature while the breach persists: no alert storm every hour);
- no breach with an open alert **resolves** it (``monitoring.alert.resolved``);
- no value (an empty window, a column gone from the logs) changes nothing: an unknown is
  not a recovery.

A rule whose ``feature`` is empty applies to a dataset-level metric, or to every feature
of a per-column one, each with its own alert. Only the model's latest window is judged: a
re-run of an older window (a backfill) replaces its points but does not move alerts.

:func:`decide` is pure (rules, values, history and open alerts in; changes out), so the
state machine is tested without a database; :func:`evaluate` reads and writes the store.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from conveyor.errors import InvalidInput
from conveyor.monitoring.context import alert_records
from conveyor.monitoring.points import METRICS, MonitorPoint
from conveyor.store.sql.monitoring_entities import OPERATORS, SEVERITIES, Alert, AlertChange, AlertRule
from conveyor.tracking.context import current_user

if TYPE_CHECKING:
    from conveyor.monitoring.context import MonitorContext
    from conveyor.store.sql.monitoring_alerts import SqlAlertStore
    from conveyor.store.sql.store import SqlStore

    Store = SqlStore | SqlAlertStore | MonitorContext

__all__ = [
    "OPERATORS",
    "SEVERITIES",
    "Alert",
    "AlertRule",
    "add_rule",
    "decide",
    "evaluate",
    "list_alerts",
    "list_rules",
    "remove_rule",
]

#: {(rule id, feature): [values of the last ``for_runs`` windows, newest first]}.
History = Mapping[tuple[str, str], Sequence[float]]


def add_rule(
    store: Store,
    model: str,
    metric: str,
    op: str,
    threshold: float,
    *,
    feature: str = "",
    severity: str = "warning",
    for_runs: int = 1,
    suggest_retrain: bool = False,
    actor: str | None = None,
) -> AlertRule:
    """Add an alert rule on ``model``'s monitor results.

    Raises:
        InvalidInput: an unknown metric, operator or severity, or ``for_runs`` below 1.
        NotFound: no such registered model (in the caller's workspace).
    """
    if metric not in METRICS:
        raise InvalidInput(f"Unknown monitor metric {metric!r}: use one of {', '.join(METRICS)}")
    return alert_records(store).add_rule(
        model,
        metric,
        op,
        threshold,
        feature=feature,
        severity=severity,
        for_runs=for_runs,
        suggest_retrain=suggest_retrain,
        created_by=actor or current_user(),
    )


def list_rules(store: Store, model: str | None = None) -> list[AlertRule]:
    """Rules of one model, or all the caller can see."""
    return alert_records(store).list_rules(model)


def remove_rule(store: Store, rule_id: str) -> AlertRule:
    """Delete a rule; its open alerts are resolved. Raises: NotFound."""
    return alert_records(store).remove_rule(rule_id)


def list_alerts(
    store: Store, model: str | None = None, *, open_only: bool = False, limit: int = 100
) -> list[Alert]:
    """Alerts, newest first."""
    return alert_records(store).list_alerts(model, open_only=open_only, limit=limit)


def decide(
    rules: Sequence[AlertRule],
    points: Sequence[MonitorPoint],
    history: History,
    open_alerts: Sequence[Alert],
    *,
    run_id: str | None = None,
) -> list[AlertChange]:
    """What the window of ``points`` does to the alerts; see the module docstring.

    ``history`` holds, for rules with ``for_runs > 1``, the values of the last
    ``for_runs`` windows (this one included), newest first.
    """
    opened = {(a.rule_id, a.feature) for a in open_alerts}
    changes: list[AlertChange] = []
    for rule in rules:
        for found in _matching(rule, points):
            key = (rule.rule_id, found.feature)
            values = history.get(key, [found.value]) if rule.for_runs > 1 else [found.value]
            breach = len(values) >= rule.for_runs and all(rule.holds(v) for v in values[: rule.for_runs])
            kind = _transition(breach, key in opened)
            if kind is not None:
                changes.append(_change(kind, rule, found, run_id))
    return changes


def evaluate(
    ctx: MonitorContext, points: Sequence[MonitorPoint], *, run_id: str | None = None
) -> list[Alert]:
    """Judge the rules of the points' model on its new window and store the changes.

    Returns the alerts opened, updated or resolved (with their webhook events queued in
    the same transaction). Does nothing for a window older than the model's latest.
    """
    if not points:
        return []
    first = points[0]
    rules = ctx.alerts.list_rules(first.model)
    if not rules or ctx.records.has_later_window(first.model, first.window_end):
        return []
    history = _history(ctx, rules, first)
    changes = decide(rules, points, history, ctx.alerts.open_alerts(first.model), run_id=run_id)
    return ctx.alerts.apply(changes)


def _transition(breach: bool, is_open: bool) -> str | None:
    """The state machine: (breach, open) -> open, update, resolve or nothing."""
    if breach:
        return "update" if is_open else "open"
    return "resolve" if is_open else None


def _matching(rule: AlertRule, points: Sequence[MonitorPoint]) -> list[MonitorPoint]:
    return [p for p in points if p.metric == rule.metric and (not rule.feature or p.feature == rule.feature)]


def _history(
    ctx: MonitorContext, rules: Sequence[AlertRule], point: MonitorPoint
) -> dict[tuple[str, str], list[float]]:
    """Values of the last ``for_runs`` windows per (rule, feature), newest first; NaN where absent."""
    found: dict[tuple[str, str], list[float]] = {}
    for rule in (r for r in rules if r.for_runs > 1):
        windows = ctx.records.recent_windows(
            point.model, point.version, rule.metric, point.window_end, rule.for_runs
        )
        ends = sorted(windows, reverse=True)
        features = {f for values in windows.values() for f in values if not rule.feature or f == rule.feature}
        for feature in features:
            found[(rule.rule_id, feature)] = [windows[end].get(feature, math.nan) for end in ends]
    return found


def _change(kind: str, rule: AlertRule, point: MonitorPoint, run_id: str | None) -> AlertChange:
    context: dict[str, Any] = {
        "model": point.model,
        "version": point.version,
        "alias": point.alias,
        "metric": point.metric,
        "feature": point.feature,
        "value": point.value,
        "estimated": point.estimated,
        "window_start": point.window_start,
        "window_end": point.window_end,
        "run_id": run_id,
    }
    return AlertChange(
        kind, rule, point.feature, point.version, point.value, point.window_end, run_id, context
    )
