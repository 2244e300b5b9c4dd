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
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import mlflow

sys.path.insert(0, str(Path(__file__).resolve().parent))

import populate
import search_workloads as sw
import servers
import workloads as w

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
    mlflow_async_points: int


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
    artifact_rounds=3,
    native_points=100_000,
    native_chunk=10_000,
    loop_points=100_000,
    mlflow_async_points=2000,
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
    mlflow_async_points=500,
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="reduced sizes: a smoke run of every workload")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=WORKLOADS,
        metavar="WORKLOAD",
        help=f"run only these: {', '.join(WORKLOADS)}",
    )
    parser.add_argument(
        "--skip", nargs="+", choices=WORKLOADS, default=[], metavar="WORKLOAD", help="skip these"
    )
    parser.add_argument(
        "--mlflow-async-points",
        type=int,
        help="points over which MLflow's async logging is timed for the training-loop row, then scaled "
        "(default 2,000; --quick 500; 0 skips it)",
    )
    parser.add_argument(
        "--no-floor",
        action="store_true",
        help="do not time the MLflow client against the canned-response stub (the 'client only' column)",
    )
    parser.add_argument("--json", type=Path, help="also write every figure and sample to this JSON file")
    parser.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    parser.add_argument(
        "--keep", action="store_true", help="keep the servers' temporary folders (logs, databases)"
    )
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
        "revision": _revision(),
    }


def _revision() -> str:
    """The git commit measured, ``+dirty`` when the working tree differs from it."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def _conveyor_version() -> str:
    from conveyor._version import __version__

    return __version__


def start_both(
    root: Path, stack: contextlib.ExitStack
) -> tuple[servers.Server | None, servers.Server | None, list[str]]:
    """Start the two servers in parallel (MLflow takes several seconds); either may fail."""
    results: dict[str, servers.Server] = {}
    errors: list[str] = []

    def start(name: str) -> None:
        home = servers.fresh_dir(root, name.lower())
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


LARGE_SEED = 7


class Runner:
    def __init__(self, args: argparse.Namespace, root: Path) -> None:
        self.args = args
        self.root = root
        self.sizes = QUICK if args.quick else FULL
        self.selected = [x for x in (args.only or WORKLOADS) if x not in args.skip]
        self.rows: list[w.Row] = []
        self.failures: list[w.Failure] = []
        self.env = environment()
        self.ctx = w.Context([], self.sizes.rounds, root / "client")

    def stage(self, name: str, fn, *fn_args) -> None:  # type: ignore[no-untyped-def]
        if name not in self.selected:
            return
        self.ctx.reset()
        t0 = time.perf_counter()
        log(f"{name} ...")
        result = fn(*fn_args)
        new_rows = result if isinstance(result, list) else [result]
        self.rows.extend(new_rows)
        for row in new_rows:
            log(f"  {row.label}: Conveyor {_fmt(row.conveyor)}  MLflow {_fmt(row.mlflow)} {row.unit}")
        log(f"  ({time.perf_counter() - t0:.1f} s)")

    def start(self, stack: contextlib.ExitStack) -> None:
        log(f"starting servers under {self.root}")
        mlflow_server, conveyor_server, errors = start_both(self.root, stack)
        for error in errors:
            log(f"  ! {error}")
            server, _, message = error.partition(": ")
            self.failures.append(w.Failure("server start", server, message))
        if mlflow_server is None and conveyor_server is None:
            raise SystemExit("neither server started")
        for server in (mlflow_server, conveyor_server):
            if server is not None:
                log(f"  {server.name}: {server.url}  ({' '.join(server.command[:2])} ...)")
                self.env[f"{server.name.lower()}_command"] = " ".join(server.command)
                client = mlflow.MlflowClient(tracking_uri=server.url)
                self.ctx.sides.append(w.Side(server.name, server.url, client))
        self.ctx.workdir.mkdir()
        self.ctx.failures = self.failures
        if not self.args.no_floor:
            try:
                stub = servers.start_stub(servers.fresh_dir(self.root, "stub"))
            except Exception as exc:
                self.failures.append(w.Failure("stub start", w.FLOOR, str(exc)))
            else:
                stack.callback(servers.stop, stub)
                client = mlflow.MlflowClient(tracking_uri=stub.url)
                self.ctx.floor = w.Side(w.FLOOR, stub.url, client)

    def run(self) -> None:
        ctx, sizes = self.ctx, self.sizes
        with contextlib.ExitStack() as stack:
            if set(self.selected) - {"search_large"}:
                self.start(stack)
            self.stage("log_metric", w.log_metric_calls, ctx, sizes.log_metric_calls)
            self.stage("log_batch", w.log_batch_points, ctx, sizes.log_batch_calls)
            self.stage("create_run", w.runs_created, ctx, sizes.runs_created)
            self.stage("search", sw.search_latency, ctx, sizes.search_runs, sizes.search_repeats, log)
            self.stage("history", w.metric_history, ctx, sizes.history_points, sizes.history_repeats)
            self.stage("artifacts", w.artifact_transfer, ctx, sizes.artifact_mib, sizes.artifact_rounds)
            batch = next((r for r in self.rows if r.key == "log_batch"), w.Row("log_batch", "", "", True))
            self.stage("native", w.native_batch_points, ctx, sizes.native_points, sizes.native_chunk, batch)
            async_points = self.args.mlflow_async_points
            if async_points is None:
                async_points = sizes.mlflow_async_points
            self.stage("loop", w.training_loop, ctx, sizes.loop_points, async_points)
        # The first two servers are stopped by now: the large search has the CPUs to itself.
        self.stage("search_large", self.search_large)

    def search_large(self) -> list[w.Row]:
        runs = self.sizes.large_runs
        home = servers.fresh_dir(self.root, "conveyor-large")
        try:
            experiment_id, seconds = populate.bulk_populate(home / "conveyor.db", runs, LARGE_SEED)
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            self.failures.append(w.Failure("search_large populate", w.CONVEYOR, message))
            return []
        log(f"  bulk-loaded {runs:,} runs into Conveyor's SQLite store in {seconds:.1f} s")
        try:
            server = servers.start_conveyor(home)
        except Exception as exc:
            self.failures.append(w.Failure("search_large server start", w.CONVEYOR, str(exc)))
            return []
        try:
            return sw.search_latency_large(
                self.ctx, server.url, experiment_id, runs, self.sizes.search_repeats, seed=LARGE_SEED
            )
        finally:
            servers.stop(server)


def run(args: argparse.Namespace) -> tuple[list[w.Row], list[w.Failure], dict[str, str]]:
    root = Path(tempfile.mkdtemp(prefix="conveyor-bench-"))
    started = time.perf_counter()
    runner = Runner(args, root)
    try:
        runner.run()
    finally:
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    runner.env["duration"] = f"{time.perf_counter() - started:.0f} s"
    return runner.rows, runner.failures, runner.env


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
    best = f"{row.best_ratio:.1f}x" if row.best_ratio is not None else "-"
    met = {True: "yes", False: "NO", None: "-"}[row.met]
    return [
        row.label,
        row.unit,
        _fmt(row.conveyor),
        mlflow_cell,
        ratio,
        row.target_text,
        met,
        _fmt(row.floor),
        best,
    ]


HEADERS = [
    "Workload",
    "Unit",
    "Conveyor",
    "MLflow",
    "Conveyor vs MLflow",
    "Target",
    "Met",
    "Client only",
    "Best possible",
]


def print_table(rows: list[w.Row], failures: list[w.Failure], env: dict[str, str], markdown: bool) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # plain text
        print(" | ".join(HEADERS))
        for row in rows:
            print(" | ".join(_cells(row)))
    else:
        table = Table(
            title="Conveyor vs MLflow tracking server (ratio: how many times better Conveyor is)",
            caption="Client only: the MLflow client against a canned-response stub (no server work); "
            "Best possible: the ratio over MLflow of a server that takes no time, through this client.",
        )
        for i, header in enumerate(HEADERS):
            table.add_column(header, justify="left" if i in (0, 1, 5) else "right", overflow="fold")
        for row in rows:
            cells = _cells(row)
            if row.met is False:
                cells[6] = "[bold red]NO[/bold red]"
            table.add_row(*cells)
        Console(width=max(180, shutil.get_terminal_size().columns)).print(table)
    print(
        f"\n{env['date']} | Conveyor {env['conveyor']} (git {env['revision']}) | MLflow {env['mlflow']} | "
        f"Python {env['python']} | "
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
            "rows": [
                asdict(r)
                | {"ratio": r.ratio, "best_ratio": r.best_ratio, "target": r.target_text, "met": r.met}
                for r in rows
            ],
            "failures": [asdict(f) for f in failures],
        }
        args.json.write_text(json.dumps(data, indent=2))
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
