"""Reading monitor results back: the latest points, a time range of points, the runs.

What ``conveyor monitor show``, the REST API and the Prometheus exporter call. Every
function takes the SQL metadata store (or a :class:`~conveyor.monitoring.context.MonitorContext`)
and sees only the models of the caller's workspace.

Example::

    from conveyor.monitoring.results import latest_points, points

    for p in latest_points(store, "churn"):
        print(p.metric, p.feature, p.value)
    history = points(store, "churn", since=datetime.now(UTC) - timedelta(hours=24),
                     until=datetime.now(UTC), metric="share_drifted")
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from conveyor.monitoring._time import to_ms
from conveyor.monitoring.context import monitor_records
from conveyor.monitoring.points import MonitorPoint
from conveyor.store.sql.monitoring_entities import MonitorRun

if TYPE_CHECKING:
    from conveyor.monitoring.context import MonitorContext
    from conveyor.store.sql.monitoring import SqlMonitorStore
    from conveyor.store.sql.store import SqlStore

    Store = SqlStore | SqlMonitorStore | MonitorContext

__all__ = ["get_run", "latest_points", "list_runs", "points"]


def latest_points(store: Store, model: str | None = None) -> list[MonitorPoint]:
    """Every point of the latest window of each model version (of one model, or all).

    "Latest" is the window that ended last; when two windows end together (an hourly and
    a daily monitor at midnight) the shorter one's points are returned. Older versions
    keep their last window until their points are gone, so filter on ``version`` if only
    the serving one matters.
    """
    return [_point(row) for row in monitor_records(store).latest_points(model)]


def points(
    store: Store,
    model: str,
    since: datetime | int,
    until: datetime | int,
    metric: str | None = None,
    *,
    feature: str | None = None,
    version: str | None = None,
) -> list[MonitorPoint]:
    """Points of ``model`` whose window ends in ``(since, until]``, oldest first.

    ``since`` and ``until`` are aware datetimes or epoch milliseconds.
    """
    rows = monitor_records(store).points(
        model, _ms(since), _ms(until), metric=metric, feature=feature, version=version
    )
    return [_point(row) for row in rows]


def list_runs(store: Store, model: str | None = None, limit: int = 50) -> list[MonitorRun]:
    """Monitor runs, newest first (failed ones too, with their error)."""
    return monitor_records(store).list_runs(model, limit)


def get_run(store: Store, run_id: str) -> MonitorRun:
    """Raises: NotFound."""
    return monitor_records(store).get_run(run_id)


def _point(row: Mapping[str, Any]) -> MonitorPoint:
    return MonitorPoint(**row)


def _ms(moment: datetime | int) -> int:
    return moment if isinstance(moment, int) else to_ms(moment)
