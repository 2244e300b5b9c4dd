"""Conveyor's tracking server against an MLflow server, same workload, same run.

    .venv/bin/python benchmarks/tracking/run.py            # full run, ~10 min on 2 cores
    .venv/bin/python benchmarks/tracking/run.py --quick    # smoke version, ~2 min

Both servers start here as subprocesses on free 127.0.0.1 ports, each on SQLite in its
own fresh temporary folder, and are stopped at the end, also on error or Ctrl-C. Every
workload goes through the official ``mlflow.MlflowClient`` against both servers, except
the two rows about Conveyor's own client. See ``benchmarks/README.md`` for what each
figure means and ``benchmarks/RESULTS.md`` for recorded figures.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import mlflow

sys.path.insert(0, str(Path(__file__).resolve().parent))

import servers  # noqa: E402
import workloads as w  # noqa: E402

WORKLOADS = (
    "log_metric",
    "log_batch",
    "create_run",
    "search",
    "search_large",
    "history",
    "artifacts",
    "native",
    "loop",
)


@dataclass(frozen=True)
class Sizes:
    rounds: int
    log_metric_calls: int
    log_batch_calls: int
    runs_created: int
    search_runs: int
    search_repeats: int
    large_runs: int
    history_points: int
    history_repeats: int
    artifact_mib: int
    artifact_rounds: int
    native_points: int
    native_chunk: int
    loop_points: int


FULL = Sizes(
    rounds=3,
    log_metric_calls=2000,
    log_batch_calls=50,
    runs_created=300,
    search_runs=5000,
    search_repeats=15,
    large_runs=100_000,
    history_points=10_000,
    history_repeats=9,
    artifact_mib=200,
    artifact_rounds=2,
    native_points=100_000,
    native_chunk=10_000,
    loop_points=100_000,
)

QUICK = Sizes(
    rounds=2,
    log_metric_calls=200,
    log_batch_calls=6,
    runs_created=30,
    search_runs=500,
    search_repeats=5,
    large_runs=10_000,
    history_points=10_000,
    history_repeats=3,
    artifact_mib=16,
    artifact_rounds=1,
    native_points=20_000,
    native_chunk=10_000,
    loop_points=20_000,
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="reduced sizes: a smoke run of every workload")
    parser.add_argument(
        "--only", nargs="+", choices=WORKLOADS, metavar="WORKLOAD", help=f"run only these: {', '.join(WORKLOADS)}"
    )
    parser.add_argument("--skip", nargs="+", choices=WORKLOADS, default=[], metavar="WORKLOAD", help="skip these")
    parser.add_argument(
        "--no-mlflow-async", action="store_true", help="do not time MLflow's async logging in the training-loop row"
    )
    parser.add_argument("--json", type=Path, help="also write every figure and sample to this JSON file")
    parser.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    parser.add_argument("--keep", action="store_true", help="keep the servers' temporary folders (logs, databases)")
    return parser.parse_args(argv)


def environment() -> dict[str, str]:
    import conveyor

    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "conveyor": conveyor.__version__ if hasattr(conveyor, "__version__") else _conveyor_version(),
        "mlflow": mlflow.__version__,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "cpus": str(os.cpu_count()),
        "platform": platform.platform(),
        "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def _conveyor_version() -> str:
    from conveyor._version import __version__

    return __version__


def start_both(root: Path, stack: contextlib.ExitStack) -> tuple[servers.Server | None, servers.Server | None, list[str]]:
    """Start the two servers in parallel (MLflow takes several seconds); either may fail."""
    results: dict[str, servers.Server] = {}
    errors: list[str] = []

    homes = {name: stack.enter_context(servers.fresh_dir(root, name.lower(), keep=KEEP)) for name in (w.MLFLOW, w.CONVEYOR)}

    def start(name: str) -> None:
        home = homes[name]
        try:
            server = servers.start_mlflow(home) if name == w.MLFLOW else servers.start_conveyor(home)
        except Exception as exc:
            errors.append(f"{name}: {exc}")
            return
        results[name] = server

    threads = [threading.Thread(target=start, args=(name,)) for name in (w.MLFLOW, w.CONVEYOR)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for server in results.values():
        stack.callback(servers.stop, server)
    return results.get(w.MLFLOW), results.get(w.CONVEYOR), errors


KEEP = False


def run(args: argparse.Namespace) -> tuple[list[w.Row], list[w.Failure], dict[str, str]]:
    global KEEP
    KEEP = args.keep
    sizes = QUICK if args.quick else FULL
    selected = [x for x in (args.only or WORKLOADS) if x not in args.skip]
    env = environment()
    root = Path(tempfile.mkdtemp(prefix="conveyor-bench-"))
    rows: list[w.Row] = []
    failures: list[w.Failure] = []
    started = time.perf_counter()
    try:
        with contextlib.ExitStack() as stack:
            log(f"starting servers under {root}")
            mlflow_server, conveyor_server, errors = start_both(root, stack)
            for error in errors:
                log(f"  ! {error}")
                failures.append(w.Failure("server start", error.split(":", 1)[0], error.split(":", 1)[1].strip()))
            if mlflow_server is None and conveyor_server is None:
                raise SystemExit("neither server started")
            sides = []
            for server in (mlflow_server, conveyor_server):
                if server is not None:
                    log(f"  {server.name}: {server.url}  ({' '.join(server.command[:2])} ...)")
                    env[f"{server.name.lower()}_command"] = " ".join(server.command)
                    sides.append(w.Side(server.name, server.url, mlflow.MlflowClient(tracking_uri=server.url)))
            workdir = root / "client"
            workdir.mkdir()
            ctx = w.Context(sides, sizes.rounds, workdir)
            ctx.failures = failures

            def stage(name: str, fn, *fn_args) -> None:  # type: ignore[no-untyped-def]
                if name not in selected:
                    return
                ctx.reset()
                t0 = time.perf_counter()
                log(f"{name} ...")
                result = fn(*fn_args)
                new_rows = result if isinstance(result, list) else [result]
                rows.extend(new_rows)
                for row in new_rows:
                    log(f"  {row.label}: Conveyor {_fmt(row.conveyor)}  MLflow {_fmt(row.mlflow)} {row.unit}")
                log(f"  ({time.perf_counter() - t0:.1f} s)")

            stage("log_metric", w.log_metric_calls, ctx, sizes.log_metric_calls)
            stage("log_batch", w.log_batch_points, ctx, sizes.log_batch_calls)
            stage("create_run", w.runs_created, ctx, sizes.runs_created)
            stage("search", w.search_latency, ctx, sizes.search_runs, sizes.search_repeats, log)
            stage("history", w.metric_history, ctx, sizes.history_points, sizes.history_repeats)
            stage("artifacts", w.artifact_transfer, ctx, sizes.artifact_mib, sizes.artifact_rounds)
            batch_row = next((r for r in rows if r.key == "log_batch"), None) or w.Row("log_batch", "", "", True)
            stage("native", w.native_batch_points, ctx, sizes.native_points, sizes.native_chunk, batch_row)
            stage("loop", w.training_loop, ctx, sizes.loop_points, not args.no_mlflow_async)

            if "search_large" in selected:
                # Free the CPUs of the first two servers before the large search.
                stack.close()
                stage("search_large", search_large, ctx, root, sizes)
    finally:
        if not KEEP:
            shutil.rmtree(root, ignore_errors=True)
        else:
            log(f"kept {root}")
    env["duration"] = f"{time.perf_counter() - started:.0f} s"
    return rows, failures, env


def search_large(ctx: w.Context, root: Path, sizes: Sizes) -> list[w.Row]:
    with contextlib.ExitStack() as stack:
        home = stack.enter_context(servers.fresh_dir(root, "conveyor-large", keep=KEEP))
        try:
            experiment_id, seconds = __import__("populate").bulk_populate(home / "conveyor.db", sizes.large_runs)
        except Exception as exc:
            ctx.failures.append(w.Failure("search_large populate", w.CONVEYOR, f"{type(exc).__name__}: {exc}"))
            return []
        log(f"  bulk-loaded {sizes.large_runs:,} runs into Conveyor's SQLite store in {seconds:.1f} s")
        try:
            server = servers.start_conveyor(home)
        except Exception as exc:
            ctx.failures.append(w.Failure("search_large server start", w.CONVEYOR, str(exc)))
            return []
        stack.callback(servers.stop, server)
        return w.search_latency_large(ctx, server.url, experiment_id, sizes.large_runs, sizes.search_repeats)


# -- output ------------------------------------------------------------------------------------------


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _cells(row: w.Row) -> list[str]:
    mlflow_cell = _fmt(row.mlflow)
    if row.mlflow_note:
        mlflow_cell = f"{mlflow_cell} ({row.mlflow_note})" if row.mlflow is not None else row.mlflow_note
    ratio = f"{row.ratio:.1f}x" if row.ratio is not None else "-"
    met = {True: "yes", False: "NO", None: "-"}[row.met]
    return [row.label, row.unit, _fmt(row.conveyor), mlflow_cell, ratio, row.target_text, met]


HEADERS = ["Workload", "Unit", "Conveyor", "MLflow", "Conveyor vs MLflow", "Target", "Met"]


def print_table(rows: list[w.Row], failures: list[w.Failure], env: dict[str, str], markdown: bool) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # plain text
        print(" | ".join(HEADERS))
        for row in rows:
            print(" | ".join(_cells(row)))
    else:
        table = Table(title="Conveyor vs MLflow tracking server (ratio: how many times better Conveyor is)")
        for i, header in enumerate(HEADERS):
            table.add_column(header, justify="left" if i in (0, 1, 5) else "right", overflow="fold")
        for row in rows:
            cells = _cells(row)
            if row.met is False:
                cells[-1] = "[bold red]NO[/bold red]"
            table.add_row(*cells)
        Console(width=max(160, shutil.get_terminal_size().columns)).print(table)
    print(
        f"\n{env['date']} | Conveyor {env['conveyor']} | MLflow {env['mlflow']} | Python {env['python']} | "
        f"SQLite {env['sqlite']} | {env['cpus']} CPUs | load average at start {env['load_average']} | "
        f"took {env.get('duration', '?')}"
    )
    if failures:
        print("\nFailures (the figure is missing or the result was wrong):")
        for f in failures:
            print(f"- [{f.server}] {f.workload}: {f.error}")
    if markdown:
        print("\n| " + " | ".join(HEADERS) + " |")
        print("|" + "---|" * len(HEADERS))
        for row in rows:
            print("| " + " | ".join(_cells(row)) + " |")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows, failures, env = run(args)
    print_table(rows, failures, env, args.markdown)
    if args.json:
        data = {
            "environment": env,
            "rows": [asdict(r) | {"ratio": r.ratio, "target": r.target_text, "met": r.met} for r in rows],
            "failures": [asdict(f) for f in failures],
        }
        args.json.write_text(json.dumps(data, indent=2))
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
