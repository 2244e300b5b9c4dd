"""Conveyor's own REST API, ``/api/conveyor/v1``: the full tracking store contract over HTTP.

:class:`conveyor.store.rest.RestStore` is its client, and the store conformance suite runs
through it against a live server, so this API and the SQL store cannot drift apart.
Metric batches are columnar (see :mod:`conveyor.store.codec`) and may hold up to
100,000 points per request.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from conveyor.errors import InvalidInput, NotFound
from conveyor.server.requests import integer, json_body, required, string, string_list, string_map
from conveyor.server.responses import JSON
from conveyor.server.streaming import pipe_body
from conveyor.store import codec
from conveyor.store.entities import Param, Tag, ViewType
from conveyor.tracking.service import TrackingService

PREFIX = "/api/conveyor/v1"

T = TypeVar("T")


async def _call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await run_in_threadpool(fn, *args, **kwargs)


def _view(data: dict[str, Any], field: str) -> ViewType:
    raw = data.get(field) or ViewType.ACTIVE_ONLY.value
    try:
        return ViewType(raw)
    except ValueError:
        raise InvalidInput(
            f"Invalid value {raw!r} for parameter '{field}': use ACTIVE_ONLY, DELETED_ONLY or ALL"
        ) from None


def build_router(service: TrackingService) -> APIRouter:
    """Routes of the native API, bound to one service."""
    router = APIRouter(prefix=PREFIX, tags=["conveyor"])
    _experiment_routes(router, service)
    _run_routes(router, service)
    _logging_routes(router, service)
    _artifact_index_routes(router, service)
    _artifact_routes(router, service)
    return router


def _experiment_routes(router: APIRouter, service: TrackingService) -> None:
    store = service.store

    @router.post("/experiments", summary="Create an experiment")
    async def create_experiment(request: Request) -> dict[str, str]:
        data = await json_body(request)
        experiment_id = await _call(
            store.create_experiment,
            string(data, "name", need=True),
            string(data, "artifact_location"),
            string_map(data, "tags"),
        )
        return {"experiment_id": experiment_id}

    @router.get("/experiments/by-name", summary="Get an experiment by its exact name")
    def get_experiment_by_name(name: str) -> dict[str, Any]:
        experiment = store.get_experiment_by_name(name)
        if experiment is None:
            raise NotFound(f"Could not find experiment with name '{name}'")
        return codec.encode_experiment(experiment)

    @router.get("/experiments/{experiment_id}", summary="Get an experiment")
    def get_experiment(experiment_id: str) -> dict[str, Any]:
        return codec.encode_experiment(store.get_experiment(experiment_id))

    @router.post("/experiments/search", summary="Search experiments")
    async def search_experiments(request: Request) -> dict[str, Any]:
        data = await json_body(request)
        page = await _call(
            store.search_experiments,
            _view(data, "view_type"),
            string(data, "filter"),
            string_list(data, "order_by"),
            integer(data, "max_results", default=1000),
            string(data, "page_token"),
        )
        return {
            "experiments": [codec.encode_experiment(e) for e in page.items],
            "next_page_token": page.next_page_token,
        }

    @router.patch("/experiments/{experiment_id}", summary="Rename an experiment")
    async def rename_experiment(experiment_id: str, request: Request) -> dict[str, Any]:
        data = await json_body(request)
        await _call(store.rename_experiment, experiment_id, string(data, "name", need=True))
        return {}

    @router.post("/experiments/{experiment_id}/delete", summary="Soft-delete an experiment and its runs")
    def delete_experiment(experiment_id: str) -> dict[str, Any]:
        store.delete_experiment(experiment_id)
        return {}

    @router.post("/experiments/{experiment_id}/restore", summary="Restore a deleted experiment")
    def restore_experiment(experiment_id: str) -> dict[str, Any]:
        store.restore_experiment(experiment_id)
        return {}

    @router.put("/experiments/{experiment_id}/tags/{key:path}", summary="Set an experiment tag")
    async def set_experiment_tag(experiment_id: str, key: str, request: Request) -> dict[str, Any]:
        data = await json_body(request)
        await _call(store.set_experiment_tag, experiment_id, key, string(data, "value", default=""))
        return {}

    @router.delete("/experiments/{experiment_id}/tags/{key:path}", summary="Delete an experiment tag")
    def delete_experiment_tag(experiment_id: str, key: str) -> dict[str, Any]:
        store.delete_experiment_tag(experiment_id, key)
        return {}


def _run_routes(router: APIRouter, service: TrackingService) -> None:
    store = service.store

    @router.post("/runs", summary="Start a run")
    async def create_run(request: Request) -> dict[str, Any]:
        data = await json_body(request)
        run = await _call(
            service.create_run_for_client,
            str(required(data, "experiment_id")),
            user_id=string(data, "user_id", default="") or "",
            start_time=integer(data, "start_time"),
            tags=string_map(data, "tags"),
            run_name=string(data, "run_name"),
        )
        return codec.encode_run(run)

    @router.post("/runs/search", summary="Search runs with the filter grammar (AND, OR, IN, LIKE, …)")
    async def search_runs(request: Request) -> dict[str, Any]:
        data = await json_body(request)
        page = await _call(
            store.search_runs,
            string_list(data, "experiment_ids"),
            string(data, "filter"),
            _view(data, "run_view_type"),
            integer(data, "max_results", default=1000),
            string_list(data, "order_by"),
            string(data, "page_token"),
        )
        return {"runs": [codec.encode_run(r) for r in page.items], "next_page_token": page.next_page_token}

    @router.post("/runs/count", summary="Count the runs a search would return")
    async def count_runs(request: Request) -> dict[str, int]:
        data = await json_body(request)
        count = await _call(
            store.count_runs,
            string_list(data, "experiment_ids"),
            string(data, "filter"),
            _view(data, "run_view_type"),
        )
        return {"count": count}

    @router.get("/runs/deleted", summary="Soft-deleted runs, for garbage collection")
    def deleted_runs(older_than: int | None = None) -> dict[str, list[str]]:
        return {"run_ids": store.deleted_run_ids(older_than)}

    @router.get("/runs/{run_id}", summary="Get a run with params, latest metrics, tags and inputs")
    def get_run(run_id: str) -> dict[str, Any]:
        return codec.encode_run(store.get_run(run_id))

    @router.patch("/runs/{run_id}", summary="Update a run's status, end time or name")
    async def update_run(run_id: str, request: Request) -> dict[str, Any]:
        data = await json_body(request)
        info = await _call(
            store.update_run_info,
            run_id,
            string(data, "status"),
            integer(data, "end_time"),
            string(data, "run_name"),
        )
        return codec.encode_run_info(info)

    @router.post("/runs/{run_id}/delete", summary="Soft-delete a run")
    def delete_run(run_id: str) -> dict[str, Any]:
        store.delete_run(run_id)
        return {}

    @router.post("/runs/{run_id}/restore", summary="Restore a soft-deleted run")
    def restore_run(run_id: str) -> dict[str, Any]:
        store.restore_run(run_id)
        return {}

    @router.delete("/runs/{run_id}", summary="Remove a soft-deleted run for good")
    def hard_delete_run(run_id: str) -> dict[str, Any]:
        store.hard_delete_run(run_id)
        return {}


def _logging_routes(router: APIRouter, service: TrackingService) -> None:
    store = service.store

    @router.post("/runs/{run_id}/batch", summary="Log metrics (columnar), params and tags atomically")
    async def log_batch(run_id: str, request: Request) -> dict[str, Any]:
        data = await json_body(request)
        params = [Param(k, v) for k, v in string_map(data, "params").items()]
        tags = [Tag(k, v) for k, v in string_map(data, "tags").items()]
        await _call(
            lambda: store.log_batch(run_id, codec.decode_metrics(data.get("metrics") or {}), params, tags)
        )
        return {}

    @router.post("/runs/{run_id}/metrics", summary="Log up to 100,000 metric points (columnar)")
    async def log_metrics(run_id: str, request: Request) -> dict[str, Any]:
        data = await json_body(request)
        # Decoding 100,000 points takes a while: do it off the event loop too.
        await _call(lambda: store.log_metrics(run_id, codec.decode_metrics(data.get("metrics") or {})))
        return {}

    @router.get("/runs/{run_id}/metrics/{key:path}", summary="A metric's history (columnar)")
    def metric_history(
        run_id: str, key: str, max_results: int | None = None, page_token: str | None = None
    ) -> dict[str, Any]:
        page = store.get_metric_history(run_id, key, max_results, page_token)
        return {"metrics": codec.encode_metrics(page.items), "next_page_token": page.next_page_token}

    @router.delete("/runs/{run_id}/tags/{key:path}", summary="Delete a run tag")
    def delete_tag(run_id: str, key: str) -> dict[str, Any]:
        store.delete_tag(run_id, key)
        return {}

    @router.post("/runs/{run_id}/inputs", summary="Record datasets the run consumed")
    async def log_inputs(run_id: str, request: Request) -> dict[str, Any]:
        data = await json_body(request)
        raw = data.get("inputs")
        if not isinstance(raw, list):
            raise InvalidInput("Missing value for required parameter 'inputs'")
        await _call(store.log_inputs, run_id, [codec.decode_dataset_input(i) for i in raw])
        return {}


def _artifact_index_routes(router: APIRouter, service: TrackingService) -> None:
    store = service.store

    @router.put("/artifact-index", summary="Record or replace an artifact index entry")
    async def record_artifact(request: Request) -> dict[str, Any]:
        record = codec.decode_artifact(await json_body(request))
        await _call(store.record_artifact, record)
        return {}

    @router.get("/artifact-index", summary="Index entries under a prefix, or one entry by exact path")
    def artifact_index(path: str | None = None, prefix: str | None = None) -> dict[str, Any]:
        if path is not None:
            record = store.get_artifact_record(path)
            return {"records": [] if record is None else [codec.encode_artifact(record)]}
        return {"records": [codec.encode_artifact(r) for r in store.list_artifact_records(prefix or "")]}

    @router.delete("/artifact-index", summary="Drop index entries of a file or folder")
    def delete_artifact_index(prefix: str) -> dict[str, int]:
        return {"deleted": store.delete_artifact_records(prefix)}


def _artifact_routes(router: APIRouter, service: TrackingService) -> None:
    @router.put("/runs/{run_id}/artifacts/{path:path}", summary="Upload one file into a run's artifacts")
    async def upload(run_id: str, path: str, request: Request) -> dict[str, Any]:
        record = await pipe_body(request, lambda chunks: service.log_artifact(run_id, path, chunks))
        return codec.encode_artifact(record)

    @router.get("/runs/{run_id}/artifacts/{path:path}", summary="Download a verified artifact")
    def download(run_id: str, path: str) -> Response:
        record, chunks = service.stream_artifact(service.run_artifact_path(run_id, path))
        media_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
        headers = {"Content-Length": str(record.size), "X-Content-SHA256": record.sha256}
        return StreamingResponse(chunks, media_type=media_type, headers=headers)

    @router.get("/runs/{run_id}/artifact-list", summary="List a folder of a run's artifacts")
    def list_artifacts(run_id: str, path: str = "") -> JSON:
        infos = service.list_artifacts(service.run_artifact_path(run_id, path))
        return JSON(
            {"files": [{"path": i.path, "is_dir": i.is_dir, "file_size": i.file_size} for i in infos]}
        )

    @router.post("/gc", summary="Remove soft-deleted runs and logged models, with their artifacts, for good")
    async def collect_garbage(request: Request) -> dict[str, list[str]]:
        data = await json_body(request)
        run_ids, model_ids = await _call(service.collect_garbage, integer(data, "older_than"))
        return {"run_ids": run_ids, "model_ids": model_ids}
