"""What the monitoring tables hold, as frozen dataclasses, and the input rules the store enforces.

Points travel through the store as plain mappings with the fields of
:class:`conveyor.monitoring.points.MonitorPoint` (storage must not import capabilities);
:mod:`conveyor.monitoring.results` turns them back into ``MonitorPoint`` objects.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import RowMapping

from conveyor.errors import InvalidInput

#: Comparison operators of alert rules.
OPERATORS = (">", ">=", "<", "<=", "==", "!=")
SEVERITIES = ("info", "warning", "critical")
MAX_FOR_RUNS = 1000
#: Point fields, in the order of ``MonitorPoint``.
POINT_FIELDS = (
    "model",
    "version",
    "alias",
    "window_start",
    "window_end",
    "metric",
    "feature",
    "value",
    "estimated",
)


class RunStatus(StrEnum):
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"


class AlertState(StrEnum):
    OPEN = "OPEN"
    RESOLVED = "RESOLVED"


@dataclass(frozen=True, slots=True)
class ProfileRecord:
    """Where a version's reference profile is stored and what it hashes to."""

    model: str
    version: int
    path: str
    sha256: str
    size: int
    rows: int
    columns: int
    task: str | None
    label_column: str | None
    #: ``CBPE.to_dict()`` when a calibration was fitted, else None.
    cbpe: dict[str, Any] | None
    created_by: str
    created: int

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "cbpe": self.cbpe is not None}


@dataclass(frozen=True, slots=True)
class MonitorRun:
    """One monitor run over one window. Times are epoch milliseconds, UTC."""

    run_id: str
    model: str
    version: str | None
    alias: str | None
    window_start: int
    window_end: int
    status: RunStatus
    started: int
    finished: int | None
    rows: int | None
    points: int | None
    report_path: str | None
    error: str | None
    details: dict[str, Any] = field(default_factory=dict)
    created_by: str = ""

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status.value}


@dataclass(frozen=True, slots=True)
class AlertRule:
    """``metric op threshold`` on a model's points, held for ``for_runs`` windows in a row."""

    rule_id: str
    model: str
    metric: str
    #: "" matches every feature (one alert per feature) or the dataset-level value.
    feature: str
    op: str
    threshold: float
    severity: str
    for_runs: int
    suggest_retrain: bool
    created_by: str
    created: int

    def holds(self, value: float) -> bool:
        """Whether ``value`` breaches the rule (NaN never does)."""
        if math.isnan(value):
            return False
        return {
            ">": value > self.threshold,
            ">=": value >= self.threshold,
            "<": value < self.threshold,
            "<=": value <= self.threshold,
            "==": value == self.threshold,
            "!=": value != self.threshold,
        }[self.op]

    def describe(self) -> str:
        target = f"{self.metric}[{self.feature}]" if self.feature else self.metric
        return f"{target} {self.op} {self.threshold:g}"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "condition": self.describe()}


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert of one rule (and feature): OPEN while the breach lasts, then RESOLVED."""

    alert_id: str
    rule_id: str
    model: str
    version: str
    metric: str
    feature: str
    severity: str
    state: AlertState
    opened_at: int
    resolved_at: int | None
    last_value: float | None
    last_window_end: int
    last_run_id: str | None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "state": self.state.value}


@dataclass(frozen=True, slots=True)
class AlertChange:
    """What an evaluation decided for one (rule, feature): ``open``, ``update`` or ``resolve``.

    ``context`` is the webhook payload's base (model, version, window, run); the store adds
    the alert itself.
    """

    kind: str
    rule: AlertRule
    feature: str
    version: str
    value: float | None
    window_end: int
    run_id: str | None
    context: dict[str, Any]
    alert_id: str | None = None


def open_key(rule_id: str, feature: str) -> str:
    """The value of ``open_key`` while (rule, feature) has an open alert."""
    return hashlib.sha256(f"{rule_id}\x00{feature}".encode()).hexdigest()


def check_rule(op: str, severity: str, for_runs: int, threshold: float) -> None:
    """Raises: InvalidInput naming the bad field and the accepted values."""
    if op not in OPERATORS:
        raise InvalidInput(f"Unknown operator {op!r}: use one of {' '.join(OPERATORS)}")
    if severity not in SEVERITIES:
        raise InvalidInput(f"Unknown severity {severity!r}: use one of {', '.join(SEVERITIES)}")
    if not 1 <= for_runs <= MAX_FOR_RUNS:
        raise InvalidInput(f"for_runs must be between 1 and {MAX_FOR_RUNS}, got {for_runs}")
    if not math.isfinite(threshold):
        raise InvalidInput(f"The threshold must be a finite number, got {threshold}")


def profile_record(row: RowMapping) -> ProfileRecord:
    return ProfileRecord(
        model=row["model"],
        version=row["version"],
        path=row["path"],
        sha256=row["sha256"],
        size=row["size"],
        rows=row["rows"],
        columns=row["columns"],
        task=row["task"],
        label_column=row["label_column"],
        cbpe=None if row["cbpe"] is None else json.loads(row["cbpe"]),
        created_by=row["created_by"],
        created=row["created"],
    )


def monitor_run(row: RowMapping) -> MonitorRun:
    return MonitorRun(
        run_id=row["id"],
        model=row["model"],
        version=row["version"],
        alias=row["alias"],
        window_start=row["window_start"],
        window_end=row["window_end"],
        status=RunStatus(row["status"]),
        started=row["started"],
        finished=row["finished"],
        rows=row["rows"],
        points=row["points"],
        report_path=row["report_path"],
        error=row["error"],
        details=json.loads(row["details"]) if row["details"] else {},
        created_by=row["created_by"],
    )


def alert_rule(row: RowMapping) -> AlertRule:
    return AlertRule(
        rule_id=row["id"],
        model=row["model"],
        metric=row["metric"],
        feature=row["feature"],
        op=row["op"],
        threshold=row["threshold"],
        severity=row["severity"],
        for_runs=row["for_runs"],
        suggest_retrain=bool(row["suggest_retrain"]),
        created_by=row["created_by"],
        created=row["created"],
    )


def alert(row: RowMapping) -> Alert:
    return Alert(
        alert_id=row["id"],
        rule_id=row["rule_id"],
        model=row["model"],
        version=row["version"],
        metric=row["metric"],
        feature=row["feature"],
        severity=row["severity"],
        state=AlertState(row["state"]),
        opened_at=row["opened_at"],
        resolved_at=row["resolved_at"],
        last_value=row["last_value"],
        last_window_end=row["last_window_end"],
        last_run_id=row["last_run_id"],
    )


def point(row: RowMapping) -> dict[str, Any]:
    """A stored point as a mapping of :data:`POINT_FIELDS`."""
    values = {name: row[name] for name in POINT_FIELDS}
    values["estimated"] = bool(values["estimated"])
    return values
