"""Search workloads: populating both servers with the same runs, then timing ``search_runs``.

Split from :mod:`workloads` (which holds the shared harness types and the logging,
history and artifact workloads) to keep each module to one concern.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import mlflow
from mlflow.entities import Metric as MlflowMetric
from mlflow.entities import Param as MlflowParam
from workloads import CONVEYOR, FLOOR, MLFLOW, Context, Failure, Row, Side, fill, new_experiment, run_payload

# -- 4. search_runs -----------------------------------------------------------------------------

SEARCH_FILTER = "metrics.acc > 0.5 and params.model = 'rf'"
SEARCH_ORDER = ["metrics.acc DESC"]


def populate_via_mlflow(side: Side, experiment_id: str, runs: int, seed: int, threads: int = 4) -> float:
    """``runs`` runs of the search data set through the MLflow client; returns seconds taken."""
    rng = random.Random(seed)
    payloads = [run_payload(rng) for _ in range(runs)]
    t0 = time.perf_counter()

    def one(payload: tuple[list[MlflowMetric], list[MlflowParam]]) -> None:
        run_id = side.client.create_run(experiment_id).info.run_id
        side.client.log_batch(run_id, metrics=payload[0], params=payload[1])

    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(one, payloads):
            pass
    return time.perf_counter() - t0


def populate_via_native(url: str, experiment_id: str, runs: int, seed: int, threads: int = 4) -> float:
    """The same data set through Conveyor's native API (``RestStore``); returns seconds taken."""
    from conveyor.store.entities import Metric, Param
    from conveyor.store.rest import RestStore

    rng = random.Random(seed)
    payloads = [run_payload(rng) for _ in range(runs)]
    local = threading.local()
    t0 = time.perf_counter()

    def one(payload: tuple[list[MlflowMetric], list[MlflowParam]]) -> None:
        store = getattr(local, "store", None)
        if store is None:
            store = local.store = RestStore(url)
        run = store.create_run(experiment_id)
        store.log_batch(
            run.info.run_id,
            metrics=[Metric(m.key, m.value, m.timestamp, m.step) for m in payload[0]],
            params=[Param(p.key, p.value) for p in payload[1]],
        )

    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(one, payloads):
            pass
    return time.perf_counter() - t0


@dataclass
class SearchCase:
    key: str
    label: str
    filter_string: str
    order_by: list[str]


SEARCH_CASES = [
    SearchCase("filter_order", "filter + order_by", SEARCH_FILTER, SEARCH_ORDER),
    SearchCase("order", "order_by metric, no filter", "", SEARCH_ORDER),
]


def _search(side: Side, experiment_id: str, case: SearchCase, max_results: int = 100) -> Any:
    return side.client.search_runs(
        [experiment_id], filter_string=case.filter_string, order_by=case.order_by, max_results=max_results
    )


def _matching(runs: int, seed: int, case: SearchCase) -> int:
    """How many runs of the generated data set the case's filter matches."""
    if not case.filter_string:
        return runs
    assert case.filter_string == SEARCH_FILTER
    rng = random.Random(seed)
    count = 0
    for _ in range(runs):
        metrics, params = run_payload(rng)
        count += metrics[0].value > 0.5 and params[0].value == "rf"
    return count


def _fingerprint(found: Any) -> list[tuple[float, str]]:
    return [(round(r.data.metrics["acc"], 9), r.data.params.get("model", "")) for r in found]


def search_latency(ctx: Context, runs: int, repeats: int, log: Callable[[str], None]) -> list[Row]:
    name = "search_runs"
    experiments: dict[str, str] = {}
    for side in ctx.sides:
        ctx.guarded(
            name, side, lambda side=side: experiments.__setitem__(side.name, new_experiment(side, "search"))
        )

    def populate(side: Side) -> None:
        if side.name == CONVEYOR:
            seconds = populate_via_native(side.url, experiments[side.name], runs, seed=42)
            log(f"  populated {runs:,} runs on Conveyor (native API) in {seconds:.1f} s")
        else:
            seconds = populate_via_mlflow(side, experiments[side.name], runs, seed=42)
            log(f"  populated {runs:,} runs on MLflow (MLflow client, 4 threads) in {seconds:.1f} s")

    # Both at once: populating is not measured, and the two servers are independent.
    workers = [
        threading.Thread(target=ctx.guarded, args=(name, side, lambda side=side: populate(side)))
        for side in ctx.sides
        if not side.broken
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()

    return [_search_case(ctx, experiments, case, runs, repeats) for case in SEARCH_CASES]


def _search_case(ctx: Context, experiments: dict[str, str], case: SearchCase, runs: int, repeats: int) -> Row:
    name = "search_runs"
    results: dict[str, Any] = {}
    for side in ctx.sides:  # warm-up, and the answers compared below

        def first(side: Side = side) -> None:
            results[side.name] = _search(side, experiments[side.name], case)
            _search(side, experiments[side.name], case)

        ctx.guarded(name, side, first)
    expected = min(100, _matching(runs, seed=42, case=case))
    experiments[FLOOR] = "0"
    ctx.prime(
        "/api/2.0/mlflow/runs/search",
        "POST",
        lambda s: {
            "json": {
                "experiment_ids": [experiments[s.name]],
                "filter": case.filter_string,
                "run_view_type": "ACTIVE_ONLY",
                "max_results": 100,
                "order_by": case.order_by,
            }
        },
    )

    def measure(side: Side, r: int) -> float:
        t0 = time.perf_counter()
        found = _search(side, experiments[side.name], case)
        elapsed = time.perf_counter() - t0
        assert len(found) == expected, f"{side.name}: {len(found)} runs returned, expected {expected}"
        return elapsed * 1000

    samples = ctx.alternate(name, repeats, measure, floor=True)
    row = Row(
        f"search_{case.key}_{runs}",
        f"search_runs {case.label}, {runs:,} runs (median)",
        "ms",
        False,
        ratio_target=10,
    )
    fill(row, samples)
    if MLFLOW in results and CONVEYOR in results:
        ours, theirs = _fingerprint(results[CONVEYOR]), _fingerprint(results[MLFLOW])
        if ours != theirs:
            row.notes.append("results differ between the servers")
            ctx.failures.append(
                Failure(
                    name,
                    CONVEYOR,
                    f"{case.label}: the top {expected} runs (acc, model) differ from MLflow's: "
                    f"Conveyor {ours[:3]}..., MLflow {theirs[:3]}...",
                )
            )
    return row


def search_latency_large(
    ctx: Context, url: str, experiment_id: str, runs: int, repeats: int, seed: int
) -> list[Row]:
    """Conveyor only: the same searches over a store pre-populated with ``runs`` runs."""
    side = Side(CONVEYOR, url, mlflow.MlflowClient(tracking_uri=url))
    rows = []
    for case in SEARCH_CASES:
        row = Row(
            f"search_{case.key}_{runs}",
            f"search_runs {case.label}, {runs:,} runs (median)",
            "ms",
            False,
            abs_target=100,
        )
        row.mlflow_note = "not populated"
        expected = min(100, _matching(runs, seed, case))
        try:
            _search(side, experiment_id, case)
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                found = _search(side, experiment_id, case)
                times.append((time.perf_counter() - t0) * 1000)
                assert len(found) == expected, f"{len(found)} runs returned, expected {expected}"
            fill(row, {CONVEYOR: times})
        except Exception as exc:
            ctx.fail(row.key, side, exc)
        rows.append(row)
    return rows
