"""``/api/conveyor/v1/monitoring``: monitor results, runs, profiles, alert rules and alerts over HTTP.

Reads are GETs (``read`` with ``--auth``); adding and removing alert rules are POST and
DELETE (``write``). The routes only translate HTTP to :mod:`conveyor.monitoring.results`
and :mod:`conveyor.monitoring.alerts` calls and back; the store answers "not found" for
another workspace's models, as the registry does. Times are epoch milliseconds (UTC);
``since``/``until`` also take ISO 8601, and ``last=24h`` means "until now".

Monitor runs themselves are not started here: a run reads a whole window of logs, which
belongs in ``conveyor monitor run`` or a schedule, not in a request.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Query, Request

from conveyor.errors import InvalidInput
from conveyor.monitoring import alerts, results
from conveyor.monitoring._time import parse_duration, parse_instant, to_ms
from conveyor.monitoring.context import monitor_records
from conveyor.server.mlflow_api.registry_wire import actor
from conveyor.server.requests import json_body
from conveyor.store.sql.store import SqlStore

MONITORING_PREFIX = "/api/conveyor/v1/monitoring"
MAX_LIMIT = 1000
_RULE_FIELDS = {"model", "metric", "op", "threshold", "feature", "severity", "for_runs", "suggest_retrain"}


def build_router(store: SqlStore) -> APIRouter:
    """The monitoring routes, bound to the SQL metadata store."""
    router = APIRouter(prefix=MONITORING_PREFIX, tags=["conveyor: monitoring"])

    @router.get("/points/latest", summary="Every point of each model version's latest window")
    def latest(model: str | None = None) -> dict[str, Any]:
        return {"points": [p.to_dict() for p in results.latest_points(store, model)]}

    @router.get("/points", summary="A model's points whose window ends in (since, until]")
    def points(
        model: str,
        since: str | None = None,
        until: str | None = None,
        last: str | None = None,
        metric: str | None = None,
        feature: str | None = None,
        version: str | None = None,
    ) -> dict[str, Any]:
        low, high = _range(since, until, last)
        found = results.points(store, model, low, high, metric, feature=feature, version=version)
        return {"points": [p.to_dict() for p in found]}

    @router.get("/runs", summary="Monitor runs, newest first")
    def runs(model: str | None = None, limit: int = 50) -> dict[str, Any]:
        return {"runs": [r.to_json() for r in results.list_runs(store, model, _limit(limit))]}

    @router.get("/runs/{run_id}", summary="One monitor run")
    def run(run_id: str) -> dict[str, Any]:
        return results.get_run(store, run_id).to_json()

    @router.get("/profiles/{model}/{version}", summary="Where a version's reference profile is stored")
    def profile(model: str, version: int) -> dict[str, Any]:
        return monitor_records(store).get_profile(model, version).to_json()

    @router.get("/alerts", summary="Alerts, newest first")
    def list_alerts(
        model: str | None = None, open_only: bool = Query(False, alias="open"), limit: int = 100
    ) -> dict[str, Any]:
        found = alerts.list_alerts(store, model, open_only=open_only, limit=_limit(limit))
        return {"alerts": [a.to_json() for a in found]}

    @router.get("/rules", summary="Alert rules")
    def list_rules(model: str | None = None) -> dict[str, Any]:
        return {"rules": [r.to_json() for r in alerts.list_rules(store, model)]}

    @router.post("/rules", summary="Add an alert rule (needs write)")
    async def add_rule(request: Request) -> dict[str, Any]:
        fields = _rule_fields(await json_body(request))
        rule = alerts.add_rule(store, **fields, actor=actor(request))
        return rule.to_json()

    @router.delete("/rules/{rule_id}", summary="Remove an alert rule; its open alerts resolve (needs write)")
    def remove_rule(rule_id: str) -> dict[str, Any]:
        return alerts.remove_rule(store, rule_id).to_json()

    return router


def _range(since: str | None, until: str | None, last: str | None) -> tuple[int, int]:
    high = _instant(until) if until else to_ms(datetime.now(UTC))
    if last is not None:
        return high - int(parse_duration(last).total_seconds() * 1000), high
    if since is None:
        raise InvalidInput("Give since (epoch ms or ISO 8601) or last (e.g. 24h)")
    return _instant(since), high


def _instant(text: str) -> int:
    if text.lstrip("-").isdigit():
        return int(text)
    moment = parse_instant(text)
    if moment is None:
        raise InvalidInput("An empty time was given; use epoch milliseconds or ISO 8601")
    return to_ms(moment)


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    return limit


def _rule_fields(data: dict[str, Any]) -> dict[str, Any]:
    """The body's fields, checked for presence and type; values are checked by the store."""
    unknown = sorted(set(data) - _RULE_FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown alert rule fields {unknown}; the fields are {sorted(_RULE_FIELDS)}")
    missing = [f for f in ("model", "metric", "op", "threshold") if f not in data]
    if missing:
        raise InvalidInput(f"An alert rule needs {missing}")
    kinds = {"threshold": (int, float), "for_runs": (int,), "suggest_retrain": (bool,)}
    for name, value in data.items():
        expected = kinds.get(name, (str,))
        if not isinstance(value, expected) or (isinstance(value, bool) and bool not in expected):
            raise InvalidInput(
                f"Invalid {name} {value!r}: expected {' or '.join(t.__name__ for t in expected)}"
            )
    return data
