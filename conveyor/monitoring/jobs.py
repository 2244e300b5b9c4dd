"""Monitor runs: one window of a served model's predictions against its reference, stored as points.

``run_monitor(ctx, "models:/churn@champion", window="1h")``:

1. resolves the URI to a version (an alias is followed now; the run records both) and
   loads the version's stored profile (see :mod:`conveyor.monitoring.profiles`);
2. streams the window's prediction log (:func:`~conveyor.serving.predlog.read_predictions`),
   or, with ``dask_address``, one Dask task per Parquet file whose partial summaries are
   merged on the client in file order, so the result does not depend on the cluster;
3. computes drift and data quality (``WindowReport``), joins labels from the feedback
   store for realized performance, or estimates it with the profile's CBPE calibration
   when no label arrived yet (points marked ``estimated``);
4. stores the report (JSON, and HTML when :mod:`conveyor.monitoring.report` is there)
   beside the version, replaces the window's points, judges the alert rules, and records
   the run as FINISHED.

A failure, Ctrl-C included, records the run as FAILED with its error; running the window
again replaces its points, so an interrupted run leaves no duplicates. A window given by
its length alone ends at the last multiple of that length (see :mod:`~conveyor.monitoring._time`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from conveyor.models import parse_models_uri
from conveyor.monitoring._job_performance import Performance, window_performance
from conveyor.monitoring._job_window import (
    PREDICTION,
    PROBA_PREFIX,
    WindowPartial,
    WindowSpec,
    partition_task,
    window_files,
)
from conveyor.monitoring._time import to_ms, window_bounds
from conveyor.monitoring.alerts import evaluate
from conveyor.monitoring.context import MonitorContext
from conveyor.monitoring.points import MonitorPoint, points_from_report
from conveyor.monitoring.profiles import StoredProfile, load_profile
from conveyor.monitoring.report import render_html
from conveyor.monitoring.window import WindowReport
from conveyor.store.base import now_ms
from conveyor.store.entities import ArtifactRecord
from conveyor.store.sql.monitoring_entities import Alert, MonitorRun, RunStatus
from conveyor.tracking.context import current_user

__all__ = ["MonitorResult", "run_monitor"]

#: Dask partials the client holds at most while merging them in file order, per worker.
_IN_FLIGHT_PER_WORKER = 2
_REPORT_FORMAT = "conveyor.monitoring.window"


@dataclass(frozen=True)
class MonitorResult:
    """What one monitor run found and stored."""

    run: MonitorRun
    report: WindowReport
    performance: Performance | None
    points: list[MonitorPoint]
    alerts: list[Alert] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The run, its points and alerts, and the performance (the report is stored as a file)."""
        return {
            "run": self.run.to_json(),
            "performance": None if self.performance is None else self.performance.to_dict(),
            "points": [p.to_dict() for p in self.points],
            "alerts": [a.to_json() for a in self.alerts],
        }


def run_monitor(
    ctx: MonitorContext,
    uri: str,
    *,
    window: str | timedelta = "1h",
    end: str | datetime | None = None,
    dask_address: str | None = None,
    evaluate_alerts: bool = True,
    actor: str | None = None,
) -> MonitorResult:
    """Monitor one window of ``uri``'s predictions; see the module docstring.

    Args:
        uri: ``models:/<name>@<alias>`` (the version the alias names now) or
            ``models:/<name>/<version>``.
        window: its length, ``"1h"``, ``"30m"``, ``"1d"``.
        end: where it ends (ISO 8601 or an aware datetime); default the last multiple
            of ``window`` since the epoch.
        dask_address: ``tcp://host:8786`` to read the window's files on a Dask cluster.
        evaluate_alerts: judge the model's alert rules on the window (only the latest
            window of a model moves its alerts).

    Raises:
        InvalidInput: a bad URI, window or time. NotFound: no such model, version or
        alias, or no reference profile for the version.
    """
    name, _, alias = parse_models_uri(uri)
    version = str(ctx.registry.resolve(uri).version)
    start, stop = window_bounds(window, end)
    run = ctx.records.start_run(
        name, to_ms(start), to_ms(stop), version=version, alias=alias, created_by=actor or current_user()
    )
    try:
        return _run(ctx, run, start, stop, dask_address, evaluate_alerts)
    except BaseException as exc:  # Ctrl-C too: the record must not stay RUNNING
        ctx.records.finish_run(run.run_id, RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        raise


def _run(
    ctx: MonitorContext,
    run: MonitorRun,
    start: datetime,
    stop: datetime,
    dask_address: str | None,
    evaluate_alerts: bool,
) -> MonitorResult:
    model, version = run.model, str(run.version)
    stored = load_profile(ctx, model, version)
    spec = _spec(ctx, stored, model, start)
    partial, files = _read(ctx, spec, model, version, start, stop, dask_address)
    report = partial.accumulator.finish()
    classes = None if stored.cbpe is None else stored.cbpe.classes
    performance, details = window_performance(
        partial, task=stored.record.task, cbpe=stored.cbpe, classes=classes
    )
    found = points_from_report(
        report,
        model=model,
        version=version,
        alias=run.alias or "",
        window_start=run.window_start,
        window_end=run.window_end,
        performance=performance,
    )
    report_path, files_written = _write_report(ctx, run, stored, report, performance, details)
    written = ctx.records.write_points(
        run.run_id,
        model=model,
        version=version,
        window_start=run.window_start,
        window_end=run.window_end,
        points=[p.to_dict() for p in found],
    )
    alerts = evaluate(ctx, found, run_id=run.run_id) if evaluate_alerts else []
    details |= files_written | {"files": files, "dask": dask_address}
    finished = ctx.records.finish_run(
        run.run_id,
        RunStatus.FINISHED,
        rows=report.rows,
        points=written,
        report_path=report_path,
        details=details,
    )
    return MonitorResult(finished, report, performance, found, alerts)


def _spec(ctx: MonitorContext, stored: StoredProfile, model: str, start: datetime) -> WindowSpec:
    """What each partition needs: the profile without labels (not logged), outputs, labels."""
    from conveyor.serving.feedback import read_labels

    profile = stored.profile
    columns = {n: c for n, c in profile.columns.items() if c.role != "label"}
    proba = tuple(n for n in columns if n.startswith(PROBA_PREFIX))
    if not proba and stored.cbpe is not None:
        proba = tuple(f"{PROBA_PREFIX}{c}" for c in stored.cbpe.classes)
    # A day early: a label may be stored a moment before its prediction is (the log is async).
    since = (start - timedelta(days=1)).date()
    labels = read_labels(ctx.log_root, model, start=since, storage_options=ctx.storage_options)
    return WindowSpec(
        profile=replace(profile, columns=columns),
        prediction=PREDICTION,
        proba=proba,
        labels=labels if labels.num_rows else None,
        estimate=stored.cbpe is not None,
    )


def _read(
    ctx: MonitorContext,
    spec: WindowSpec,
    model: str,
    version: str,
    start: datetime,
    stop: datetime,
    dask_address: str | None,
) -> tuple[WindowPartial, int]:
    """The window's partial, and how many log files were read."""
    if dask_address:
        return _read_on_dask(ctx, spec, model, version, start, stop, dask_address)
    from conveyor.serving.predlog import read_predictions

    partial = WindowPartial(spec)
    batches = read_predictions(ctx.log_root, model, version, start, stop, storage_options=ctx.storage_options)
    for batch in batches:
        partial.update(batch)
    files = len(window_files(ctx.log_root, ctx.storage_options, model, version, start, stop))
    return partial, files


def _read_on_dask(
    ctx: MonitorContext,
    spec: WindowSpec,
    model: str,
    version: str,
    start: datetime,
    stop: datetime,
    address: str,
) -> tuple[WindowPartial, int]:
    """One task per log file; partials merged in file order, a few in flight per worker."""
    from distributed import Client

    files = window_files(ctx.log_root, ctx.storage_options, model, version, start, stop)
    total = WindowPartial(spec)
    with Client(address, timeout=30, set_as_default=False) as client:
        shared = client.scatter(spec, broadcast=True)
        workers = max(1, len(client.scheduler_info(n_workers=-1)["workers"]))
        step = workers * _IN_FLIGHT_PER_WORKER
        for offset in range(0, len(files), step):
            chunk = files[offset : offset + step]
            args = (ctx.log_root, ctx.storage_options)
            futures = [
                client.submit(partition_task, shared, *args, path, start, stop, offset + i + 1, pure=False)
                for i, path in enumerate(chunk)
            ]
            for future in futures:
                total.merge(future.result())
                future.release()
    return total, len(files)


# -- the report ------------------------------------------------------------------------------


def _write_report(
    ctx: MonitorContext,
    run: MonitorRun,
    stored: StoredProfile,
    report: WindowReport,
    performance: Performance | None,
    details: Mapping[str, Any],
) -> tuple[str, dict[str, Any]]:
    """Store the window's report beside the version: JSON always, HTML when the renderer exists.

    Returns the path to record on the run (the HTML one when written) and what to note.
    """
    base = f"registry/{run.model}/versions/{run.version}/monitoring/{run.window_start}-{run.window_end}"
    document = {
        "format": _REPORT_FORMAT,
        "model": run.model,
        "version": run.version,
        "alias": run.alias,
        "window_start": run.window_start,
        "window_end": run.window_end,
        "report": report.to_dict(),
        "performance": None if performance is None else performance.to_dict(),
        "details": dict(details),
    }
    text = json.dumps(document, sort_keys=True, allow_nan=False, default=str)
    _put(ctx, f"{base}.json", text.encode())
    noted: dict[str, Any] = {"report_json": f"{base}.json"}
    title = f"{run.model} v{run.version}{f' @{run.alias}' if run.alias else ''}: monitor window"
    html = render_html(report, stored.profile, title=title, performance=performance)
    _put(ctx, f"{base}.html", html.encode())
    return f"{base}.html", {**noted, "report_html": f"{base}.html"}


def _put(ctx: MonitorContext, path: str, data: bytes) -> None:
    """Write (replacing a re-run's) and index the file with its SHA-256."""
    size, sha256 = ctx.registry.artifacts.write_bytes(path, data)
    ctx.store.record_artifact(ArtifactRecord(path, size, sha256, None, now_ms()))
