"""Metric history endpoints: one metric's full series, and a sampled view over many runs.

History responses are the largest JSON bodies the client reads (10,000+ points for a
long training run), so they are encoded with orjson in the worker thread that read them,
straight from the store's points.
"""

from __future__ import annotations

import orjson
from fastapi import Request, Response

from conveyor.errors import InvalidInput
from conveyor.server.mlflow_api.routing import Context, Endpoint, call
from conveyor.server.mlflow_api.wire import metric_json, number, read_fields
from conveyor.store.entities import Metric

#: MLflow's limits for ``get-history-bulk-interval``.
MAX_BULK_RUNS = 100
MAX_POINTS_PER_RUN = 2500


def sample_steps(steps: list[int], limit: int) -> list[int]:
    """At most ``limit`` of the sorted distinct ``steps``, evenly spread, first and last kept.

    Why: charts of long runs need the shape of the curve, not every point; keeping the
    ends makes the plotted range match the real one.
    """
    if len(steps) <= limit:
        return steps
    if limit == 1:
        return [steps[-1]]
    last = len(steps) - 1
    picked = {steps[round(i * last / (limit - 1))] for i in range(limit)}
    return sorted(picked)


def _json_response(payload: bytes) -> Response:
    return Response(content=payload, media_type="application/json")


def endpoints(ctx: Context) -> list[Endpoint]:
    store = ctx.service.store

    def history(run_id: str, key: str, max_results: int | None, page_token: str | None) -> bytes:
        page = store.get_metric_history(run_id, key, max_results=max_results, page_token=page_token)
        payload: dict[str, object] = {"metrics": [metric_json(m) for m in page.items]}
        if page.next_page_token:
            payload["next_page_token"] = page.next_page_token
        return orjson.dumps(payload)

    async def get_metric_history(request: Request) -> Response:
        f = await read_fields(request)
        run_id = f.run_id()
        key = f.need_text("metric_key")
        max_results = f.integer("max_results")
        return _json_response(await call(history, run_id, key, max_results, f.text("page_token") or None))

    def bulk_interval(run_ids: list[str], key: str, start: int | None, end: int | None, limit: int) -> bytes:
        series: list[tuple[str, list[Metric]]] = []
        for run_id in run_ids:
            points = store.get_metric_history(run_id, key).items
            if start is not None and end is not None:
                points = [p for p in points if start <= p.step <= end]
            series.append((run_id, points))
        steps = set(sample_steps(sorted({p.step for _, points in series for p in points}), limit))
        metrics = [
            {
                "key": p.key,
                "value": number(p.value),
                "timestamp": p.timestamp,
                "step": p.step,
                "run_id": run_id,
            }
            for run_id, points in series
            for p in points
            if p.step in steps
        ]
        return orjson.dumps({"metrics": metrics})

    async def get_metric_history_bulk_interval(request: Request) -> Response:
        f = await read_fields(request)
        run_ids = f.text_list("run_ids")
        if not run_ids:
            raise InvalidInput("Missing value for required parameter 'run_ids'.")
        if len(run_ids) > MAX_BULK_RUNS:
            raise InvalidInput(
                f"GetMetricHistoryBulkInterval request must specify at most {MAX_BULK_RUNS} run_ids. "
                f"Received {len(run_ids)} run_ids."
            )
        key = f.need_text("metric_key")
        limit = f.integer_or("max_results", MAX_POINTS_PER_RUN)
        if not 1 <= limit <= MAX_POINTS_PER_RUN:
            raise InvalidInput(f"max_results must be between 1 and {MAX_POINTS_PER_RUN}.")
        start, end = f.integer("start_step"), f.integer("end_step")
        if (start is None) != (end is None):
            raise InvalidInput("If either start step or end step are specified, both must be specified.")
        if start is not None and end is not None and start > end:
            raise InvalidInput(
                f"end_step must be greater than start_step. Found start_step={start} and end_step={end}."
            )
        return _json_response(await call(bulk_interval, run_ids, key, start, end, limit))

    return [
        Endpoint(
            "GET",
            "/mlflow/metrics/get-history",
            get_metric_history,
            "Get every point of one metric of a run",
            {"run_id": "string", "metric_key": "string", "max_results": "integer", "page_token": "string"},
        ),
        Endpoint(
            "GET",
            "/mlflow/metrics/get-history-bulk-interval",
            get_metric_history_bulk_interval,
            "Get one metric of up to 100 runs, sampled to at most max_results steps",
            {
                "run_ids": "string[]",
                "metric_key": "string",
                "start_step": "integer",
                "end_step": "integer",
                "max_results": "integer",
            },
        ),
    ]
