"""MLflow's experiment endpoints (``/mlflow/experiments/*``), translated to the tracking store."""

from __future__ import annotations

from fastapi import Request, Response

from conveyor.errors import ExperimentNotFound
from conveyor.server.mlflow_api.routing import Context, Endpoint, call
from conveyor.server.mlflow_api.wire import experiment_json, ok, read_fields

#: MLflow's default page size for experiment searches.
DEFAULT_MAX_RESULTS = 1000


def endpoints(ctx: Context) -> list[Endpoint]:
    store = ctx.service.store

    async def create_experiment(request: Request) -> Response:
        f = await read_fields(request)
        name = f.need_text("name")
        location = f.text("artifact_location") or None
        tags = dict(f.key_values("tags"))
        experiment_id = await call(store.create_experiment, name, location, tags)
        return ok({"experiment_id": experiment_id})

    async def get_experiment(request: Request) -> Response:
        f = await read_fields(request)
        experiment = await call(store.get_experiment, f.experiment_id())
        return ok({"experiment": experiment_json(experiment)})

    async def get_experiment_by_name(request: Request) -> Response:
        f = await read_fields(request)
        name = f.need_text("experiment_name")
        experiment = await call(store.get_experiment_by_name, name)
        if experiment is None:
            raise ExperimentNotFound(f"Could not find experiment with name '{name}'")
        return ok({"experiment": experiment_json(experiment)})

    async def search_experiments(request: Request) -> Response:
        f = await read_fields(request)
        page = await call(
            store.search_experiments,
            view_type=f.view_type("view_type"),
            filter_string=f.text("filter"),
            order_by=f.text_list("order_by"),
            max_results=f.integer_or("max_results", DEFAULT_MAX_RESULTS),
            page_token=f.text("page_token") or None,
        )
        payload: dict[str, object] = {"experiments": [experiment_json(e) for e in page.items]}
        if page.next_page_token:
            payload["next_page_token"] = page.next_page_token
        return ok(payload)

    async def update_experiment(request: Request) -> Response:
        f = await read_fields(request)
        experiment_id = f.experiment_id()
        new_name = f.text("new_name")
        if new_name:
            await call(store.rename_experiment, experiment_id, new_name)
        else:
            await call(store.get_experiment, experiment_id)
        return ok()

    async def delete_experiment(request: Request) -> Response:
        f = await read_fields(request)
        await call(store.delete_experiment, f.experiment_id())
        return ok()

    async def restore_experiment(request: Request) -> Response:
        f = await read_fields(request)
        await call(store.restore_experiment, f.experiment_id())
        return ok()

    async def set_experiment_tag(request: Request) -> Response:
        f = await read_fields(request)
        experiment_id = f.experiment_id()
        await call(store.set_experiment_tag, experiment_id, f.need_text("key"), f.present_text("value"))
        return ok()

    async def delete_experiment_tag(request: Request) -> Response:
        f = await read_fields(request)
        await call(store.delete_experiment_tag, f.experiment_id(), f.need_text("key"))
        return ok()

    search_fields = {
        "max_results": "integer",
        "page_token": "string",
        "filter": "string",
        "order_by": "string[]",
        "view_type": "string",
    }
    return [
        Endpoint(
            "POST",
            "/mlflow/experiments/create",
            create_experiment,
            "Create an experiment",
            {"name": "string", "artifact_location": "string", "tags": "object[]"},
        ),
        Endpoint(
            "GET",
            "/mlflow/experiments/get",
            get_experiment,
            "Get an experiment by id",
            {"experiment_id": "string"},
        ),
        Endpoint(
            "GET",
            "/mlflow/experiments/get-by-name",
            get_experiment_by_name,
            "Get an experiment by name",
            {"experiment_name": "string"},
        ),
        Endpoint(
            "POST", "/mlflow/experiments/search", search_experiments, "Search experiments", search_fields
        ),
        Endpoint(
            "GET", "/mlflow/experiments/search", search_experiments, "Search experiments", search_fields
        ),
        Endpoint(
            "POST",
            "/mlflow/experiments/update",
            update_experiment,
            "Rename an experiment",
            {"experiment_id": "string", "new_name": "string"},
        ),
        Endpoint(
            "POST",
            "/mlflow/experiments/delete",
            delete_experiment,
            "Soft-delete an experiment and its runs",
            {"experiment_id": "string"},
        ),
        Endpoint(
            "POST",
            "/mlflow/experiments/restore",
            restore_experiment,
            "Restore a deleted experiment",
            {"experiment_id": "string"},
        ),
        Endpoint(
            "POST",
            "/mlflow/experiments/set-experiment-tag",
            set_experiment_tag,
            "Set an experiment tag",
            {"experiment_id": "string", "key": "string", "value": "string"},
        ),
        Endpoint(
            "POST",
            "/mlflow/experiments/delete-experiment-tag",
            delete_experiment_tag,
            "Delete an experiment tag",
            {"experiment_id": "string", "key": "string"},
        ),
    ]
