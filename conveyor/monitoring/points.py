"""Monitor results as time-series points: the one shape storage, queries and gauges share.

A monitor run turns a window's reports into flat points, one per (metric, feature): the
store keeps them keyed by the window so a re-run replaces rather than duplicates them,
``conveyor monitor show`` lists them, and the Prometheus exporter turns the latest ones
into gauges. Metric names are stable strings (they become gauge names and alert-rule
targets), listed in :data:`METRICS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from conveyor.monitoring.performance import ClassificationMetrics, RegressionMetrics
from conveyor.monitoring.window import WindowReport

#: Metric name -> what it measures. ``feature`` is set for the per-column ones.
METRICS: Mapping[str, str] = {
    "drift_score": "drift statistic of a column (the method's: p-value or distance)",
    "drift_detected": "1 when the column drifted, else 0",
    "share_drifted": "share of tested columns that drifted (weighted when importances are given)",
    "dataset_drift": "1 when the share drifted reached the dataset threshold, else 0",
    "missing_rate": "share of missing values in a column",
    "type_error_rate": "share of values not of the reference type",
    "out_of_range_rate": "share of values outside the reference range",
    "unseen_rate": "share of categories never seen in the reference",
    "duplicate_rate": "share of duplicate rows",
    "schema_violations": "missing plus new columns",
    "rows": "rows in the window",
    "accuracy": "classifier accuracy",
    "precision": "classifier precision",
    "recall": "classifier recall",
    "f1": "classifier F1",
    "roc_auc": "classifier ROC AUC",
    "log_loss": "classifier log loss",
    "mae": "regressor mean absolute error",
    "rmse": "regressor root mean squared error",
    "r2": "regressor R squared",
}

_QUALITY_RATES = ("missing_rate", "type_error_rate", "out_of_range_rate", "unseen_rate")
_CLASSIFIER = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
_REGRESSOR = ("mae", "rmse", "r2")


@dataclass(frozen=True, slots=True)
class MonitorPoint:
    """One value of one metric for one model version and window.

    ``feature`` is "" for dataset-level metrics; ``estimated`` marks CBPE estimates
    (performance before labels arrive). Times are epoch milliseconds, UTC.
    """

    model: str
    version: str
    alias: str
    window_start: int
    window_end: int
    metric: str
    feature: str
    value: float
    estimated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def points_from_report(
    report: WindowReport,
    *,
    model: str,
    version: str,
    alias: str = "",
    window_start: int,
    window_end: int,
    performance: ClassificationMetrics | RegressionMetrics | None = None,
) -> list[MonitorPoint]:
    """Every defined value of ``report`` (and ``performance``) as points; None values are left out."""
    found: list[tuple[str, str, float | None, bool]] = [("rows", "", report.rows, False)]
    drift = report.drift
    for column in (*drift.features, *drift.predictions):
        found.append(("drift_score", column.column, column.statistic, False))
        drifted = None if column.drifted is None else float(column.drifted)
        found.append(("drift_detected", column.column, drifted, False))
    found.append(("share_drifted", "", drift.share_drifted, False))
    found.append(
        ("dataset_drift", "", None if drift.dataset_drift is None else float(drift.dataset_drift), False)
    )
    quality = report.quality
    for column in quality.columns:
        found.extend((rate, column.column, getattr(column, rate), False) for rate in _QUALITY_RATES)
    found.append(("duplicate_rate", "", quality.duplicate_rate, False))
    found.append(("schema_violations", "", len(quality.missing_columns) + len(quality.new_columns), False))
    if performance is not None:
        names = _CLASSIFIER if isinstance(performance, ClassificationMetrics) else _REGRESSOR
        estimated = getattr(performance, "estimated", False)
        found.extend((name, "", getattr(performance, name), estimated) for name in names)
    return [
        MonitorPoint(
            model, version, alias, window_start, window_end, metric, feature, float(value), estimated
        )
        for metric, feature, value, estimated in found
        if value is not None
    ]
