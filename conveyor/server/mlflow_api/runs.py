"""MLflow's run lifecycle endpoints: create, get, update, delete, restore and search."""

from __future__ import annotations

from fastapi import Request, Response

from conveyor.errors import InvalidInput
from conveyor.server.mlflow_api.routing import Context, Endpoint, call
from conveyor.server.mlflow_api.wire import Fields, ok, read_fields, run_info_json, run_json
from conveyor.store.base import DEFAULT_EXPERIMENT_ID
from conveyor.store.entities import Run, RunStatus

#: MLflow's default page size for run searches (the store caps it at 50,000).
DEFAULT_MAX_RESULTS = 1000
#: Enum numbers of ``RunStatus`` in MLflow's proto, for clients that send numbers.
_STATUS_NUMBERS = {"1": "RUNNING", "2": "SCHEDULED", "3": "FINISHED", "4": "FAILED", "5": "KILLED"}


def _status(f: Fields) -> RunStatus | None:
    value = f.raw("status")
    if value is None or value == "":
        return None
    text = _STATUS_NUMBERS.get(str(value), str(value))
    try:
        return RunStatus(text)
    except ValueError:
        allowed = ", ".join(s.value for s in RunStatus)
        raise InvalidInput(
            f"Invalid value {value!r} for parameter 'status' supplied: use one of {allowed}."
        ) from None


def endpoints(ctx: Context) -> list[Endpoint]:
    store = ctx.service.store

    def with_outputs(runs: list[Run]) -> list[dict[str, object]]:
        """Runs as JSON, each with the logged models it output (one query for all of them)."""
        outputs = ctx.models.outputs_for_runs([r.info.run_id for r in runs]) if ctx.models and runs else {}
        return [run_json(r, outputs.get(r.info.run_id, ())) for r in runs]

    async def create_run(request: Request) -> Response:
        f = await read_fields(request)
        experiment_id = f.experiment_id() if f.raw("experiment_id") is not None else DEFAULT_EXPERIMENT_ID
        run = await call(
            ctx.service.create_run_for_client,
            experiment_id,
            user_id=f.text("user_id", default=""),
            start_time=f.integer("start_time"),
            tags=dict(f.key_values("tags")),
            run_name=f.text("run_name") or None,
        )
        return ok({"run": run_json(run)})

    async def get_run(request: Request) -> Response:
        f = await read_fields(request)
        runs = await call(lambda run_id: with_outputs([store.get_run(run_id)]), f.run_id())
        return ok({"run": runs[0]})

    async def update_run(request: Request) -> Response:
        f = await read_fields(request)
        info = await call(
            store.update_run_info,
            f.run_id(),
            status=_status(f),
            end_time=f.integer("end_time"),
            run_name=f.text("run_name") or None,
        )
        return ok({"run_info": run_info_json(info)})

    async def delete_run(request: Request) -> Response:
        f = await read_fields(request)
        await call(store.delete_run, f.run_id())
        return ok()

    async def restore_run(request: Request) -> Response:
        f = await read_fields(request)
        await call(store.restore_run, f.run_id())
        return ok()

    async def search_runs(request: Request) -> Response:
        f = await read_fields(request)
        experiment_ids = f.text_list("experiment_ids")
        filter_string = f.text("filter")
        view_type = f.view_type("run_view_type")
        max_results = f.integer_or("max_results", DEFAULT_MAX_RESULTS)
        order_by = f.text_list("order_by")
        page_token = f.text("page_token") or None

        def search() -> dict[str, object]:
            page = store.search_runs(
                experiment_ids, filter_string, view_type, max_results, order_by, page_token
            )
            payload: dict[str, object] = {"runs": with_outputs(page.items)}
            if page.next_page_token:
                payload["next_page_token"] = page.next_page_token
            return payload

        return ok(await call(search))

    run_only = {"run_id": "string"}
    return [
        Endpoint(
            "POST",
            "/mlflow/runs/create",
            create_run,
            "Create a run",
            {
                "experiment_id": "string",
                "user_id": "string",
                "run_name": "string",
                "start_time": "integer",
                "tags": "object[]",
            },
        ),
        Endpoint("GET", "/mlflow/runs/get", get_run, "Get a run with its data, inputs and outputs", run_only),
        Endpoint(
            "POST",
            "/mlflow/runs/update",
            update_run,
            "Update a run's status, end time or name",
            {"run_id": "string", "status": "string", "end_time": "integer", "run_name": "string"},
        ),
        Endpoint("POST", "/mlflow/runs/delete", delete_run, "Soft-delete a run", run_only),
        Endpoint("POST", "/mlflow/runs/restore", restore_run, "Restore a deleted run", run_only),
        Endpoint(
            "POST",
            "/mlflow/runs/search",
            search_runs,
            "Search runs with a filter, order and paging",
            {
                "experiment_ids": "string[]",
                "filter": "string",
                "run_view_type": "string",
                "max_results": "integer",
                "order_by": "string[]",
                "page_token": "string",
            },
        ),
    ]
