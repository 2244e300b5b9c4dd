"""Monitoring results as Prometheus gauges, read fresh from the store on every scrape.

Why a custom collector rather than ``Gauge`` objects set by the monitor job: monitor
runs happen in other processes (a schedule, a Dask cluster, the CLI), and the server may
run several workers. Reading the latest points from the shared store at scrape time gives
every worker the same answer, survives restarts, and drops a series as soon as its model
version has no results, with no process-local state to keep in step.

Every name starts with ``conveyor_monitoring_``; labels follow the serving scheme
(``model``, ``version``, ``alias``; ``docs/serving.md``), plus ``feature`` on per-column
gauges and ``metric``/``estimated`` on performance, so serving and monitoring series join
on ``model`` and ``version``. :data:`GAUGES` lists them; ``docs/monitoring.md`` too.

Example (what the tracking server's ``/metrics`` does)::

    registry = CollectorRegistry(auto_describe=True)
    registry.register(MonitoringCollector.for_store(store))
    generate_latest(registry)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from conveyor.monitoring.points import METRICS, MonitorPoint

log = logging.getLogger("conveyor.monitoring")

PREFIX = "conveyor_monitoring_"
VERSION_LABELS = ("model", "version", "alias")
FEATURE_LABELS = (*VERSION_LABELS, "feature")
PERFORMANCE_LABELS = (*VERSION_LABELS, "metric", "estimated")
#: The ``METRICS`` that are model performance: one gauge, told apart by its ``metric`` label.
PERFORMANCE_METRICS = frozenset(
    {"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "mae", "rmse", "r2"}
)
PointsSource = Callable[[], Iterable[MonitorPoint]]


@dataclass(frozen=True)
class GaugeSpec:
    """One exported gauge: its full name, labels and help text."""

    name: str
    labels: tuple[str, ...]
    documentation: str


def _gauges() -> dict[str, GaugeSpec]:
    """Point metric name -> its gauge; per-column metrics carry ``feature``."""
    per_feature = {"drift_score", "drift_detected", "missing_rate", "type_error_rate"}
    per_feature |= {"out_of_range_rate", "unseen_rate"}
    out = {
        metric: GaugeSpec(PREFIX + metric, FEATURE_LABELS if metric in per_feature else VERSION_LABELS, text)
        for metric, text in METRICS.items()
        if metric not in PERFORMANCE_METRICS
    }
    out["performance"] = GaugeSpec(
        PREFIX + "performance",
        PERFORMANCE_LABELS,
        "Model performance in the latest window (metric label: accuracy, f1, roc_auc, mae, ...); "
        'estimated="true" for a CBPE estimate made before labels arrived.',
    )
    out["window_end"] = GaugeSpec(
        PREFIX + "window_end_timestamp_seconds",
        VERSION_LABELS,
        "End of the latest monitored window (Unix seconds): alert when it falls behind.",
    )
    out["collect_success"] = GaugeSpec(
        PREFIX + "collect_success",
        (),
        "1 when this scrape read the monitoring results, 0 when reading them failed.",
    )
    return out


#: Every gauge this exporter may yield, keyed by point metric (plus ``performance``,
#: ``window_end`` and ``collect_success``).
GAUGES: dict[str, GaugeSpec] = _gauges()


class MonitoringCollector(Collector):
    """A prometheus_client collector that turns the latest monitor points into gauges.

    Args:
        source: called on every scrape; returns the points to export (normally the latest
            window per model version, :func:`conveyor.monitoring.results.latest_points`).
            When two points name the same series, the one with the later window wins.
            Points of a metric not in :data:`~conveyor.monitoring.points.METRICS` are left
            out, so the exported names stay the documented ones.
    """

    def __init__(self, source: PointsSource) -> None:
        self.source = source

    @classmethod
    def for_store(cls, store: Any, model: str | None = None) -> MonitoringCollector:
        """A collector reading ``latest_points(store, model)`` from the monitoring results."""

        def latest() -> list[MonitorPoint]:
            # Imported on the first scrape: the results module needs the SQL store's tables.
            from conveyor.monitoring.results import latest_points

            return latest_points(store, model=model)

        return cls(latest)

    def describe(self) -> Iterator[Metric]:
        """The gauges without samples, so registering this collector reads nothing."""
        for spec in GAUGES.values():
            yield GaugeMetricFamily(spec.name, spec.documentation, labels=spec.labels)

    def collect(self) -> Iterator[Metric]:
        """Read the points and yield one family per gauge (empty families are left out)."""
        try:
            points = list(self.source())
        except Exception:
            log.exception("could not read monitoring results for /metrics")
            yield _family("collect_success", [((), 0.0)])
            return
        yield _family("collect_success", [((), 1.0)])
        for key, samples in _samples(_latest_per_series(points)).items():
            if samples:
                yield _family(key, samples)


def _family(key: str, samples: Iterable[tuple[tuple[str, ...], float]]) -> GaugeMetricFamily:
    spec = GAUGES[key]
    family = GaugeMetricFamily(spec.name, spec.documentation, labels=spec.labels)
    for labels, value in samples:
        family.add_metric(list(labels), value)
    return family


def _series(point: MonitorPoint) -> tuple[str, ...]:
    return (point.model, point.version, point.alias, point.metric, point.feature, str(point.estimated))


def _latest_per_series(points: Iterable[MonitorPoint]) -> list[MonitorPoint]:
    """One point per series, the latest window's: Prometheus refuses duplicate samples."""
    latest: dict[tuple[str, ...], MonitorPoint] = {}
    for point in points:
        key = _series(point)
        if key not in latest or point.window_end >= latest[key].window_end:
            latest[key] = point
    return list(latest.values())


def _samples(points: list[MonitorPoint]) -> dict[str, list[tuple[tuple[str, ...], float]]]:
    """Samples per gauge key; the window end is the latest of each model version's points."""
    out: dict[str, list[tuple[tuple[str, ...], float]]] = {key: [] for key in GAUGES}
    window_end: dict[tuple[str, str, str], int] = {}
    for p in points:
        version = (p.model, p.version, p.alias)
        if p.metric in PERFORMANCE_METRICS:
            out["performance"].append(((*version, p.metric, "true" if p.estimated else "false"), p.value))
        elif p.metric in METRICS:
            labels = (*version, p.feature) if "feature" in GAUGES[p.metric].labels else version
            out[p.metric].append((labels, p.value))
        else:
            continue
        window_end[version] = max(window_end.get(version, p.window_end), p.window_end)
    out["window_end"] = [(version, end / 1000.0) for version, end in window_end.items()]
    return out
