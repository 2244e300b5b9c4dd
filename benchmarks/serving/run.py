"""Conveyor's model server against ``mlflow models serve``, same models, same load, with wrk.

    .venv/bin/python benchmarks/serving/run.py             # full run, about 15 minutes on 2 cores
    .venv/bin/python benchmarks/serving/run.py --quick     # smoke run, about 1 minute
    .venv/bin/python benchmarks/serving/run.py --models logreg --rows 1 --connections 1 32 --json out.json

Needs ``wrk`` (``apt-get install wrk`` on Debian and Ubuntu; ``brew install wrk``).

Models: a logistic regression and a 100-tree random forest, fitted on iris (bundled with
scikit-learn) as a four-column DataFrame. The same fitted estimator is saved twice: with
``mlflow.sklearn.save_model`` for MLflow and with ``conveyor.models.save`` for Conveyor.

Servers, all subprocesses on 127.0.0.1, stopped (process group and all) at the end:

- ``mlflow``: ``mlflow models serve -m DIR --env-manager local`` with its default
  number of uvicorn workers (1);
- ``conveyor``: ``conveyor serve DIR --no-access-log`` with the same number of workers;
- ``conveyor-w2``: the same with ``--workers 2``, on its own line: the machine these
  figures are recorded on has 2 cores, and MLflow's default uses one.

Load: ``wrk`` (one thread, ``--latency``) sends the same ``POST /invocations``
(``dataframe_split``, MLflow's own format, which both servers take; the body and the
``Content-Type`` come from a generated Lua script) on N keep-alive connections in a
closed loop for a fixed time, after a short warm-up run of its own. wrk does not read
bodies, so before each timed run a few requests are checked (status 200 and the same
predictions as the model in this process), and a figure with any non-2xx answer or
socket error in wrk's report is marked FAILED. Within a workload the servers take turns
(the order alternates), and each workload is repeated ``--repeat`` times: the figure is
the round with the median requests/s, so that a burst of load from elsewhere on the
machine weighs on every server alike.

Printed: each measurement as it is taken; then a Markdown table (requests/s, rows/s, p50
and p99, Conveyor's ratio over MLflow; for Conveyor with one worker, the mean rows per
``predict`` call during the run, from its ``/metrics``), the in-process one-row
``predict`` rate (the floor a Python server answering one row per call cannot beat), and
whether each of the issue's targets is met.

``--client asyncio`` replaces wrk with a minimal HTTP/1.1 client on asyncio streams in
this process (which checks every answer, but spends the same cores as the servers).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import orjson
import pandas as pd

from conveyor.testing.processes import free_port

VENV_BIN = Path(sys.executable).parent
#: ``mlflow models serve``'s default number of workers (its ``--help`` says so).
MLFLOW_DEFAULT_WORKERS = 1
#: The issue's targets.
THROUGHPUT_RATIO_TARGET = 5.0
LATENCY_OVERHEAD_TARGET_MS = 1.0
CHECKED_REQUESTS = 3
WRK_INSTALL = "wrk is not installed: `apt-get install wrk` (Debian, Ubuntu) or `brew install wrk` (macOS)"


@dataclass(frozen=True)
class Figure:
    model: str
    rows: int
    connections: int
    server: str
    requests_per_s: float
    rows_per_s: float
    p50_ms: float
    p99_ms: float
    #: Non-2xx answers and socket errors (connect, read, write, timeout) in the run.
    errors: int
    #: Mean rows per ``predict`` call during the run (Conveyor with one worker), else None.
    mean_batch: float | None = None
    round: int = 0

    @property
    def failed(self) -> bool:
        return self.errors > 0


# -- models --------------------------------------------------------------------------------


def fit_models(names: list[str]) -> dict[str, object]:
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    data = load_iris(as_frame=True)
    frame, labels = data.data, data.target
    makers = {
        "logreg": lambda: LogisticRegression(max_iter=500),
        "forest": lambda: RandomForestClassifier(n_estimators=100, random_state=0),
    }
    return {name: makers[name]().fit(frame, labels) for name in names}


def save_both(name: str, model: object, example: pd.DataFrame, folder: Path) -> tuple[Path, Path]:
    import mlflow.sklearn

    from conveyor import models

    ours, theirs = folder / f"{name}-conveyor", folder / f"{name}-mlflow"
    models.save(model, ours, input_example=example)
    # MLflow 3.17 asks for tree storage to be trusted explicitly (skops); it is our own model.
    trusted = ["sklearn.tree._tree.Tree"] if hasattr(model, "estimators_") else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow's hint about integer columns: ours are floats
        mlflow.sklearn.save_model(model, str(theirs), input_example=example, skops_trusted_types=trusted)
    return ours, theirs


def raw_predict_rate(model: object, example: pd.DataFrame, seconds: float) -> dict[str, float]:
    """One-row ``predict`` calls per second in this process, a loop of nothing else.

    ``numpy``: a NumPy row, to a copy of the estimator without its feature names (so
    scikit-learn neither checks names nor warns): the fastest way to call it, and what
    Conveyor's server calls. ``dataframe``: a one-row DataFrame, as MLflow calls it.
    """
    unnamed = copy.copy(model)
    with contextlib.suppress(AttributeError):
        del unnamed.feature_names_in_
    rates = {}
    for label, estimator, row in (
        ("numpy", unnamed, example.head(1).to_numpy()),
        ("dataframe", model, example.head(1)),
    ):
        for _ in range(100):
            estimator.predict(row)  # type: ignore[attr-defined]
        calls, deadline = 0, time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            estimator.predict(row)  # type: ignore[attr-defined]
            calls += 1
        rates[label] = calls / seconds
    return rates


# -- servers -------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    workers: int

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


@contextlib.contextmanager
def running(
    name: str, command: list[str], port: int, workers: int, home: Path, env: dict[str, str]
) -> Iterator[Server]:
    log = home / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=home,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(name, f"http://127.0.0.1:{port}", process, log, workers)
    try:
        wait_healthy(server)
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def wait_healthy(server: Server, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            tail = server.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{server.name} exited with {server.process.returncode}:\n{tail}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{server.name} at {server.url} did not answer within {timeout:.0f} s")


def conveyor_command(folder: Path, port: int, workers: int) -> list[str]:
    return [
        sys.executable, "-m", "conveyor", "serve", str(folder),
        "--port", str(port), "--workers", str(workers), "--no-access-log",
    ]  # fmt: skip


def mlflow_command(folder: Path, port: int, workers: int | None) -> list[str]:
    command = [
        str(VENV_BIN / "mlflow"), "models", "serve", "-m", str(folder), "--env-manager", "local",
        "-h", "127.0.0.1", "-p", str(port),
    ]  # fmt: skip
    return command + (["-w", str(workers)] if workers is not None else [])


# -- checks --------------------------------------------------------------------------------


def check_answers(server: Server, body: bytes, expected: list[object]) -> None:
    """A few requests, each answered 200 with exactly the predictions made in this process.

    Raises:
        RuntimeError: a wrong status or wrong predictions.
    """
    with httpx.Client(base_url=server.url, headers={"Content-Type": "application/json"}) as client:
        for _ in range(CHECKED_REQUESTS):
            response = client.post("/invocations", content=body, timeout=30)
            if response.status_code != 200:
                raise RuntimeError(f"{server.name}: {response.status_code} {response.text[:500]}")
            got = response.json()["predictions"]
            if got != expected:
                raise RuntimeError(f"{server.name}: predictions {got[:5]}... differ from {expected[:5]}...")


def batch_totals(server: Server) -> tuple[float, float] | None:
    """``(rows, predict calls)`` so far, from Conveyor's ``conveyor_serving_batch_size``."""
    try:
        text = httpx.get(f"{server.url}/metrics", timeout=5).text
    except httpx.HTTPError:
        return None
    sums = re.findall(r"^conveyor_serving_batch_size_sum\{[^}]*\} (\S+)$", text, re.MULTILINE)
    counts = re.findall(r"^conveyor_serving_batch_size_count\{[^}]*\} (\S+)$", text, re.MULTILINE)
    if not counts:
        return None
    return sum(map(float, sums)), sum(map(float, counts))


# -- wrk -----------------------------------------------------------------------------------


def lua_script(body: bytes, folder: Path) -> Path:
    """A wrk script sending ``body`` as JSON with ``POST``."""
    text = body.decode()
    level = 1
    while f"]{'=' * level}]" in text:
        level += 1
    eq = "=" * level
    path = folder / f"body-{abs(hash(body))}.lua"
    path.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = [{eq}[{text}]{eq}]\n"
    )
    return path


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _duration_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass(frozen=True)
class WrkReport:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int


def parse_wrk(output: str) -> WrkReport:
    """Requests/s, p50, p99 and the errors from ``wrk --latency``'s report."""
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    if rate is None or p50 is None or p99 is None:
        raise RuntimeError(f"Cannot read wrk's report:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return WrkReport(
        float(rate.group(1)),
        _duration_ms(p50.group(1)),
        _duration_ms(p99.group(1)),
        int(non_2xx.group(1)) if non_2xx else 0,
        sum(int(g) for g in sockets.groups()) if sockets else 0,
    )


def run_wrk(url: str, script: Path, connections: int, seconds: float) -> WrkReport:
    command = [
        "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "30s",
        "--latency", "-s", str(script), url,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


# -- the asyncio client (--client asyncio) -------------------------------------------------


def request_bytes(port: int, body: bytes) -> bytes:
    head = (
        f"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def raw_client(port: int, request: bytes, expect: int, until: float, latencies: list[float]) -> int:
    """One keep-alive connection in a closed loop; returns the number of bad answers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    errors = 0
    try:
        while time.perf_counter() < until:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            body = await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if not head.startswith(b"HTTP/1.1 200") or len(orjson.loads(body)["predictions"]) != expect:
                errors += 1
    finally:
        writer.close()
    return errors


async def drive(server: Server, body: bytes, rows: int, connections: int, seconds: float) -> WrkReport:
    latencies: list[float] = []
    until = time.perf_counter() + seconds
    request = request_bytes(server.port, body)
    errors = await asyncio.gather(
        *(raw_client(server.port, request, rows, until, latencies) for _ in range(connections))
    )
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else float("nan")
    p50 = statistics.median(ordered) if ordered else float("nan")
    return WrkReport(len(latencies) / seconds, p50 * 1000, p99 * 1000, sum(errors), 0)


# -- measuring -----------------------------------------------------------------------------


def measure(
    server: Server,
    model: str,
    rows: int,
    connections: int,
    body: bytes,
    script: Path,
    args: argparse.Namespace,
    round_: int,
) -> Figure:
    url = f"{server.url}/invocations"
    if args.client == "wrk":
        run_wrk(url, script, connections, args.warmup)
    else:
        asyncio.run(drive(server, body, rows, connections, args.warmup))
    before = batch_totals(server) if server.name == "conveyor" and server.workers == 1 else None
    if args.client == "wrk":
        report = run_wrk(url, script, connections, args.seconds)
    else:
        report = asyncio.run(drive(server, body, rows, connections, args.seconds))
    mean_batch = None
    if before is not None:
        after = batch_totals(server)
        if after is not None and after[1] > before[1]:
            mean_batch = (after[0] - before[0]) / (after[1] - before[1])
    return Figure(
        model, rows, connections, server.name, report.requests_per_s, report.requests_per_s * rows,
        report.p50_ms, report.p99_ms, report.non_2xx + report.socket_errors, mean_batch, round_,
    )  # fmt: skip


def median_round(figures: list[Figure]) -> Figure:
    """The round with the median requests/s (the lower middle one for an even count)."""
    ordered = sorted(figures, key=lambda f: f.requests_per_s)
    chosen = ordered[(len(ordered) - 1) // 2]
    errors = sum(f.errors for f in figures)
    return Figure(**{**asdict(chosen), "errors": errors})


def main() -> None:
    args = parse_args()
    if args.client == "wrk" and shutil.which("wrk") is None:
        print(WRK_INSTALL, file=sys.stderr)
        sys.exit(2)
    started = time.monotonic()
    every: list[Figure] = []
    figures: list[Figure] = []
    floors: dict[str, dict[str, float]] = {}
    mlflow_workers = args.workers
    conveyor_workers = args.workers or MLFLOW_DEFAULT_WORKERS
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-serving-") as tmp:
        home = Path(tmp)
        fitted = fit_models(args.models)
        from sklearn.datasets import load_iris

        example = load_iris(as_frame=True).data
        for name, model in fitted.items():
            floors[name] = raw_predict_rate(model, example, args.floor_seconds)
            print(
                f"in-process 1-row predict, {name}: {floors[name]['numpy']:.0f}/s (NumPy row), "
                f"{floors[name]['dataframe']:.0f}/s (DataFrame row)",
                flush=True,
            )
            ours, theirs = save_both(name, model, example.head(5), home)
            env = {
                "CONVEYOR_HOME": str(home / "conveyor-home"),
                # `mlflow models serve` runs `uvicorn` from the PATH.
                "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            }
            specs = {
                "mlflow": (mlflow_command, theirs, mlflow_workers, MLFLOW_DEFAULT_WORKERS),
                "conveyor": (conveyor_command, ours, conveyor_workers, conveyor_workers),
            }
            if args.workers2:
                specs["conveyor-w2"] = (conveyor_command, ours, 2, 2)
            with contextlib.ExitStack() as stack:
                servers = {}
                for side, (make, folder, workers, count) in specs.items():
                    port = free_port()
                    servers[side] = stack.enter_context(
                        running(side, make(folder, port, workers), port, count, home, env)
                    )
                order = list(servers)
                for rows in args.rows:
                    data = example.sample(rows, replace=True, random_state=rows)
                    body = orjson.dumps(
                        {"dataframe_split": data.to_dict(orient="split")}, option=orjson.OPT_SERIALIZE_NUMPY
                    )
                    expected = model.predict(data).tolist()  # type: ignore[attr-defined]
                    script = lua_script(body, home)
                    for server in servers.values():
                        check_answers(server, body, expected)
                    for connections in args.connections:
                        rounds: dict[str, list[Figure]] = {side: [] for side in servers}
                        for round_ in range(args.repeat):
                            for side in order:
                                figure = measure(
                                    servers[side], name, rows, connections, body, script, args, round_
                                )
                                rounds[side].append(figure)
                                every.append(figure)
                                print(render(figure), flush=True)
                            order.reverse()
                        figures.extend(median_round(rounds[side]) for side in servers)
    summary = summarize(figures, floors, args, time.monotonic() - started)
    print("\n" + summary)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "figures": [asdict(f) for f in figures],
                    "rounds": [asdict(f) for f in every],
                    "floors": floors,
                    "markdown": summary,
                },
                indent=2,
            )
        )


def render(f: Figure) -> str:
    batch = f"  batch {f.mean_batch:5.1f}" if f.mean_batch is not None else ""
    return (
        f"{f.model:7} rows={f.rows:<4} conns={f.connections:<3} {f.server:12} "
        f"{f.requests_per_s:9.0f} req/s {f.rows_per_s:10.0f} rows/s  "
        f"p50 {f.p50_ms:7.2f} ms  p99 {f.p99_ms:7.2f} ms{batch}"
        + (f"  FAILED: {f.errors} errors" if f.failed else "")
    )


def summarize(
    figures: list[Figure], floors: dict[str, dict[str, float]], args: argparse.Namespace, took: float
) -> str:
    """The Markdown block for ``benchmarks/RESULTS.md``: method, table, floors, targets."""
    by_key = {(f.model, f.rows, f.connections, f.server): f for f in figures}
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [
        "```sh",
        "." + "/.venv/bin/python benchmarks/serving/run.py " + " ".join(sys.argv[1:]),
        "```",
        "",
        f"* **Machine**: {os.cpu_count()} CPUs, load average at the end {load}; the run took {took:.0f} s.",
        f"* **Load**: {'wrk, one thread' if args.client == 'wrk' else 'asyncio client'}, "
        f"{args.seconds:g} s per run after {args.warmup:g} s of warm-up; the median of "
        f"{args.repeat} alternating round(s) by requests/s.",
        "",
        "| model | rows | conns | server | req/s | rows/s | p50 ms | p99 ms | req/s ÷ MLflow's "
        "| MLflow's p99 ÷ this p99 | rows per predict |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for f in figures:
        theirs = by_key.get((f.model, f.rows, f.connections, "mlflow"))
        ratio = p99 = "-"
        if theirs is not None and f.server != "mlflow" and theirs.requests_per_s > 0:
            ratio = f"{f.requests_per_s / theirs.requests_per_s:.1f}x"
            p99 = f"{theirs.p99_ms / f.p99_ms:.1f}x" if f.p99_ms > 0 else "-"
        batch = f"{f.mean_batch:.1f}" if f.mean_batch is not None else "-"
        failed = " **FAILED**" if f.failed else ""
        lines.append(
            f"| {f.model} | {f.rows} | {f.connections} | {f.server}{failed} | {f.requests_per_s:,.0f} "
            f"| {f.rows_per_s:,.0f} | {f.p50_ms:.2f} | {f.p99_ms:.1f} | {ratio} | {p99} | {batch} |"
        )
    lines.append("")
    for model, rates in floors.items():
        lines.append(
            f"* In-process one-row `predict`, {model}: {rates['numpy']:,.0f} calls/s on a NumPy row "
            f"({1000 / rates['numpy']:.3f} ms each; the estimator without its feature names, the "
            f"fastest call), {rates['dataframe']:,.0f}/s on a DataFrame row."
        )
    lines.append("")
    lines.extend(targets(by_key, floors))
    return "\n".join(lines)


def targets(
    by_key: dict[tuple[str, int, int, str], Figure], floors: dict[str, dict[str, float]]
) -> list[str]:
    """The issue's three targets, each with its figures and whether it is met."""
    out = ["Targets (issue 5):", ""]
    for (model, rows, connections, server), ours in sorted(by_key.items()):
        if server == "mlflow":
            continue
        theirs = by_key.get((model, rows, connections, "mlflow"))
        if connections == 32 and theirs is not None:
            ratio = ours.requests_per_s / theirs.requests_per_s
            met = ratio >= THROUGHPUT_RATIO_TARGET and ours.p99_ms < theirs.p99_ms and not ours.failed
            out.append(
                f"* {model}, {rows} row(s), 32 connections, {server}: {ratio:.1f}x MLflow's requests/s "
                f"(target ≥ {THROUGHPUT_RATIO_TARGET:g}x), p99 {ours.p99_ms:.1f} ms against "
                f"{theirs.p99_ms:.1f} ms: {'met' if met else 'NOT met'}"
            )
        if model in floors and rows == 1 and connections == 1:
            floor_ms = 1000 / floors[model]["numpy"]
            overhead = ours.p50_ms - floor_ms
            met = overhead <= LATENCY_OVERHEAD_TARGET_MS and not ours.failed
            out.append(
                f"* {model}, one request at a time, {server}: p50 {ours.p50_ms:.3f} ms, "
                f"{overhead:.3f} ms over the in-process predict ({floor_ms:.3f} ms; target ≤ "
                f"{LATENCY_OVERHEAD_TARGET_MS:g} ms, wrk's own time included): {'met' if met else 'NOT met'}"
            )
        if model in floors and rows == 1 and connections == 32:
            floor = floors[model]["numpy"]
            met = ours.requests_per_s > floor and not ours.failed
            out.append(
                f"* {model}, 1-row requests, 32 connections, {server}: {ours.requests_per_s:,.0f} "
                f"requests/s against the one-row-at-a-time predict loop's {floor:,.0f}/s: "
                f"{'met' if met else 'NOT met'}"
            )
    return out


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: logreg, 1-row requests, 1 and 32 connections, 2 s, one round",
    )
    parser.add_argument("--models", nargs="+", default=["logreg", "forest"], choices=["logreg", "forest"])
    parser.add_argument("--rows", nargs="+", type=int, default=[1, 100])
    parser.add_argument("--connections", nargs="+", type=int, default=[1, 8, 32])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured time per run")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up run before each measured one")
    parser.add_argument("--repeat", type=int, default=3, help="alternating rounds per workload (median kept)")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help=f"uvicorn workers of both servers (default: MLflow's default, {MLFLOW_DEFAULT_WORKERS})",
    )
    parser.add_argument(
        "--no-workers2", dest="workers2", action="store_false", help="skip Conveyor with --workers 2"
    )
    parser.add_argument(
        "--floor-seconds", type=float, default=3.0, help="time of the in-process predict loop"
    )
    parser.add_argument("--client", choices=["wrk", "asyncio"], default="wrk")
    parser.add_argument("--json", help="write every figure and the Markdown summary to this file")
    args = parser.parse_args()
    if args.quick:
        args.models, args.rows, args.connections = ["logreg"], [1], [1, 32]
        args.seconds, args.warmup, args.repeat, args.floor_seconds = 2.0, 0.5, 1, 1.0
    return args


if __name__ == "__main__":
    main()
