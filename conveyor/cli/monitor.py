"""``conveyor monitor``: reference profiles, monitor runs and schedules, results, alert rules.

Monitoring lives in the metadata database beside the registry, so these commands work on
the database itself (the local store, or ``--tracking-uri``/``CONVEYOR_DATABASE_URL``
naming a database); the server's ``/api/conveyor/v1/monitoring`` routes read the same
tables. Everything heavy is imported inside the commands.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

from conveyor.cli import _output as out
from conveyor.cli._common import JsonFlag, TrackingUri, database_url

if TYPE_CHECKING:
    from conveyor.monitoring.context import MonitorContext
    from conveyor.monitoring.points import MonitorPoint
    from conveyor.store.sql.monitoring_entities import Alert, AlertRule, MonitorRun

app = typer.Typer(
    help="Monitor served models: reference profiles, drift/quality/performance runs, alerts.",
    no_args_is_help=True,
)
alerts_app = typer.Typer(
    help="Alert rules on monitor results, and the alerts they raise.", no_args_is_help=True
)
app.add_typer(alerts_app, name="alerts")

Uri = Annotated[
    str, typer.Argument(metavar="MODEL_URI", help="models:/<name>/<version> or models:/<name>@<alias>.")
]
Model = Annotated[str, typer.Argument(metavar="MODEL", help="Registered model name.")]
LogRoot = Annotated[
    str | None,
    typer.Option("--log-root", help="Prediction log root (default: <artifact root>/predictions)."),
]
Window = Annotated[str, typer.Option("--window", "-w", help="Window length: 30m, 1h, 1d…")]


@app.command("profile")
def profile(
    uri: Uri,
    data: Annotated[str, typer.Option("--data", help="Reference data: a Parquet file or a folder of them.")],
    predictions_from_model: Annotated[
        bool,
        typer.Option("--predictions-from-model", help="Profile the version's predictions on the data too."),
    ] = False,
    labels_column: Annotated[
        str | None,
        typer.Option("--labels-column", help="Column of true labels (fits CBPE with probabilities)."),
    ] = None,
    as_json: JsonFlag = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Profile reference data and store it with the model version."""
    from conveyor.monitoring.profiles import profile_version

    with _open(tracking_uri, None, "monitor profile") as ctx:
        stored = profile_version(
            ctx, uri, data, predictions_from_model=predictions_from_model, labels_column=labels_column
        )
    record = stored.record
    if as_json:
        out.emit_json(record.to_json())
        return
    estimate = "; CBPE calibrated" if record.cbpe is not None else ""
    typer.echo(
        f"Profiled {record.model} version {record.version}: {record.rows} rows, {record.columns} columns, "
        f"task {record.task or 'unknown'}{estimate}; stored at {record.path}"
    )


@app.command("run")
def run(
    uri: Uri,
    window: Window = "1h",
    end: Annotated[
        str | None, typer.Option("--end", help="Window end, ISO 8601 (default: the last whole window).")
    ] = None,
    dask: Annotated[str | None, typer.Option("--dask", help="Dask scheduler, tcp://host:8786.")] = None,
    log_root: LogRoot = None,
    no_alerts: Annotated[bool, typer.Option("--no-alerts", help="Do not judge alert rules.")] = False,
    as_json: JsonFlag = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Monitor one window of logged predictions: drift, quality, performance, alerts."""
    from conveyor.monitoring.jobs import run_monitor

    with _open(tracking_uri, log_root, "monitor run") as ctx:
        result = run_monitor(
            ctx, uri, window=window, end=end, dask_address=dask, evaluate_alerts=not no_alerts
        )
    if as_json:
        out.emit_json(result.to_json())
        return
    found = result.run
    typer.echo(
        f"Monitored {found.model} v{found.version} {out.when(found.window_start)} .. "
        f"{out.when(found.window_end)}: {found.rows} rows, {found.points} points "
        f"(run {found.run_id}); report {found.report_path}"
    )
    _points_table([p for p in result.points if not p.feature], title=None)
    for alert in result.alerts:
        typer.echo(f"Alert {alert.state.value}: {alert.metric}{_feature(alert.feature)} = {alert.last_value}")


@app.command("schedule")
def schedule(
    uri: Uri,
    cron: Annotated[str, typer.Option("--cron", help="Five cron fields, e.g. '0 * * * *' (hourly).")],
    window: Window = "1h",
    name: Annotated[str | None, typer.Option("--name", help="Schedule name (default from the URI).")] = None,
    timezone: Annotated[str, typer.Option("--timezone", help="IANA zone of the cron fields.")] = "UTC",
    dask: Annotated[str | None, typer.Option("--dask", help="Dask scheduler for the runs.")] = None,
    log_root: LogRoot = None,
    as_json: JsonFlag = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Monitor a model on a cron schedule (fired by `conveyor scheduler` or `conveyor server --scheduler`)."""
    from conveyor.cli.schedules import schedule_json
    from conveyor.monitoring.pipeline import schedule_monitor
    from conveyor.store.sql.schedules import ScheduleStore

    with _open(tracking_uri, None, "monitor schedule") as ctx:
        created = schedule_monitor(
            ScheduleStore(ctx.store),
            uri,
            window=window,
            cron=cron,
            name=name,
            timezone=timezone,
            log_root=log_root,
            dask_address=dask,
        )
    if as_json:
        out.emit_json(schedule_json(created))
        return
    typer.echo(
        f"Scheduled {created.name} (id {created.schedule_id}): monitor {uri} over {window} windows, "
        f"{created.cron} in {created.timezone}; next run {out.when(created.next_fire_time)}"
    )


@app.command("show")
def show(
    model: Model,
    last: Annotated[str, typer.Option("--last", help="How far back: 24h, 7d…")] = "24h",
    metric: Annotated[str | None, typer.Option("--metric", help="Only this metric.")] = None,
    feature: Annotated[str | None, typer.Option("--feature", help="Only this column.")] = None,
    version: Annotated[str | None, typer.Option("--version", help="Only this model version.")] = None,
    show_all: Annotated[bool, typer.Option("--all", help="Per-column points too (the table).")] = False,
    as_json: JsonFlag = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Monitor results of a model over the last period (dataset-level metrics unless asked)."""
    from datetime import UTC, datetime

    from conveyor.monitoring._time import parse_duration
    from conveyor.monitoring.results import points

    until = datetime.now(UTC)
    with _open(tracking_uri, None, "monitor show") as ctx:
        found = points(
            ctx, model, until - parse_duration(last), until, metric, feature=feature, version=version
        )
    if as_json:
        out.emit_json({"points": [p.to_dict() for p in found]})
        return
    shown = found if (metric or feature or show_all) else [p for p in found if not p.feature]
    _points_table(shown, title=f"{model}: last {last}")
    hidden = len(found) - len(shown)
    if hidden:
        typer.echo(f"{hidden} per-column points not shown: use --metric, --feature or --all (or --json).")


@app.command("runs")
def runs(
    model: Annotated[str | None, typer.Argument(metavar="[MODEL]", help="Only this model's runs.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 20,
    as_json: JsonFlag = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Monitor runs, newest first (failed ones with their error)."""
    from conveyor.monitoring.results import list_runs

    with _open(tracking_uri, None, "monitor runs") as ctx:
        found = list_runs(ctx, model, limit)
    if as_json:
        out.emit_json({"runs": [r.to_json() for r in found]})
        return
    # As `runs list`: narrow terminals get the essential columns (--json has it all).
    columns = ["Window end", "Model", "Version", "Status", "Rows", "Points", "ID"]
    columns += ["Error"] if out.console().width >= 140 else []
    rows = (row[: len(columns)] for row in _run_rows(found))
    out.table(None, columns, rows, no_wrap=("Window end", "Status"))


# -- alerts ----------------------------------------------------------------------------------


@alerts_app.command("add")
def add_rule(
    model: Model,
    metric: Annotated[str, typer.Option("--metric", help="share_drifted, drift_score, missing_rate, f1…")],
    op: Annotated[str, typer.Option("--op", help="One of > >= < <= == !=.")],
    threshold: Annotated[float, typer.Option("--threshold")],
    severity: Annotated[str, typer.Option("--severity", help="info, warning or critical.")] = "warning",
    feature: Annotated[str, typer.Option("--feature", help="One column (default: every column).")] = "",
    for_runs: Annotated[
        int, typer.Option("--for-runs", min=1, help="Windows in a row that must breach before it opens.")
    ] = 1,
    suggest_retrain: Annotated[
        bool, typer.Option("--suggest-retrain", help="Also send monitoring.retrain.suggested on breach.")
    ] = False,
    as_json: JsonFlag = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Add an alert rule: MODEL's METRIC OP THRESHOLD opens an alert and a signed webhook."""
    from conveyor.monitoring.alerts import add_rule as add

    with _open(tracking_uri, None, "monitor alerts add") as ctx:
        rule = add(
            ctx,
            model,
            metric,
            op,
            threshold,
            feature=feature,
            severity=severity,
            for_runs=for_runs,
            suggest_retrain=suggest_retrain,
        )
    if as_json:
        out.emit_json(rule.to_json())
        return
    typer.echo(f"Added rule {rule.rule_id} on {rule.model}: {rule.describe()} ({rule.severity})")


@alerts_app.command("rules")
def list_rules(
    model: Annotated[str | None, typer.Argument(metavar="[MODEL]")] = None,
    as_json: JsonFlag = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Alert rules, of one model or all."""
    from conveyor.monitoring.alerts import list_rules as listed

    with _open(tracking_uri, None, "monitor alerts rules") as ctx:
        found = listed(ctx, model)
    if as_json:
        out.emit_json({"rules": [r.to_json() for r in found]})
        return
    columns = ["Condition", "Severity", "For runs", "Retrain", "ID"]
    columns += ["Model"] if out.console().width >= 120 else []
    out.table(None, columns, (row[: len(columns)] for row in _rule_rows(found)), no_wrap=("Condition",))


@alerts_app.command("remove")
def remove_rule(
    rule_id: Annotated[str, typer.Argument(metavar="RULE_ID")], tracking_uri: TrackingUri = None
) -> None:
    """Delete an alert rule; its open alerts are resolved."""
    from conveyor.monitoring.alerts import remove_rule as remove

    with _open(tracking_uri, None, "monitor alerts remove") as ctx:
        removed = remove(ctx, rule_id)
    typer.echo(f"Removed rule {removed.rule_id} on {removed.model}: {removed.describe()}")


@alerts_app.command("list")
def list_alerts(
    model: Annotated[str | None, typer.Argument(metavar="[MODEL]")] = None,
    open_only: Annotated[bool, typer.Option("--open", help="Only open alerts.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 100,
    as_json: JsonFlag = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Alerts, newest first."""
    from conveyor.monitoring.alerts import list_alerts as listed

    with _open(tracking_uri, None, "monitor alerts list") as ctx:
        found = listed(ctx, model, open_only=open_only, limit=limit)
    if as_json:
        out.emit_json({"alerts": [a.to_json() for a in found]})
        return
    columns = ["Opened", "Metric", "State", "Last value", "ID"]
    wide = out.console().width >= 120
    columns += ["Model", "Version", "Severity"] if wide else []
    out.table(None, columns, (row[: len(columns)] for row in _alert_rows(found)), no_wrap=("Opened",))


# -- rendering -------------------------------------------------------------------------------


def _points_table(found: Sequence[MonitorPoint], *, title: str | None) -> None:
    rows = (
        [
            out.when(p.window_end, seconds=False),
            p.version,
            p.metric,
            _text(p.feature),
            _value(p.value, p.estimated),
        ]
        for p in found
    )
    out.table(title, ["Window end", "Version", "Metric", "Feature", "Value"], rows, no_wrap=("Window end",))


def _value(value: float, estimated: bool) -> str:
    return out.number(value) + (" est." if estimated else "")


def _feature(feature: str) -> str:
    return f"[{feature}]" if feature else ""


def _text(value: str) -> str:
    """User text (column names, conditions) shown as is: rich would read ``[x]`` as markup."""
    from rich.markup import escape

    return escape(value)


def _run_rows(found: Sequence[MonitorRun]) -> Iterator[list[Any]]:
    for r in found:
        when = out.when(r.window_end, seconds=False)
        yield [when, r.model, r.version, r.status.value, r.rows, r.points, r.run_id, r.error]


def _rule_rows(found: Sequence[AlertRule]) -> Iterator[list[Any]]:
    for r in found:
        yield [
            _text(r.describe()),
            r.severity,
            r.for_runs,
            "yes" if r.suggest_retrain else "",
            r.rule_id,
            r.model,
        ]


def _alert_rows(found: Sequence[Alert]) -> Iterator[list[Any]]:
    for a in found:
        metric = _text(f"{a.metric}{_feature(a.feature)}")
        last = None if a.last_value is None else out.number(a.last_value)
        opened = out.when(a.opened_at, seconds=False)
        yield [opened, metric, a.state.value, last, a.alert_id, a.model, a.version, a.severity]


@contextlib.contextmanager
def _open(tracking_uri: str | None, log_root: str | None, command: str) -> Iterator[MonitorContext]:
    """The monitoring stores of the database the URI names (or the local store), closed after."""
    from pydantic import SecretStr

    from conveyor.monitoring.context import MonitorContext

    settings, url = database_url(tracking_uri, command)
    ctx = MonitorContext.from_settings(
        settings.model_copy(update={"database_url": SecretStr(url)}), log_root=log_root
    )
    try:
        yield ctx
    finally:
        ctx.close()
