"""Conveyor's model server against ``mlflow models serve``, same models, same load.

    .venv/bin/python benchmarks/serving/run.py             # full run, about 6 minutes on 2 cores
    .venv/bin/python benchmarks/serving/run.py --quick     # smoke run, about 1 minute
    .venv/bin/python benchmarks/serving/run.py --models logreg --rows 1 --connections 1 32 --json out.json

Models: a logistic regression and a 100-tree random forest, fitted on iris (bundled with
scikit-learn) as a four-column DataFrame. The same fitted estimator is saved twice: with
``mlflow.sklearn.save_model`` for MLflow and with ``conveyor.models.save`` for Conveyor.
Both servers run as subprocesses on 127.0.0.1 with the same number of uvicorn workers
(``conveyor serve DIR --no-access-log`` and ``mlflow models serve -m DIR --env-manager
local``) and are stopped, process group and all, at the end.

Load: N concurrent keep-alive connections, each sending the same ``POST /invocations``
(``dataframe_split``, MLflow's own format, which both servers take) in a closed loop for
a fixed time, after a warm-up. The client is a minimal HTTP/1.1 client on asyncio streams
(``--client httpx`` uses httpx instead): a heavy client on the same two cores would
measure itself. Every answer is checked (status 200, the expected number of
predictions). Servers alternate per workload so that machine load weighs on both alike.

Printed per workload: requests/s, rows/s, p50 and p99 latency, and Conveyor's ratio
over MLflow; and, once, the in-process ``predict`` rate on one row (the floor a Python
server cannot beat).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import orjson
import pandas as pd

from conveyor.testing.processes import free_port

VENV_BIN = Path(sys.executable).parent


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
    errors: int


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
    mlflow.sklearn.save_model(model, str(theirs), input_example=example, skops_trusted_types=trusted)
    return ours, theirs


def raw_predict_rate(model: object, example: pd.DataFrame, seconds: float) -> dict[str, float]:
    """One-row ``predict`` calls per second in this process: on a NumPy row and on a DataFrame row."""
    rates = {}
    for label, row in (("numpy", example.head(1).to_numpy()), ("dataframe", example.head(1))):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            calls, deadline = 0, time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                model.predict(row)  # type: ignore[attr-defined]
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


@contextlib.contextmanager
def running(name: str, command: list[str], port: int, home: Path, env: dict[str, str]) -> Iterator[Server]:
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
    server = Server(name, f"http://127.0.0.1:{port}", process, log)
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


def wait_healthy(server: Server, timeout: float = 120.0) -> None:
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


def mlflow_command(folder: Path, port: int, workers: int) -> list[str]:
    return [
        str(VENV_BIN / "mlflow"), "models", "serve", "-m", str(folder), "--env-manager", "local",
        "-h", "127.0.0.1", "-p", str(port), "-w", str(workers),
    ]  # fmt: skip


# -- load ----------------------------------------------------------------------------------


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


async def httpx_client(url: str, body: bytes, expect: int, until: float, latencies: list[float]) -> int:
    errors = 0
    async with httpx.AsyncClient(base_url=url, headers={"Content-Type": "application/json"}) as client:
        while time.perf_counter() < until:
            started = time.perf_counter()
            response = await client.post("/invocations", content=body)
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200 or len(response.json()["predictions"]) != expect:
                errors += 1
    return errors


async def drive(
    server: Server, body: bytes, rows: int, connections: int, seconds: float, kind: str
) -> tuple[list[float], int]:
    port = int(server.url.rsplit(":", 1)[1])
    latencies: list[float] = []
    until = time.perf_counter() + seconds
    if kind == "raw":
        request = request_bytes(port, body)
        clients = [raw_client(port, request, rows, until, latencies) for _ in range(connections)]
    else:
        clients = [httpx_client(server.url, body, rows, until, latencies) for _ in range(connections)]
    errors = await asyncio.gather(*clients)
    return latencies, sum(errors)


def measure(
    server: Server,
    model: str,
    body: bytes,
    rows: int,
    connections: int,
    seconds: float,
    warmup: float,
    kind: str,
) -> Figure:
    asyncio.run(drive(server, body, rows, connections, warmup, kind))
    latencies, errors = asyncio.run(drive(server, body, rows, connections, seconds, kind))
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else float("nan")
    rate = len(latencies) / seconds
    return Figure(
        model, rows, connections, server.name, rate, rate * rows,
        statistics.median(ordered) * 1000 if ordered else float("nan"), p99 * 1000, errors,
    )  # fmt: skip


# -- main ----------------------------------------------------------------------------------


def main() -> None:
    args = parse_args()
    figures: list[Figure] = []
    floors: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-serving-") as tmp:
        home = Path(tmp)
        fitted = fit_models(args.models)
        from sklearn.datasets import load_iris

        example = load_iris(as_frame=True).data
        for name, model in fitted.items():
            floors[name] = raw_predict_rate(model, example, args.seconds / 2)
            ours, theirs = save_both(name, model, example.head(5), home)
            env = {
                "CONVEYOR_HOME": str(home / "conveyor-home"),
                # `mlflow models serve` runs `uvicorn` from the PATH.
                "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            }
            ports = {"conveyor": free_port(), "mlflow": free_port()}
            commands = {
                "conveyor": conveyor_command(ours, ports["conveyor"], args.workers),
                "mlflow": mlflow_command(theirs, ports["mlflow"], args.workers),
            }
            with contextlib.ExitStack() as stack:
                servers = {
                    s: stack.enter_context(running(s, commands[s], ports[s], home, env)) for s in commands
                }
                order = ["mlflow", "conveyor"]
                for rows in args.rows:
                    data = example.sample(rows, replace=True, random_state=rows)
                    body = orjson.dumps(
                        {"dataframe_split": data.to_dict(orient="split")}, option=orjson.OPT_SERIALIZE_NUMPY
                    )
                    for connections in args.connections:
                        for side in order:
                            figure = measure(
                                servers[side],
                                name,
                                body,
                                rows,
                                connections,
                                args.seconds,
                                args.warmup,
                                args.client,
                            )
                            figures.append(figure)
                            print(render(figure), flush=True)
                        order.reverse()
    print_summary(figures, floors)
    if args.json:
        Path(args.json).write_text(
            json.dumps({"figures": [asdict(f) for f in figures], "floors": floors}, indent=2)
        )


def render(f: Figure) -> str:
    return (
        f"{f.model:7} rows={f.rows:<4} conns={f.connections:<3} {f.server:9} "
        f"{f.requests_per_s:9.0f} req/s {f.rows_per_s:10.0f} rows/s  "
        f"p50 {f.p50_ms:7.2f} ms  p99 {f.p99_ms:7.2f} ms" + (f"  ERRORS {f.errors}" if f.errors else "")
    )


def print_summary(figures: list[Figure], floors: dict[str, dict[str, float]]) -> None:
    print("\nConveyor over MLflow (requests/s ratio; p99 MLflow/Conveyor, >1 is better):")
    by_key = {(f.model, f.rows, f.connections, f.server): f for f in figures}
    for (model, rows, connections, server), ours in by_key.items():
        if server != "conveyor" or (model, rows, connections, "mlflow") not in by_key:
            continue
        theirs = by_key[(model, rows, connections, "mlflow")]
        throughput = ours.requests_per_s / theirs.requests_per_s
        p99 = theirs.p99_ms / ours.p99_ms
        print(
            f"  {model:7} rows={rows:<4} conns={connections:<3} throughput x{throughput:5.2f} p99 x{p99:5.2f}"
        )
    for model, rates in floors.items():
        numpy_rate, frame_rate = rates["numpy"], rates["dataframe"]
        print(
            f"  in-process 1-row predict, {model}: {numpy_rate:.0f}/s (NumPy), {frame_rate:.0f}/s (DataFrame)"
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: logreg, 1 and 8 connections, 2 s each"
    )
    parser.add_argument("--models", nargs="+", default=["logreg", "forest"], choices=["logreg", "forest"])
    parser.add_argument("--rows", nargs="+", type=int, default=[1, 100])
    parser.add_argument("--connections", nargs="+", type=int, default=[1, 8, 32])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time per workload and server")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers, the same on both sides")
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw")
    parser.add_argument("--json", help="write every figure to this file")
    args = parser.parse_args()
    if args.quick:
        args.models, args.connections, args.seconds, args.warmup = ["logreg"], [1, 8], 2.0, 0.5
    return args


if __name__ == "__main__":
    main()
