"""``conveyor pipeline``: run pipelines, list and inspect their runs, resume, explain re-runs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from conveyor.cli import _output as out
from conveyor.cli._common import JsonFlag, load_settings

if TYPE_CHECKING:
    from conveyor.pipelines.engine import StepEvent
    from conveyor.pipelines.runner import RunResult
    from conveyor.store.sql.pipeline_records import PipelineRun, StepRecord

app = typer.Typer(help="Run pipelines and inspect their runs.", no_args_is_help=True)

#: Exit status of a run stopped with Ctrl-C (128 + SIGINT), as shells report it.
EXIT_CANCELLED = 130
#: Steps listed one by one in the final summary; larger runs list only what did not succeed.
_SUMMARY_ROWS = 40

ExecutorOption = Annotated[
    str | None,
    typer.Option(
        "--executor", "-x", help="local (in-process, for debugging), process (worker pool) or dask."
    ),
]
AddressOption = Annotated[
    str | None, typer.Option("--address", help="Dask scheduler address, e.g. tcp://10.0.0.5:8786.")
]
WorkersOption = Annotated[
    int | None, typer.Option("--workers", min=1, help="Worker processes (process executor; default: CPUs).")
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No live progress view.")]


@app.command("run")
def run(
    target: Annotated[str, typer.Argument(help="path/to/file.py[:pipeline] or package.module:pipeline.")],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", metavar="NAME=VALUE", help="Pipeline parameter; repeat for several."),
    ] = None,
    executor: ExecutorOption = None,
    address: AddressOption = None,
    workers: WorkersOption = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Run every step; reuse no cached output.")
    ] = False,
    keep_going: Annotated[
        bool,
        typer.Option("--continue-on-failure", help="Run every step that does not depend on a failed one."),
    ] = False,
    schedule_id: Annotated[str | None, typer.Option("--schedule-id", hidden=True)] = None,
    quiet: QuietOption = False,
    as_json: JsonFlag = False,
) -> None:
    """Run a pipeline and record the run; exit 1 if a step failed, 130 on Ctrl-C."""
    from conveyor.pipelines.loading import load_target
    from conveyor.pipelines.runner import run_pipeline

    settings = load_settings()
    loaded = load_target(target)
    params = loaded.pipeline.parse_params(_param_pairs(param or []))
    with _progress(quiet or as_json) as progress:
        result = _interruptible(
            lambda: run_pipeline(
                loaded.target,
                params,
                executor=executor or "local",
                address=address,
                workers=workers,
                cache=not no_cache,
                fail_fast=not keep_going,
                settings=settings,
                on_event=progress.event,
                on_start=progress.start,
                schedule_id=schedule_id,
            )
        )
    _report(result, as_json)


@app.command("resume")
def resume(
    run_id: Annotated[str, typer.Argument(help="Run to resume (an id or a unique prefix).")],
    executor: ExecutorOption = None,
    address: AddressOption = None,
    workers: WorkersOption = None,
    quiet: QuietOption = False,
    as_json: JsonFlag = False,
) -> None:
    """Re-run the failed, skipped and cancelled steps of a run; reuse the ones that finished."""
    from conveyor.pipelines import runner

    settings = load_settings()
    with _progress(quiet or as_json) as progress:
        result = _interruptible(
            lambda: runner.resume(
                run_id,
                executor=executor,
                address=address,
                workers=workers,
                settings=settings,
                on_event=progress.event,
                on_start=progress.start,
            )
        )
    _report(result, as_json)


@app.command("runs")
def runs(
    pipeline: Annotated[str | None, typer.Option("--pipeline", help="Only runs of this pipeline.")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="RUNNING, SUCCEEDED, FAILED or CANCELLED.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many runs.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """List pipeline runs, newest first."""
    from conveyor.pipelines.runner import open_records

    found = open_records(load_settings()).list_runs(pipeline, status, limit)
    if as_json:
        out.emit_json({"runs": [_run_json(r) for r in found]})
        return
    out.table(
        None,
        ["ID", "Pipeline", "Status", "Started", "Duration", "Executor", "Git"],
        (
            [
                r.id[:12],
                r.pipeline,
                r.status.value,
                out.when(r.start_time),
                _duration(r.start_time, r.end_time),
                r.executor,
                _git(r),
            ]
            for r in found
        ),
    )


@app.command("show")
def show(
    run_id: Annotated[str, typer.Argument(help="A run id or a unique prefix.")],
    as_json: JsonFlag = False,
) -> None:
    """A run's record and the state of each of its steps."""
    from conveyor.pipelines.runner import open_records

    records = open_records(load_settings())
    found = records.get_run(run_id)
    steps = records.steps(found.id)
    if as_json:
        out.emit_json({"run": _run_json(found, full=True), "steps": [_step_json(s) for s in steps]})
        return
    _print_run(found)
    _steps_table(steps)


@app.command("logs")
def logs(
    run_id: Annotated[str, typer.Argument(help="A run id or a unique prefix.")],
    step: Annotated[str, typer.Argument(help="The step's node id, as `show` lists it.")],
    as_json: JsonFlag = False,
) -> None:
    """A step's inputs, outputs, captured stdout/stderr and, if it failed, the traceback."""
    from conveyor.pipelines.runner import open_records

    records = open_records(load_settings())
    record = records.step(records.get_run(run_id).id, step)
    if as_json:
        out.emit_json({"step": _step_json(record, full=True)})
        return
    console = out.console()
    console.print(f"[bold]{record.node_id}[/bold] ({record.status.value}, attempts {record.attempts})")
    for name, source in (record.inputs or {}).items():
        console.print(f"  input {name}: {_describe_input(source)}", markup=False, soft_wrap=True)
    outputs = record.outputs or {}
    for ref in outputs.get("parts", []) + outputs.get("items", [])[:20]:
        console.print(f"  output {_describe_ref(ref)}", markup=False, soft_wrap=True)
    if len(outputs.get("items", [])) > 20:
        console.print(f"  … and {len(outputs['items']) - 20} more items", markup=False)
    for title, text in (("stdout", record.stdout), ("stderr", record.stderr)):
        console.print(f"[bold]{title}[/bold]")
        console.print(text or "(empty)", markup=False)
    if record.error:
        console.print(f"[bold red]error[/bold red] {record.error}", soft_wrap=True)
    if record.traceback:
        console.print(record.traceback, markup=False)


@app.command("why-rerun")
def why_rerun(
    run_id: Annotated[str, typer.Argument(help="A run id or a unique prefix.")],
    step: Annotated[str, typer.Argument(help="The step's node id.")],
) -> None:
    """Which part of the step's cache key changed since its previous execution."""
    from conveyor.pipelines import runner

    for line in runner.why_rerun(run_id, step, load_settings()):
        typer.echo(line)


# -- running with a live view ---------------------------------------------------------------


class _Progress:
    """Steps, states, durations and cache hits as the engine reports them."""

    def __init__(self, live: Any) -> None:
        self.live = live
        self.states: dict[str, StepEvent] = {}
        self.recent: list[str] = []
        self.started = time.monotonic()
        self.run: PipelineRun | None = None

    def start(self, run: PipelineRun) -> None:
        self.run = run
        self.total = len(run.spec.get("nodes", []))
        self._refresh()

    def event(self, event: StepEvent) -> None:
        self.states[event.node_id] = event
        if event.node_id in self.recent:
            self.recent.remove(event.node_id)
        self.recent.append(event.node_id)
        del self.recent[:-8]
        self._refresh()

    def _refresh(self) -> None:
        if self.live is not None:
            self.live.update(self._render())

    def _render(self) -> Any:
        from rich.table import Table

        counts: dict[str, int] = {}
        for event in self.states.values():
            counts[event.status.value] = counts.get(event.status.value, 0) + 1
        finished = sum(counts.get(s, 0) for s in ("SUCCEEDED", "CACHED", "FAILED", "SKIPPED", "CANCELLED"))
        head = f"{self.run.pipeline if self.run else ''} · {finished}/{getattr(self, 'total', '?')} steps"
        head += "".join(f" · {n} {s.lower()}" for s, n in sorted(counts.items()))
        head += f" · {time.monotonic() - self.started:.1f} s"
        grid = Table(title=head, title_justify="left", show_edge=False, pad_edge=False)
        for column in ("Step", "State", "Items", "Attempt", "Duration"):
            grid.add_column(column)
        running = [e for e in self.states.values() if e.status.value == "RUNNING"]
        shown = running + [self.states[n] for n in self.recent if self.states[n] not in running]
        for event in shown[:12]:
            grid.add_row(
                event.node_id,
                event.status.value,
                f"{event.done}/{event.total}" if event.total > 1 else "",
                str(event.attempt or ""),
                "" if event.duration_ms is None else f"{event.duration_ms / 1000:.2f} s",
            )
        return grid


@contextmanager
def _progress(quiet: bool) -> Iterator[_Progress]:
    if quiet:
        yield _Progress(None)
        return
    from rich.live import Live

    with Live(console=out.console(stderr=True), refresh_per_second=8, transient=True) as live:
        yield _Progress(live)


def _interruptible(action: Any) -> RunResult:
    try:
        return action()
    except KeyboardInterrupt:
        out.console(stderr=True).print(
            "[bold yellow]Cancelled[/bold yellow]: the run is recorded as CANCELLED"
        )
        raise typer.Exit(EXIT_CANCELLED) from None


def _report(result: RunResult, as_json: bool) -> None:
    if as_json:
        out.emit_json(
            {"run": _run_json(result.run, full=True), "steps": [_step_json(s) for s in result.steps]}
        )
    else:
        steps = result.steps
        if len(steps) > _SUMMARY_ROWS:
            steps = [s for s in steps if s.status.value not in ("SUCCEEDED", "CACHED")]
        if steps:
            _steps_table(steps)
        _print_run(result.run)
        cached = sum(1 for s in result.steps if s.status.value == "CACHED")
        out.console().print(f"{len(result.steps)} steps, {cached} reused from the cache")
    if not result.ok:
        raise typer.Exit(1)


def _print_run(run: PipelineRun) -> None:
    console = out.console()
    color = {"SUCCEEDED": "green", "FAILED": "red", "CANCELLED": "yellow"}.get(run.status.value, "cyan")
    console.print(
        f"[bold]{run.pipeline}[/bold] run [bold]{run.id}[/bold]: [{color}]{run.status.value}[/{color}] "
        f"in {_duration(run.start_time, run.end_time)} on {run.executor}"
        + (f" ({run.executor_address})" if run.executor_address else ""),
        soft_wrap=True,
    )
    console.print(
        f"params {run.params} · git {_git(run)} · python {run.python_version} · host {run.host} · "
        f"tracking run {run.tracking_run_id}",
        markup=False,
        soft_wrap=True,
    )
    if run.error:
        console.print(f"[red]{run.error}[/red]", soft_wrap=True)


def _steps_table(steps: list[StepRecord]) -> None:
    out.table(
        None,
        ["Step", "State", "Attempts", "Items", "Duration", "Cached from", "Error"],
        (
            [
                s.node_id,
                s.status.value,
                s.attempts,
                s.tasks if s.tasks > 1 else "",
                "" if s.duration_ms is None else f"{s.duration_ms / 1000:.2f} s",
                (s.cached_from or "")[:12],
                (s.error or "")[:120],
            ]
            for s in steps
        ),
        no_wrap=("Step",),
    )


def _run_json(run: PipelineRun, *, full: bool = False) -> dict[str, Any]:
    from conveyor.store.sql.pipeline_records import vars_of

    data = vars_of(run)
    if not full:
        data.pop("spec")
    return data


def _step_json(step: StepRecord, *, full: bool = False) -> dict[str, Any]:
    from conveyor.store.sql.pipeline_records import vars_of

    data = vars_of(step)
    if not full:
        for name in ("stdout", "stderr", "traceback", "cache_parts"):
            data.pop(name)
    return data


def _describe_ref(ref: dict[str, Any]) -> str:
    return f"{ref['path']} ({ref['serializer']}, {ref['size']} bytes, sha256 {ref['sha256'][:12]})"


def _describe_input(source: dict[str, Any]) -> str:
    if "artifact" in source:
        return _describe_ref(source["artifact"])
    if "const" in source:
        return repr(source["const"])
    if "items" in source:
        return f"{source['items']} mapped items"
    parts = source.get("many") or source.get("gather") or []
    return f"{len(parts)} values"


def _param_pairs(pairs: list[str]) -> dict[str, str]:
    from conveyor.errors import InvalidInput

    raw: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise InvalidInput(f"--param takes NAME=VALUE, got {pair!r}")
        raw[name.strip()] = value
    return raw


def _duration(start: int | None, end: int | None) -> str:
    if start is None or end is None:
        return ""
    return f"{(end - start) / 1000:.2f} s"


def _git(run: PipelineRun) -> str:
    if not run.git_commit:
        return ""
    return run.git_commit[:10] + ("+dirty" if run.git_dirty else "")
