"""Scheduled monitoring: a built-in one-step pipeline, fired by the pipelines scheduler.

``conveyor monitor schedule models:/churn@champion --window 1h --cron '0 * * * *'`` stores
an ordinary pipeline schedule whose target is :data:`TARGET` with the URI and the window
as params. Whatever fires pipeline schedules (``conveyor scheduler``, ``conveyor server
--scheduler``) then runs it like any pipeline: the run is recorded, its output is in the
scheduler's logs, and several schedulers never fire it twice.

The step is never cached (``cache=False``): the same params mean "the latest window", a
different one each hour. Without ``end``, each run monitors the last complete window
(``1h`` fired at 10:00:05 covers 09:00-10:00), so a late or repeated trigger recomputes
the same window and replaces its points.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from conveyor.models import parse_models_uri
from conveyor.monitoring._time import parse_duration
from conveyor.pipelines import pipeline, step

if TYPE_CHECKING:
    from conveyor.store.sql.schedules import Schedule, ScheduleStore

__all__ = ["TARGET", "monitor", "monitor_window", "schedule_monitor"]

#: The pipeline target a monitor schedule runs.
TARGET = "conveyor.monitoring.pipeline:monitor"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@step(cache=False)
def monitor_window(uri: str, window: str, end: str, log_root: str, dask_address: str) -> dict[str, Any]:
    """Run the monitor on one window with the stores of the environment (what the scheduler set)."""
    from conveyor.config import Settings
    from conveyor.monitoring.context import MonitorContext
    from conveyor.monitoring.jobs import run_monitor

    ctx = MonitorContext.from_settings(Settings(), log_root=log_root or None)
    try:
        result = run_monitor(ctx, uri, window=window, end=end or None, dask_address=dask_address or None)
    finally:
        ctx.close()
    run = result.run
    return {
        "run_id": run.run_id,
        "model": run.model,
        "version": run.version,
        "window_start": run.window_start,
        "window_end": run.window_end,
        "rows": run.rows,
        "points": run.points,
        "report_path": run.report_path,
        "alerts": [{"alert_id": a.alert_id, "state": a.state.value} for a in result.alerts],
    }


@pipeline(name="monitor")
def monitor(uri: str, window: str = "1h", end: str = "", log_root: str = "", dask_address: str = "") -> None:
    """Monitor ``uri`` over one window; see the module docstring."""
    monitor_window(uri, window=window, end=end, log_root=log_root, dask_address=dask_address)


def schedule_monitor(
    schedules: ScheduleStore,
    uri: str,
    *,
    window: str,
    cron: str,
    name: str | None = None,
    timezone: str = "UTC",
    log_root: str | None = None,
    dask_address: str | None = None,
) -> Schedule:
    """Store a pipeline schedule that monitors ``uri`` over ``window`` whenever ``cron`` fires.

    Raises:
        InvalidInput: a bad URI, window, cron expression, time zone or name.
        AlreadyExists: a schedule of that name exists.
    """
    model, version, alias = parse_models_uri(uri)
    parse_duration(window)
    params = {"uri": uri, "window": window}
    if log_root:
        params["log_root"] = log_root
    if dask_address:
        params["dask_address"] = dask_address
    default = _UNSAFE.sub("-", f"monitor-{model}-{alias or f'v{version}'}-{window}").strip("-.")
    return schedules.create(name or default, TARGET, cron, params=params, timezone=timezone)
