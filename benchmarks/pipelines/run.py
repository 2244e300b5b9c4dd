"""Conveyor's pipeline engine against Prefect 3 and Metaflow: same workloads, same run.

    .venv/bin/python benchmarks/pipelines/run.py                      # full run, ~10 min on 2 cores
    .venv/bin/python benchmarks/pipelines/run.py --skip-metaflow-fanout   # the same less ~4 min
    .venv/bin/python benchmarks/pipelines/run.py --quick              # smoke run, small sizes, ~2 min
    .venv/bin/python benchmarks/pipelines/run.py --only conveyor      # Conveyor alone, under a minute

Every figure is the wall time of one whole process, from its start to its exit, timed
here around the subprocess: what a user waits for after typing the command, interpreter
start, imports, servers and bookkeeping included. Each tool runs each workload in a fresh
home folder of its own (a new store, no cache); a cached re-run reuses its first run's
folder. Conveyor runs in this interpreter's environment; Prefect and Metaflow run in
``.bench-venv-pipelines`` (``requirements.txt``) so that their pins never touch Conveyor's.
See ``benchmarks/README.md`` for what each figure means.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import metaflow_flows

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
COMPETITOR_PYTHON = REPO / ".bench-venv-pipelines" / "bin" / "python"
CONVEYOR_FLOWS = "benchmarks/pipelines/conveyor_flows.py"
PREFECT_FLOWS = HERE / "prefect_flows.py"
TOOLS = ("conveyor", "prefect", "metaflow")
# A run longer than this is not repeated in later rounds: its spread is small next to its
# length, and repeating Metaflow's ~3-minute fan-out would double the whole benchmark.
LONG_RUN_S = 60.0
RUN_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class Sizes:
    chain: int
    fanout: int


FULL = Sizes(chain=200, fanout=1000)
QUICK = Sizes(chain=20, fanout=50)


@dataclass(frozen=True)
class Side:
    """One column of the table: a tool, and for Conveyor an executor."""

    key: str
    label: str
    tool: str
    #: Whether the tool can skip a step whose inputs it has seen: re-runs are timed only then.
    caches: bool = True


SIDES = (
    Side("conveyor-local", "Conveyor local", "conveyor"),
    Side("conveyor-process", "Conveyor process", "conveyor"),
    Side("prefect", "Prefect 3", "prefect"),
    Side("metaflow", "Metaflow", "metaflow", caches=False),
)
CONVEYOR_SIDES = ("conveyor-local", "conveyor-process")


@dataclass(frozen=True)
class Workload:
    """One timed run of a flow.

    ``one_again`` exists to be the baseline of ``cached``: a tool's second start in a home
    can be much cheaper than its first (store created, migrations done).
    """

    key: str
    #: The flow to run, named alike in the three flow files.
    flow: str
    #: The run whose home folder this one reuses; ``None`` starts in a fresh folder.
    rerun_of: str | None = None


WORKLOADS = (
    Workload("one", "one"),
    Workload("one_again", "one", rerun_of="one"),
    Workload("chain", "chain"),
    Workload("cached", "chain", rerun_of="chain"),
    Workload("fanout", "fanout"),
)


@dataclass
class Failure:
    side: str
    workload: str
    error: str


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"chain of {QUICK.chain}, fan-out of {QUICK.fanout}, one round: a smoke run, targets not judged",
    )
    parser.add_argument("--only", nargs="+", choices=TOOLS, metavar="TOOL", help="run only these tools")
    parser.add_argument(
        "--skip-metaflow-fanout",
        action="store_true",
        help="skip Metaflow's fan-out, one process per item (~4 min at 1,000 items on 2 cores)",
    )
    parser.add_argument("--rounds", type=int, help="runs per figure, median reported (default 3; --quick 1)")
    parser.add_argument(
        "--competitor-python",
        type=Path,
        default=COMPETITOR_PYTHON,
        help="interpreter with Prefect and Metaflow installed (default: .bench-venv-pipelines)",
    )
    parser.add_argument("--json", type=Path, help="also write every sample and failure to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the home folders and each run's log")
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


# -- running one workload -----------------------------------------------------------------------------


def tool_env(tool: str, home: Path) -> dict[str, str]:
    """The environment of one run: the tool's own variables dropped, then set to ``home``.

    Dropping them keeps a developer's settings (a Prefect Cloud URL, a Metaflow S3 profile,
    a Conveyor tracking server) from changing what is measured or sending data anywhere.
    """
    prefix = {"conveyor": "CONVEYOR_", "prefect": "PREFECT_", "metaflow": "METAFLOW_"}[tool]
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefix)}
    if tool == "conveyor":
        env["CONVEYOR_HOME"] = str(home)
    elif tool == "prefect":
        env |= {
            "PREFECT_HOME": str(home),
            # No API URL: Prefect starts its own server for the run, on 127.0.0.1, with a
            # SQLite database under PREFECT_HOME. 3.9 refuses to unless this is set.
            "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "true",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
        }
    else:
        env |= {
            "METAFLOW_HOME": str(home / "config"),
            "METAFLOW_DEFAULT_DATASTORE": "local",
            "METAFLOW_DEFAULT_METADATA": "local",
            "METAFLOW_DATASTORE_SYSROOT_LOCAL": str(home),
            "USERNAME": "bench",
        }
    return env


def execute(cmd: list[str], cwd: Path, env: dict[str, str], log_path: Path) -> tuple[int | None, float]:
    """Run ``cmd`` to its exit, output to ``log_path``; its exit status (``None``: timed out) and wall time.

    The clock runs from just before the process is created to just after it is reaped.
    The wait blocks in ``waitpid``: ``Popen.wait(timeout=...)`` polls instead, with sleeps
    of up to 50 ms, which would round every figure up to the next 50 ms tick; a timer
    enforces the time limit. The command runs in a session of its own so that, once it
    has exited or timed out, whatever it left behind (Prefect's server, Metaflow's task
    processes) can be killed with its process group: a straggler would take CPU from the
    next run.

    Raises:
        OSError: the command could not be started (e.g. the interpreter is missing).
    """
    with log_path.open("wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            _kill_group(proc.pid)

        timer = threading.Timer(RUN_TIMEOUT_S, expire)
        timer.start()
        try:
            returncode = proc.wait()
        finally:
            timer.cancel()
            _kill_group(proc.pid)
        seconds = time.perf_counter() - started
    return (None if expired.is_set() else returncode), seconds


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def expected_result(flow: str, n: int) -> int:
    return {"one": 0, "chain": n, "fanout": n * (n + 1) // 2}[flow]


class Runner:
    """Runs every workload of every side, round after round, and keeps the wall times.

    Failures are recorded, not raised: a tool that fails (not installed, a crash, a wrong
    result) loses its figure and the others go on.
    """

    def __init__(self, args: argparse.Namespace, root: Path) -> None:
        self.args = args
        self.root = root
        self.sizes = QUICK if args.quick else FULL
        self.sides = [s for s in SIDES if s.tool in (args.only or TOOLS)]
        self.samples: dict[tuple[str, str], list[float]] = {}
        self.failures: list[Failure] = []
        #: (side, workload) pairs not to run again: failed, too long to repeat, or skipped.
        self.settled: set[tuple[str, str]] = set()
        self.skipped: set[tuple[str, str]] = set()
        if args.skip_metaflow_fanout:
            self.skipped.add(("metaflow", "fanout"))

    def size(self, flow: str) -> int:
        return {"one": 0, "chain": self.sizes.chain, "fanout": self.sizes.fanout}[flow]

    def command(self, side: Side, flow: str, home: Path) -> tuple[list[str], Path]:
        """The command line and working folder of one run of ``flow`` in ``home``."""
        n = self.size(flow)
        if side.tool == "conveyor":
            executor = side.key.removeprefix("conveyor-")
            # ``-m conveyor.cli`` is the ``conveyor`` command without relying on the console
            # script being on PATH; the run keeps the CLI's default output (live progress view).
            cmd = [sys.executable, "-m", "conveyor.cli", "pipeline", "run", f"{CONVEYOR_FLOWS}:{flow}"]
            cmd += ["--executor", executor] + (["--param", f"n={n}"] if n else [])
            return cmd, REPO
        python = str(self.args.competitor_python)
        if side.tool == "prefect":
            return [python, str(PREFECT_FLOWS), flow] + ([str(n)] if n else []), home
        # Metaflow's flow file is written before the clock starts; --max-num-splits lifts its
        # default cap of 100 foreach items, which a 1,000-item fan-out would hit.
        source = metaflow_flows.chain(n) if flow == "chain" else getattr(metaflow_flows, flow)()
        path = home / f"{flow}_flow.py"
        path.write_text(source)
        cmd = [python, str(path), "--no-pylint", "run"]
        return cmd + (["--n", str(n), "--max-num-splits", str(n)] if flow == "fanout" else []), home

    def timed(self, side: Side, workload: Workload, home: Path) -> float | None:
        """Run one workload; its wall time, or ``None`` after recording why it has none."""
        home.mkdir(parents=True, exist_ok=True)
        cmd, cwd = self.command(side, workload.flow, home)
        log_path = home / f"{workload.key}.log"
        try:
            returncode, seconds = execute(cmd, cwd, tool_env(side.tool, home), log_path)
        except OSError as exc:
            hint = " (`make bench-pipelines` creates it)" if side.tool != "conveyor" else ""
            self.fail(side, workload, f"cannot start {cmd[0]}: {exc}{hint}")
            return None
        output = log_path.read_text(errors="replace")
        tail = " | ".join(output.strip().splitlines()[-4:])
        if returncode is None:
            self.fail(side, workload, f"no exit after {RUN_TIMEOUT_S:.0f} s; last output: {tail}")
            return None
        if returncode != 0:
            self.fail(side, workload, f"exit status {returncode}: {tail}")
            return None
        problem = self.check(side, workload, output)
        if problem:
            self.fail(side, workload, problem)
            return None
        return seconds

    def check(self, side: Side, workload: Workload, output: str) -> str | None:
        """What is wrong with a run's output, if anything: a wrong result or cache use.

        A first run must take nothing from the cache and a re-run everything, or the figure
        would not be what its row says. Conveyor's pipelines return nothing (their values
        are step outputs in its store), so for Conveyor only the run summary is checked.
        """
        n = self.size(workload.flow)
        if side.tool != "conveyor":
            expected = expected_result(workload.flow, n)
            found = re.findall(r"RESULT (-?\d+)", output)
            if not found or int(found[-1]) != expected:
                return f"expected RESULT {expected}, got {found[-1] if found else 'none'}"
        if side.tool == "metaflow":
            return None
        if side.tool == "conveyor":
            summary = re.search(r"(\d+) steps, (\d+) reused from the cache", output)
            if summary is None:
                return "no '<n> steps, <m> reused from the cache' line in the output"
            hits = int(summary[2])
        else:
            hits = output.count("Finished in state Cached")
        # Only the re-run flows (one, chain) need the count of steps: their first step plus n.
        expected_hits = n + 1 if workload.rerun_of else 0
        if hits != expected_hits:
            return f"{hits} steps taken from the cache, expected {expected_hits}"
        return None

    def fail(self, side: Side, workload: Workload, error: str) -> None:
        log(f"  ! {side.label} {workload.key}: {error}")
        self.failures.append(Failure(side.key, workload.key, error))
        self.settled.add((side.key, workload.key))

    # -- rounds --------------------------------------------------------------------------------------

    def run(self) -> None:
        self.warm_up()
        for r in range(self.args.rounds):
            # Each side goes first in one round, so a change in machine load weighs on all alike.
            shift = r % len(self.sides)
            for side in self.sides[shift:] + self.sides[:shift]:
                self.run_side(side, r)

    def warm_up(self) -> None:
        """One untimed baseline run per side, so that no side's first timed run pays for a cold disk cache."""
        log("warm-up runs (untimed)")
        for side in self.sides:
            home = self.root / "warm-up" / side.key
            home.mkdir(parents=True)
            cmd, cwd = self.command(side, "one", home)
            with contextlib.suppress(OSError):
                execute(cmd, cwd, tool_env(side.tool, home), home / "one.log")

    def run_side(self, side: Side, r: int) -> None:
        """Round ``r`` of one side; a re-run only follows its first run's success in the same round."""
        ok: set[str] = set()
        for workload in WORKLOADS:
            pair = (side.key, workload.key)
            if pair in self.settled or pair in self.skipped:
                continue
            if workload.rerun_of is not None and (not side.caches or workload.rerun_of not in ok):
                continue
            home = self.root / f"round-{r + 1}" / side.key / (workload.rerun_of or workload.key)
            seconds = self.timed(side, workload, home)
            if seconds is None:
                continue
            ok.add(workload.key)
            self.samples.setdefault(pair, []).append(seconds)
            log(f"round {r + 1} {side.label:<16} {workload.key:<9} {seconds:8.2f} s")
            if seconds > LONG_RUN_S:
                self.settled.add(pair)

    # -- figures -------------------------------------------------------------------------------------

    def wall(self, side: str, workload: str) -> float | None:
        samples = self.samples.get((side, workload))
        return statistics.median(samples) if samples else None

    def per_step_ms(self, side: str, workload: str) -> float | None:
        """``(wall - baseline) / steps``: the engine's own cost per step, startup taken out.

        A cached re-run is set against the baseline's own cached re-run in the same home,
        since a tool's second start in a folder (store created, migrations done) can be
        much cheaper than its first.
        """
        wall = self.wall(side, workload)
        baseline = self.wall(side, "one_again" if workload == "cached" else "one")
        if wall is None or baseline is None:
            return None
        steps = self.size("fanout" if workload == "fanout" else "chain")
        return (wall - baseline) / steps * 1000


# -- the table -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    text: str
    limit: float
    #: The Conveyor columns the target is for.
    sides: tuple[str, ...] = CONVEYOR_SIDES


@dataclass(frozen=True)
class Row:
    label: str
    workload: str
    #: ``s``: whole-run wall time; ``ms/step``: :meth:`Runner.per_step_ms`.
    unit: str
    target: Target | None = None


def table_rows(sizes: Sizes) -> list[Row]:
    chain, fanout = f"chain of {sizes.chain:,} steps", f"fan-out of {sizes.fanout:,} + collect"
    return [
        Row("startup baseline: one trivial step, fresh home", "one", "s"),
        Row("startup baseline re-run in the same home (cached)", "one_again", "s"),
        Row(f"(a) {chain}", "chain", "s", Target("≤ 2 s", 2.0)),
        Row(f"(a) {chain}", "chain", "ms/step"),
        Row(f"(b) {fanout}", "fanout", "s", Target("≤ 1.5 s", 1.5)),
        Row(f"(b) {fanout}", "fanout", "ms/step", Target("process ≤ 15 ms", 15.0, ("conveyor-process",))),
        Row(f"(c) {chain}, re-run fully cached", "cached", "s", Target("≤ 1 s", 1.0)),
        Row(f"(c) {chain}, re-run fully cached", "cached", "ms/step"),
    ]


def _fmt(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


class Table:
    """The figures of a finished :class:`Runner` as Markdown, ready for ``RESULTS.md``."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.sides = runner.sides
        self.conveyor = [s for s in self.sides if s.tool == "conveyor"]
        # Ratios need a Conveyor figure to divide by.
        self.competitors = [s for s in self.sides if s.tool != "conveyor"] if self.conveyor else []
        self.failed = {(f.side, f.workload) for f in runner.failures}

    def value(self, side: str, row: Row) -> float | None:
        if row.unit == "s":
            return self.runner.wall(side, row.workload)
        return self.runner.per_step_ms(side, row.workload)

    def cell(self, side: Side, row: Row) -> str:
        value = self.value(side.key, row)
        if value is not None:
            return _fmt(value)
        if not side.caches and row.workload in ("one_again", "cached"):
            return "n/a (no step cache)"
        pair = (side.key, row.workload)
        if pair in self.runner.skipped:
            return "skipped"
        return "failed" if pair in self.failed else "-"

    def ratio(self, competitor: Side, row: Row) -> str:
        """How many times longer the competitor takes, per Conveyor executor (``local / process``)."""
        theirs = self.value(competitor.key, row)
        parts = []
        for side in self.conveyor:
            ours = self.value(side.key, row)
            # A per-step figure can come out at or below zero (within noise of the baseline).
            if theirs is None or ours is None or ours <= 0 or theirs <= 0:
                parts.append("-")
            else:
                parts.append(f"{theirs / ours:.1f}x")
        return " / ".join(parts)

    def met(self, row: Row) -> str:
        if row.target is None or self.runner.args.quick:
            return "-"
        verdicts = {}
        for key in row.target.sides:
            value = self.value(key, row)
            if value is not None:
                verdicts[key.removeprefix("conveyor-")] = "yes" if value <= row.target.limit else "NO"
        if not verdicts:
            return "-"
        if len(set(verdicts.values())) == 1:
            return next(iter(verdicts.values()))
        return ", ".join(f"{name} {verdict}" for name, verdict in verdicts.items())

    def markdown(self) -> list[str]:
        executors = " / ".join(s.key.removeprefix("conveyor-") for s in self.conveyor)
        headers = ["Workload", "Unit"] + [s.label for s in self.sides]
        headers += [f"{s.label} ÷ Conveyor ({executors})" for s in self.competitors]
        headers += ["Target", "Met"]
        lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        for row in table_rows(self.runner.sizes):
            cells = [row.label, row.unit] + [self.cell(s, row) for s in self.sides]
            cells += [self.ratio(s, row) for s in self.competitors]
            cells += [row.target.text if row.target else "-", self.met(row)]
            lines.append("| " + " | ".join(cells) + " |")
        return lines


# -- environment and output ------------------------------------------------------------------------------


def environment(args: argparse.Namespace, argv: list[str]) -> dict[str, str]:
    from conveyor._version import __version__

    python = Path(sys.executable)
    shown = python.relative_to(REPO) if python.is_relative_to(REPO) else python
    env = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": shlex.join([str(shown), "benchmarks/pipelines/run.py", *argv]),
        "conveyor": __version__,
        "python": platform.python_version(),
        "cpus": str(os.cpu_count()),
        "platform": platform.platform(),
        "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "revision": _revision(),
        "competitors": "not installed",
    }
    # importlib.metadata reads the installed versions without importing Prefect (~2 s).
    probe = (
        "import importlib.metadata as m, platform; "
        "print(platform.python_version(), m.version('prefect'), m.version('metaflow'))"
    )
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        out = subprocess.run(
            [str(args.competitor_python), "-c", probe], capture_output=True, text=True, check=True
        ).stdout.split()
        env["competitors"] = f"Prefect {out[1]}, Metaflow {out[2]} on Python {out[0]}"
    return env


def _revision() -> str:
    """The git commit measured, ``+dirty`` when tracked files differ from it."""
    try:
        head, dirty = (
            subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
            for cmd in (["git", "rev-parse", "--short", "HEAD"], ["git", "status", "--porcelain", "-uno"])
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def report(runner: Runner, env: dict[str, str]) -> str:
    """A ``RESULTS.md`` section: heading, command, machine, versions, table, failures."""
    lines = [
        f"## Pipelines run at {env['date']} (git `{env['revision']}`)",
        "",
        "```sh",
        env["command"],
        "```",
        "",
        f"* **Machine**: {env['cpus']} CPUs, {env['platform']}, load average at start {env['load_average']}.",
        f"* **Versions**: Conveyor {env['conveyor']} on Python {env['python']}; {env['competitors']}.",
        f"* **Figures**: median of {runner.args.rounds} round(s) (a run over {LONG_RUN_S:.0f} s: once); "
        f"ratios are the competitor's figure over Conveyor's. The run took {env['duration']}.",
        "",
        *Table(runner).markdown(),
    ]
    if runner.failures:
        lines += ["", "Failures (the figure is missing):", ""]
        lines += [f"* {f.side}, {f.workload}: {f.error}" for f in runner.failures]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    env = environment(args, argv)
    root = Path(tempfile.mkdtemp(prefix="conveyor-bench-pipelines-"))
    runner = Runner(args, root)
    started = time.perf_counter()
    try:
        runner.run()
    finally:
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    env["duration"] = f"{time.perf_counter() - started:.0f} s"
    print(report(runner, env))
    if args.json:
        data = {
            "environment": env,
            "samples_s": {f"{side}/{workload}": v for (side, workload), v in runner.samples.items()},
            "per_step_ms": {
                f"{side.key}/{workload}": runner.per_step_ms(side.key, workload)
                for side in runner.sides
                for workload in ("chain", "fanout", "cached")
            },
            "failures": [asdict(f) for f in runner.failures],
        }
        args.json.write_text(json.dumps(data, indent=2))
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
