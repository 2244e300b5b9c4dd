"""Alert rules: the state machine, de-duplication, and signed webhooks to a real local receiver."""

# The fixtures come from monitor_fixtures by import, which pyflakes reads as redefinitions.
# ruff: noqa: F811

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from conveyor.errors import InvalidInput, NotFound
from conveyor.monitoring import alerts
from conveyor.monitoring.jobs import run_monitor
from conveyor.monitoring.points import MonitorPoint
from conveyor.registry.webhooks import WebhookDispatcher, WebhookService
from conveyor.store.sql.audit import AuditLog
from conveyor.store.sql.monitoring_entities import AlertRule, AlertState
from conveyor.testing.webhooks import WebhookReceiver
from tests.monitoring.monitor_fixtures import (  # noqa: F401 - fixtures by name
    END,
    Served,
    backend,
    model_dir,
    open_context,
    reference_frame,
    serve,
    served_sqlite,
)

SECRET = "monitor-secret-0123456789"
EVENTS = ["monitoring.alert.opened", "monitoring.alert.resolved", "monitoring.retrain.suggested"]


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as found:
        yield found


def rule(
    metric: str = "share_drifted", op: str = ">", threshold: float = 0.3, **options: object
) -> AlertRule:
    values = {"feature": "", "severity": "warning", "for_runs": 1, "suggest_retrain": False} | options
    return AlertRule("r1", "churn", metric, op=op, threshold=threshold, created_by="t", created=0, **values)  # type: ignore[arg-type]


def point(value: float, metric: str = "share_drifted", feature: str = "", end: int = 2) -> MonitorPoint:
    return MonitorPoint("churn", "1", "champion", end - 1, end, metric, feature, value)


def open_alert(feature: str = "") -> alerts.Alert:
    return alerts.Alert(
        "a1", "r1", "churn", "1", "share_drifted", feature, "warning", AlertState.OPEN, 0, None, 0.5, 1, None
    )


def test_decide_opens_updates_resolves_and_ignores_unknowns() -> None:
    assert [c.kind for c in alerts.decide([rule()], [point(0.5)], {}, [])] == ["open"]
    assert [c.kind for c in alerts.decide([rule()], [point(0.6)], {}, [open_alert()])] == ["update"]
    assert [c.kind for c in alerts.decide([rule()], [point(0.1)], {}, [open_alert()])] == ["resolve"]
    assert alerts.decide([rule()], [point(0.1)], {}, []) == []
    assert (
        alerts.decide([rule()], [point(0.5, metric="rows")], {}, [open_alert()]) == []
    )  # no value: no change
    assert alerts.decide([rule()], [point(float("nan"))], {}, []) == []


def test_decide_per_feature_and_for_several_windows() -> None:
    per_column = rule("drift_score", ">=", 0.2)
    found = alerts.decide(
        [per_column], [point(0.3, "drift_score", "a"), point(0.1, "drift_score", "b")], {}, []
    )
    assert [(c.kind, c.feature) for c in found] == [("open", "a")]
    only_b = rule("drift_score", ">=", 0.2, feature="b")
    assert alerts.decide([only_b], [point(0.3, "drift_score", "a")], {}, []) == []

    twice = rule(for_runs=2)
    assert alerts.decide([twice], [point(0.5)], {("r1", ""): [0.5]}, []) == []  # one window so far
    assert alerts.decide([twice], [point(0.5)], {("r1", ""): [0.5, 0.1]}, []) == []  # the last was fine
    assert [c.kind for c in alerts.decide([twice], [point(0.5)], {("r1", ""): [0.5, 0.4]}, [])] == ["open"]


def test_rules_are_checked(served_sqlite: Served) -> None:
    ctx = served_sqlite.ctx
    with pytest.raises(InvalidInput, match="Unknown monitor metric"):
        alerts.add_rule(ctx, served_sqlite.name, "drift", ">", 0.3)
    with pytest.raises(InvalidInput, match="Unknown operator"):
        alerts.add_rule(ctx, served_sqlite.name, "share_drifted", "=>", 0.3)
    with pytest.raises(InvalidInput, match="severity"):
        alerts.add_rule(ctx, served_sqlite.name, "share_drifted", ">", 0.3, severity="panic")
    with pytest.raises(NotFound):
        alerts.add_rule(ctx, "no-such-model", "share_drifted", ">", 0.3)


def verify(receiver: WebhookReceiver) -> list[dict[str, object]]:
    """Every request's signature is the HMAC-SHA256 of its raw body under the secret."""
    bodies = []
    for headers, body in receiver.requests:
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["x-conveyor-signature"], expected)
        bodies.append(json.loads(body))
    return bodies


def test_breach_opens_once_with_signed_webhooks_and_resolves_when_it_clears(
    backend: str, tmp_path: Path, model_dir: Path, receiver: WebhookReceiver
) -> None:
    ctx, _ = open_context(backend, tmp_path)  # events: the webhooks' outbox
    hooks = WebhookService(ctx.store)
    hook = hooks.create(f"monitor-{tmp_path.name}", receiver.url, EVENTS, secret=SECRET)
    dispatcher = WebhookDispatcher(ctx.store, base_delay_ms=0)
    try:
        served = serve(ctx, model_dir)
        added = alerts.add_rule(ctx, served.name, "share_drifted", ">", 0.2, suggest_retrain=True)
        hours = [END, END + timedelta(hours=1), END + timedelta(hours=2)]
        for index, (end, shift) in enumerate(zip(hours, (2.0, 2.0, 0.0), strict=True)):
            served.log(
                reference_frame(300, seed=20 + index, shift=shift),
                at=end - timedelta(minutes=30),
                prefix=f"h{index}-",
            )

        first = run_monitor(ctx, served.uri, window="1h", end=hours[0])
        assert [a.state for a in first.alerts] == [AlertState.OPEN]
        dispatcher.dispatch_once()
        assert receiver.events() == ["monitoring.alert.opened", "monitoring.retrain.suggested"]
        opened = verify(receiver)[0]
        assert opened["data"]["alert"]["alert_id"] == first.alerts[0].alert_id  # type: ignore[index]
        assert opened["data"]["rule"]["rule_id"] == added.rule_id  # type: ignore[index]
        assert opened["data"]["model"] == served.name and opened["data"]["value"] > 0.2  # type: ignore[index, operator]

        second = run_monitor(ctx, served.uri, window="1h", end=hours[1])
        assert [(a.alert_id, a.state) for a in second.alerts] == [(first.alerts[0].alert_id, AlertState.OPEN)]
        assert dispatcher.dispatch_once() == 0  # the breach persists: no new event
        assert len(alerts.list_alerts(ctx, served.name, open_only=True)) == 1

        third = run_monitor(ctx, served.uri, window="1h", end=hours[2])
        assert [a.state for a in third.alerts] == [AlertState.RESOLVED]
        dispatcher.dispatch_once()
        assert receiver.events()[2:] == ["monitoring.alert.resolved"]
        resolved = verify(receiver)[2]
        assert resolved["data"]["alert"]["resolved_at"] is not None  # type: ignore[index]
        assert alerts.list_alerts(ctx, served.name, open_only=True) == []

        records = AuditLog(ctx.store).read(
            0, 20, resource_type="monitor_alert", resource_id=first.alerts[0].alert_id
        )
        actions = [r.action for r in records]
        assert actions == ["monitoring.alert.open", "monitoring.alert.update", "monitoring.alert.resolve"]
    finally:
        hooks.delete(hook.name)
        ctx.close()


def test_removing_a_rule_resolves_its_alerts_and_backfills_do_not_move_alerts(served_sqlite: Served) -> None:
    served = served_sqlite
    ctx = served.ctx
    added = alerts.add_rule(ctx, served.name, "drift_detected", "==", 1.0, feature="input.x1", for_runs=2)
    for index, end in enumerate((END, END + timedelta(hours=1))):
        served.log(
            reference_frame(200, seed=30 + index, shift=2.0),
            at=end - timedelta(minutes=30),
            prefix=f"b{index}-",
        )
    assert run_monitor(ctx, served.uri, window="1h", end=END).alerts == []  # one breach of the two needed
    opened = run_monitor(ctx, served.uri, window="1h", end=END + timedelta(hours=1)).alerts
    assert [(a.state, a.feature) for a in opened] == [(AlertState.OPEN, "input.x1")]

    # A re-run of the older window replaces its points but leaves the alerts alone.
    assert run_monitor(ctx, served.uri, window="1h", end=END).alerts == []
    assert alerts.list_rules(ctx, served.name) == [added]

    alerts.remove_rule(ctx, added.rule_id)
    assert alerts.list_rules(ctx, served.name) == []
    assert [a.state for a in alerts.list_alerts(ctx, served.name)] == [AlertState.RESOLVED]
    with pytest.raises(NotFound):
        alerts.remove_rule(ctx, added.rule_id)
