"""The workloads, each driven through the official ``mlflow`` client against both servers.

Measurements alternate between the servers in rounds (MLflow then Conveyor, then the
other way round, ...) so that a change in machine load during the run weighs on both
sides alike; each side's figure is the median of its rounds. Correctness is checked
after timing (row counts, search results equal on both servers) so that a fast wrong
answer never reads as a win.
"""

from __future__ import annotations

import hashlib
import os
import random
import statistics
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import requests
from mlflow.entities import Metric as MlflowMetric
from mlflow.entities import Param as MlflowParam

MLFLOW = "MLflow"
CONVEYOR = "Conveyor"
#: The canned-response stub (``stub.py``): the MLflow client's own cost, no server work.
FLOOR = "client only"
MIB = 1024 * 1024


# -- results ---------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the results table.

    ``target`` is either a ratio Conveyor must reach over MLflow (``ratio_target``), or an
    absolute bound on Conveyor's own figure (``abs_target``, compared with ``<`` for
    lower-is-better figures and ``>=`` otherwise).
    """

    key: str
    label: str
    unit: str
    higher_is_better: bool
    conveyor: float | None = None
    mlflow: float | None = None
    #: The same workload against the canned-response stub: what the client alone costs.
    floor: float | None = None
    ratio_target: float | None = None
    abs_target: float | None = None
    #: Where MLflow's figure comes from another row (the own-client comparison).
    mlflow_note: str = ""
    notes: list[str] = field(default_factory=list)
    samples: dict[str, list[float]] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if not self.conveyor or not self.mlflow:
            return None
        return self.conveyor / self.mlflow if self.higher_is_better else self.mlflow / self.conveyor

    @property
    def best_ratio(self) -> float | None:
        """The ratio a server that took no time at all would reach over MLflow, through this client."""
        if not self.floor or not self.mlflow:
            return None
        return self.floor / self.mlflow if self.higher_is_better else self.mlflow / self.floor

    @property
    def target_text(self) -> str:
        if self.ratio_target is not None:
            return f">= {self.ratio_target:g}x"
        if self.abs_target is not None:
            op = ">=" if self.higher_is_better else "<"
            return f"{op} {self.abs_target:g} {self.unit}"
        return ""

    @property
    def met(self) -> bool | None:
        if self.ratio_target is not None:
            return None if self.ratio is None else self.ratio >= self.ratio_target
        if self.abs_target is not None:
            if self.conveyor is None:
                return None
            if self.higher_is_better:
                return self.conveyor >= self.abs_target
            return self.conveyor < self.abs_target
        return None


@dataclass
class Failure:
    workload: str
    server: str
    error: str


@dataclass
class Side:
    """One server as the benchmark sees it: its URL and an official MLflow client on it."""

    name: str
    url: str
    client: mlflow.MlflowClient
    #: Set when a call on this server failed; the side sits out the rest of the workload.
    broken: bool = False


class Context:
    def __init__(self, sides: Sequence[Side], rounds: int, workdir: Path) -> None:
        self.sides = list(sides)
        #: The canned-response stub, measured alongside where a workload supports it.
        self.floor: Side | None = None
        self.rounds = rounds
        self.workdir = workdir
        self.failures: list[Failure] = []
        self.rows: list[Row] = []

    def side(self, name: str) -> Side | None:
        return next((s for s in self.sides if s.name == name), None)

    def fail(self, workload: str, side: Side, exc: BaseException) -> None:
        side.broken = True
        text = f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, AssertionError) and "mlflow" not in type(exc).__module__:
            text += "\n" + "".join(traceback.format_exception(exc)[-3:])
        self.failures.append(Failure(workload, side.name, text.strip()))

    def guarded(self, workload: str, side: Side, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` for one side; a failure is recorded and the side is skipped from then on."""
        if side.broken:
            return None
        try:
            return fn()
        except Exception as exc:
            self.fail(workload, side, exc)
            return None

    def reset(self) -> None:
        for side in [*self.sides, *([self.floor] if self.floor else [])]:
            side.broken = False

    def can(self, path: str, body: bytes) -> None:
        """Store the stub's answer for ``path`` (``/api/2.0/mlflow/...``)."""
        if self.floor is not None:
            response = requests.put(f"{self.floor.url}/__canned__{path}", data=body, timeout=30)
            response.raise_for_status()

    def prime(self, path: str, method: str, request: Callable[[Side], dict[str, Any]]) -> None:
        """Give the stub, for ``path``, a real server's raw answer to the request ``request(side)``
        describes (Conveyor's if it answers, else MLflow's)."""
        if self.floor is None or self.floor.broken:
            return
        errors = []
        for side in sorted(self.sides, key=lambda s: s.name != CONVEYOR):
            try:
                response = requests.request(method, f"{side.url}{path}", timeout=60, **request(side))
            except (KeyError, requests.RequestException) as exc:
                errors.append(f"{side.name}: {exc!r}")
                continue
            if response.ok:
                self.can(path, response.content)
                return
            if response.ok:
                return response.content
            errors.append(f"{side.name}: HTTP {response.status_code} {response.text[:200]}")
        self.fail("client-only floor", self.floor, RuntimeError(f"no answer to prime {path}: {errors}"))

    def alternate(
        self, workload: str, rounds: int, measure: Callable[[Side, int], float], floor: bool = False
    ) -> dict[str, list[float]]:
        """Call ``measure(side, round)`` for every side in every round, alternating who goes first.

        With ``floor``, the canned-response stub is measured in every round too.
        """
        sides = self.sides + ([self.floor] if floor and self.floor is not None else [])
        samples: dict[str, list[float]] = {s.name: [] for s in sides}
        for r in range(rounds):
            order = sides if r % 2 == 0 else list(reversed(sides))
            for side in order:
                value = self.guarded(workload, side, lambda side=side, r=r: measure(side, r))
                if value is not None:
                    samples[side.name].append(value)
        return samples


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def fill(row: Row, samples: dict[str, list[float]]) -> Row:
    row.samples = {k: [round(v, 6) for v in vs] for k, vs in samples.items()}
    row.conveyor = median(samples.get(CONVEYOR, []))
    row.mlflow = median(samples.get(MLFLOW, []))
    row.floor = median(samples.get(FLOOR, []))
    return row


def now_ms() -> int:
    return int(time.time() * 1000)


def new_experiment(side: Side, prefix: str) -> str:
    return side.client.create_experiment(f"{prefix}-{uuid.uuid4().hex[:8]}")


def new_run(side: Side, experiment_id: str) -> str:
    return side.client.create_run(experiment_id).info.run_id


def split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


# -- 1. single log_metric calls ----------------------------------------------------------------


def log_metric_calls(ctx: Context, calls: int) -> Row:
    name = "log_metric"
    runs: dict[str, str] = {}
    for side in ctx.sides:

        def setup(side: Side = side) -> None:
            runs[side.name] = new_run(side, new_experiment(side, "log-metric"))
            for i in range(20):  # warm-up: connection, caches, first-write paths
                side.client.log_metric(runs[side.name], "warmup", 0.5, timestamp=now_ms(), step=i)

        ctx.guarded(name, side, setup)
    runs[FLOOR] = FLOOR_RUN
    per_round = split(calls, ctx.rounds)
    steps: dict[str, int] = {s.name: 0 for s in ctx.sides} | {FLOOR: 0}

    def measure(side: Side, r: int) -> float:
        run_id, n, client = runs[side.name], per_round[r], side.client
        start = steps[side.name]
        stamp = now_ms()
        t0 = time.perf_counter()
        for i in range(start, start + n):
            client.log_metric(run_id, "loss", 1.0 / (i + 1), timestamp=stamp, step=i)
        elapsed = time.perf_counter() - t0
        steps[side.name] += n
        return n / elapsed

    samples = ctx.alternate(name, ctx.rounds, measure, floor=True)
    for side in ctx.sides:
        ctx.guarded(name, side, lambda side=side: _check_history(side, runs[side.name], "loss", calls))
    return fill(Row(name, f"log_metric, single calls ({calls:,})", "calls/s", True, ratio_target=5), samples)


#: Run id the client sends to the stub (which ignores it).
FLOOR_RUN = "0" * 32


def _check_history(side: Side, run_id: str, key: str, expected: int) -> None:
    got = len(side.client.get_metric_history(run_id, key))
    assert got == expected, f"{side.name}: metric {key!r} has {got} points after logging {expected}"


# -- 2. log_batch ----------------------------------------------------------------------------


def _mlflow_points(n: int, first_step: int, keys: int = 10) -> list[MlflowMetric]:
    stamp = now_ms()
    return [MlflowMetric(f"m{j % keys}", random.random(), stamp, first_step + j // keys) for j in range(n)]


def log_batch_points(ctx: Context, calls: int, per_call: int = 1000) -> Row:
    name = "log_batch"
    runs: dict[str, str] = {}
    for side in ctx.sides:

        def setup(side: Side = side) -> None:
            runs[side.name] = new_run(side, new_experiment(side, "log-batch"))
            side.client.log_batch(runs[side.name], metrics=_mlflow_points(per_call, 10**9))

        ctx.guarded(name, side, setup)
    runs[FLOOR] = FLOOR_RUN
    per_round = split(calls, ctx.rounds)
    # The same payloads for both servers, built before the clock starts.
    batches = [_mlflow_points(per_call, i * (per_call // 10)) for i in range(calls)]
    offsets = [sum(per_round[:r]) for r in range(ctx.rounds)]

    def measure(side: Side, r: int) -> float:
        run_id, client = runs[side.name], side.client
        todo = batches[offsets[r] : offsets[r] + per_round[r]]
        t0 = time.perf_counter()
        for batch in todo:
            client.log_batch(run_id, metrics=batch)
        return len(todo) * per_call / (time.perf_counter() - t0)

    samples = ctx.alternate(name, ctx.rounds, measure, floor=True)
    for side in ctx.sides:
        ctx.guarded(
            name,
            side,
            lambda side=side: _check_history(side, runs[side.name], "m0", (calls + 1) * per_call // 10),
        )
    label = f"log_batch, {per_call:,} metrics/call ({calls} calls)"
    return fill(Row(name, label, "points/s", True, ratio_target=5), samples)


# -- 3. runs created ---------------------------------------------------------------------------


def run_payload(rng: random.Random) -> tuple[list[MlflowMetric], list[MlflowParam]]:
    stamp = now_ms()
    model = rng.choice(("rf", "gbm", "lr", "svm"))
    metrics = [
        MlflowMetric("acc", rng.random(), stamp, 0),
        MlflowMetric("loss", rng.random() * 2, stamp, 0),
        *(MlflowMetric(f"metric_{k}", rng.random(), stamp, 0) for k in range(8)),
    ]
    params = [
        MlflowParam("model", model),
        MlflowParam("depth", str(rng.randint(2, 12))),
        MlflowParam("lr", f"{rng.choice((0.001, 0.01, 0.1)):g}"),
        MlflowParam("seed", str(rng.randint(0, 10_000))),
        MlflowParam("n_estimators", str(rng.choice((50, 100, 200, 400)))),
    ]
    return metrics, params


def runs_created(ctx: Context, runs: int) -> Row:
    name = "create_run"
    experiments: dict[str, str] = {}
    for side in ctx.sides:

        def setup(side: Side = side) -> None:
            experiments[side.name] = new_experiment(side, "create-runs")
            rid = new_run(side, experiments[side.name])  # warm-up
            side.client.log_batch(rid, *run_payload(random.Random(0)))

        ctx.guarded(name, side, setup)
    experiments[FLOOR] = "0"
    # Captured in an experiment of its own, so that the runs counted below are the timed ones.
    ctx.prime(
        "/api/2.0/mlflow/runs/create",
        "POST",
        lambda s: {"json": {"experiment_id": new_experiment(s, "create-runs-capture")}},
    )
    per_round = split(runs, ctx.rounds)

    def measure(side: Side, r: int) -> float:
        rng = random.Random(r)
        payloads = [run_payload(rng) for _ in range(per_round[r])]
        client, experiment_id = side.client, experiments[side.name]
        t0 = time.perf_counter()
        for metrics, params in payloads:
            run_id = client.create_run(experiment_id).info.run_id
            client.log_batch(run_id, metrics=metrics, params=params)
        return len(payloads) / (time.perf_counter() - t0)

    samples = ctx.alternate(name, ctx.rounds, measure, floor=True)
    for side in ctx.sides:

        def check(side: Side = side) -> None:
            found = side.client.search_runs([experiments[side.name]], max_results=runs + 10)
            assert len(found) == runs + 1, f"{side.name}: {len(found)} runs found, {runs + 1} created"
            assert all(len(r.data.metrics) == 10 and len(r.data.params) == 5 for r in found), (
                f"{side.name}: runs lack some of their 10 metrics / 5 params"
            )

        ctx.guarded(name, side, check)
    label = f"runs created: create_run + log_batch 10 metrics/5 params ({runs})"
    return fill(Row(name, label, "runs/s", True, ratio_target=5), samples)


# -- 5. metric history -----------------------------------------------------------------------------


def metric_history(ctx: Context, points: int, repeats: int) -> Row:
    name = "get_metric_history"
    runs: dict[str, str] = {}
    for side in ctx.sides:

        def setup(side: Side = side) -> None:
            run_id = runs[side.name] = new_run(side, new_experiment(side, "history"))
            stamp = now_ms()
            for start in range(0, points, 1000):
                batch = [
                    MlflowMetric("loss", 1.0 / (i + 1), stamp + i, i)
                    for i in range(start, min(points, start + 1000))
                ]
                side.client.log_batch(run_id, metrics=batch)
            side.client.get_metric_history(run_id, "loss")  # warm-up

        ctx.guarded(name, side, setup)
    runs[FLOOR] = FLOOR_RUN
    ctx.prime(
        "/api/2.0/mlflow/metrics/get-history",
        "GET",
        lambda s: {"params": {"run_id": runs[s.name], "metric_key": "loss", "max_results": 25000}},
    )

    def measure(side: Side, r: int) -> float:
        t0 = time.perf_counter()
        history = side.client.get_metric_history(runs[side.name], "loss")
        elapsed = time.perf_counter() - t0
        assert len(history) == points, f"{side.name}: {len(history)} points returned, {points} logged"
        return elapsed * 1000

    samples = ctx.alternate(name, repeats, measure, floor=True)
    return fill(
        Row(name, f"get_metric_history, {points:,} points (median)", "ms", False, ratio_target=3), samples
    )


# -- 6. artifacts ------------------------------------------------------------------------------------


def artifact_transfer(ctx: Context, size_mib: int, rounds: int) -> list[Row]:
    name = "artifacts"
    source_dir = ctx.workdir / "artifact-source"
    source_dir.mkdir(exist_ok=True)
    source = source_dir / "blob.bin"
    digest = hashlib.sha256()
    with source.open("wb") as out:
        for _ in range(size_mib):
            chunk = os.urandom(MIB)
            digest.update(chunk)
            out.write(chunk)
    expected = digest.hexdigest()
    experiments: dict[str, str] = {}
    for side in ctx.sides:
        ctx.guarded(
            name,
            side,
            lambda side=side: experiments.__setitem__(side.name, new_experiment(side, "artifacts")),
        )
    sides = ctx.sides + ([ctx.floor] if ctx.floor else [])
    up: dict[str, list[float]] = {s.name: [] for s in sides}
    down: dict[str, list[float]] = {s.name: [] for s in sides}
    if ctx.floor is not None:
        # The stub answers runs/get with a real run (its mlflow-artifacts: location), drops
        # the upload, and serves the file from memory for the download.
        ctx.prime(
            "/api/2.0/mlflow/runs/get",
            "GET",
            lambda s: {"params": {"run_id": new_run(s, experiments[s.name])}},
        )
        ctx.guarded(
            name,
            ctx.floor,
            lambda: requests.put(
                f"{ctx.floor.url}/__file__", data=str(source), timeout=60
            ).raise_for_status(),
        )

    def one(side: Side, r: int) -> float:
        run_id = FLOOR_RUN if side.name == FLOOR else new_run(side, experiments[side.name])
        t0 = time.perf_counter()
        side.client.log_artifact(run_id, str(source))
        up_s = time.perf_counter() - t0
        target = ctx.workdir / f"download-{side.name}-{r}"
        target.mkdir()
        t0 = time.perf_counter()
        local = side.client.download_artifacts(run_id, "blob.bin", str(target))
        down_s = time.perf_counter() - t0
        got = Path(local)
        size = got.stat().st_size
        assert size == size_mib * MIB, f"{side.name}: downloaded {size} bytes, uploaded {size_mib * MIB}"
        if r == 0:
            assert _sha256(got) == expected, f"{side.name}: downloaded bytes differ from the uploaded ones"
        got.unlink()
        up[side.name].append(size_mib / up_s)
        down[side.name].append(size_mib / down_s)
        return up_s

    ctx.alternate(name, rounds, one, floor=True)
    source.unlink()
    return [
        fill(
            Row(
                "artifact_upload",
                f"log_artifact, {size_mib} MiB file via the proxy",
                "MiB/s",
                True,
                ratio_target=2,
            ),
            up,
        ),
        fill(
            Row(
                "artifact_download",
                f"download_artifacts, {size_mib} MiB file via the proxy",
                "MiB/s",
                True,
                ratio_target=2,
            ),
            down,
        ),
    ]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(MIB):
            h.update(chunk)
    return h.hexdigest()


# -- 7. Conveyor's own client ----------------------------------------------------------------------


def native_batch_points(ctx: Context, points: int, chunk: int, mlflow_batch: Row) -> Row:
    """Points/s through ``RestStore.log_metrics`` (columnar, ``chunk`` points per call)."""
    from conveyor.store.entities import Metric
    from conveyor.store.rest import RestStore

    row = Row(
        "native_log_metrics",
        f"Conveyor client log_metrics, {chunk:,} points/call ({points:,})",
        "points/s",
        True,
        ratio_target=20,
    )
    row.mlflow = mlflow_batch.mlflow
    row.mlflow_note = "MLflow log_batch (row above)"
    side = ctx.side(CONVEYOR)
    if side is None:
        return row
    side.broken = False
    store = RestStore(side.url)
    try:
        run_id = store.create_run(new_experiment(side, "native-batch")).info.run_id
        stamp = now_ms()
        store.log_metrics(
            run_id, [Metric(f"m{j % 10}", 0.5, stamp, 10**9 + j // 10) for j in range(chunk)]
        )  # warm-up
        calls = max(1, points // chunk)
        per_round = split(calls, ctx.rounds)
        payloads = [
            [Metric(f"m{j % 10}", random.random(), stamp, (c * chunk + j) // 10) for j in range(chunk)]
            for c in range(calls)
        ]
        rates = []
        done = 0
        for n in per_round:
            t0 = time.perf_counter()
            for payload in payloads[done : done + n]:
                store.log_metrics(run_id, payload)
            rates.append(n * chunk / (time.perf_counter() - t0))
            done += n
        stored = store.get_metric_history(run_id, "m0").items
        expected = (calls * chunk + chunk) // 10
        assert len(stored) == expected, f"metric m0 has {len(stored)} points, expected {expected}"
        row.conveyor = median(rates)
        row.samples = {CONVEYOR: [round(r, 1) for r in rates]}
    except Exception as exc:
        ctx.fail(row.key, side, exc)
    finally:
        store.close()
    return row


def _bare_loop(n: int) -> float:
    t0 = time.perf_counter()
    total = 0.0
    for i in range(n):
        total += 1.0 / (i + 1)  # stands in for a training step's loss
    return time.perf_counter() - t0


def training_loop(ctx: Context, points: int, mlflow_points: int) -> Row:
    """Wall time that logging ``points`` points from a loop adds: the loop with logging and
    the final flush, minus the same loop without logging.

    MLflow's nearest equivalent is its asynchronous logging (``synchronous=False``, then
    ``flush_async_logging``); it is far too slow to time over ``points`` points, so it is
    timed over ``mlflow_points`` and scaled linearly (0 skips it).
    """
    from conveyor.tracking.client import Client

    row = Row(
        "training_loop",
        f"training loop: wall time added by logging {points:,} points",
        "s",
        False,
        abs_target=1,
    )
    sides = [s for s in ctx.sides if s.name == CONVEYOR or mlflow_points > 0]
    samples: dict[str, list[float]] = {s.name: [] for s in sides}
    for side in sides:

        def measure(side: Side = side) -> None:
            run_id = new_run(side, new_experiment(side, "training-loop"))
            n = points if side.name == CONVEYOR else mlflow_points
            bare = min(_bare_loop(n) for _ in range(3))
            if side.name == CONVEYOR:
                client = Client(side.url)
                try:
                    client.log_metric(run_id, "warmup", 0.0)
                    client.flush()
                    t0 = time.perf_counter()
                    total = 0.0
                    for i in range(n):
                        v = 1.0 / (i + 1)
                        total += v
                        client.log_metric(run_id, "loss", v, step=i)
                    client.flush()
                    logged = time.perf_counter() - t0
                finally:
                    client.close()
            else:
                mlflow.set_tracking_uri(side.url)
                client = side.client
                t0 = time.perf_counter()
                total = 0.0
                for i in range(n):
                    v = 1.0 / (i + 1)
                    total += v
                    client.log_metric(run_id, "loss", v, step=i, synchronous=False)
                mlflow.flush_async_logging()
                logged = time.perf_counter() - t0
            samples[side.name].append(max(0.0, logged - bare) * points / n)
            _check_history(side, run_id, "loss", n)

        ctx.guarded(row.key, side, measure)
    fill(row, samples)
    if mlflow_points == 0:
        row.mlflow_note = "skipped"
    elif mlflow_points != points:
        row.mlflow_note = f"async logging, timed over {mlflow_points:,} points and scaled"
    else:
        row.mlflow_note = "async logging"
    return row
