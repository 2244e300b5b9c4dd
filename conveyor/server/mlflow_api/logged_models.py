"""MLflow 3 logged-model endpoints (``/mlflow/logged-models``), used by every ``log_model`` call.

The client's sequence: create (PENDING) → ``runs/outputs`` → upload the files to the
model's ``mlflow-artifacts:`` location → finalize (PATCH, READY). Loading
``runs:/<run>/<name>`` searches the run's experiment for ``name = '<name>'`` and picks
the model whose ``source_run_id`` is the run; ``models:/<model_id>`` gets it by id.
"""

from __future__ import annotations

import posixpath
from typing import Any

from fastapi import Request, Response

from conveyor.errors import InvalidInput
from conveyor.server.mlflow_api.routing import Context, Endpoint, call
from conveyor.server.mlflow_api.wire import Fields, artifact_path, key_value_list, ok, read_fields
from conveyor.store.base import MANAGED_ARTIFACT_SCHEME
from conveyor.store.sql.logged_models import (
    ORDER_FIELDS,
    LoggedModel,
    LoggedModelStatus,
    OrderField,
    parse_status,
)

WIRE_STATUS = {
    LoggedModelStatus.PENDING: "LOGGED_MODEL_PENDING",
    LoggedModelStatus.READY: "LOGGED_MODEL_READY",
    LoggedModelStatus.FAILED: "LOGGED_MODEL_UPLOAD_FAILED",
}
#: Enum numbers of ``LoggedModelStatus`` in MLflow's proto, for clients that send numbers.
_STATUS_NUMBERS = {"1": "LOGGED_MODEL_PENDING", "2": "LOGGED_MODEL_READY", "3": "LOGGED_MODEL_UPLOAD_FAILED"}
_ATTRIBUTE_PREFIXES = ("attributes.", "attribute.", "attr.")


def model_json(model: LoggedModel) -> dict[str, Any]:
    info: dict[str, Any] = {
        "model_id": model.model_id,
        "experiment_id": model.experiment_id,
        "name": model.name,
        "creation_timestamp_ms": model.creation_time,
        "last_updated_timestamp_ms": model.last_updated_time,
        "artifact_uri": model.artifact_location,
        "status": WIRE_STATUS[model.status],
        "tags": key_value_list(model.tags),
        "registrations": [],
    }
    if model.model_type is not None:
        info["model_type"] = model.model_type
    if model.source_run_id is not None:
        info["source_run_id"] = model.source_run_id
    return {"info": info, "data": {"params": key_value_list(model.params), "metrics": []}}


def _status(f: Fields) -> LoggedModelStatus:
    value = f.raw("status")
    if value is None or value == "":
        raise InvalidInput("Missing value for required parameter 'status'.")
    return parse_status(_STATUS_NUMBERS.get(str(value), str(value)))


def _order_by(items: list[Fields]) -> list[OrderField]:
    fields = []
    for item in items:
        name = item.need_text("field_name")
        for prefix in _ATTRIBUTE_PREFIXES:
            name = name.removeprefix(prefix)
        if name.startswith(("metrics.", "metric.")):
            raise InvalidInput(f"Ordering logged models by metrics is not supported yet: {name!r}.")
        if name not in ORDER_FIELDS:
            raise InvalidInput(f"Invalid order_by field_name {name!r}: use one of {', '.join(ORDER_FIELDS)}.")
        fields.append(OrderField(name, item.boolean("ascending", default=True)))
    return fields


def _model_root(model: LoggedModel) -> str:
    location = model.artifact_location
    if not location.startswith(MANAGED_ARTIFACT_SCHEME):
        raise InvalidInput(
            f"Logged model {model.model_id} stores its artifacts at {location!r}, outside this "
            "server's artifact root; list them there directly."
        )
    return location[len(MANAGED_ARTIFACT_SCHEME) :].strip("/")


def endpoints(ctx: Context) -> list[Endpoint]:
    service = ctx.service

    async def create_logged_model(request: Request) -> Response:
        f = await read_fields(request)
        model = await call(
            ctx.logged_models().create,
            f.experiment_id(),
            name=f.text("name") or None,
            model_type=f.text("model_type") or None,
            source_run_id=f.text("source_run_id") or None,
            params=dict(f.key_values("params")),
            tags=dict(f.key_values("tags")),
        )
        return ok({"model": model_json(model)})

    async def get_logged_model(request: Request) -> Response:
        f = await read_fields(request)
        allow_deleted = f.boolean("allow_deleted")
        model = await call(
            ctx.logged_models().get, request.path_params["model_id"], allow_deleted=allow_deleted
        )
        return ok({"model": model_json(model)})

    async def finalize_logged_model(request: Request) -> Response:
        f = await read_fields(request)
        model = await call(ctx.logged_models().finalize, request.path_params["model_id"], _status(f))
        return ok({"model": model_json(model)})

    async def delete_logged_model(request: Request) -> Response:
        await call(ctx.logged_models().delete, request.path_params["model_id"])
        return ok()

    async def search_logged_models(request: Request) -> Response:
        f = await read_fields(request)
        page = await call(
            ctx.logged_models().search,
            f.text_list("experiment_ids"),
            filter_string=f.text("filter"),
            order_by=_order_by(f.objects("order_by")),
            max_results=f.integer("max_results"),
            page_token=f.text("page_token") or None,
        )
        payload: dict[str, object] = {"models": [model_json(m) for m in page.items]}
        if page.next_page_token:
            payload["next_page_token"] = page.next_page_token
        return ok(payload)

    def set_tags_and_get(model_id: str, tags: dict[str, str]) -> LoggedModel:
        ctx.logged_models().set_tags(model_id, tags)
        return ctx.logged_models().get(model_id)

    async def set_logged_model_tags(request: Request) -> Response:
        f = await read_fields(request)
        model = await call(set_tags_and_get, request.path_params["model_id"], dict(f.key_values("tags")))
        return ok({"model": model_json(model)})

    async def delete_logged_model_tag(request: Request) -> Response:
        params = request.path_params
        await call(ctx.logged_models().delete_tag, params["model_id"], params["tag_key"])
        return ok()

    async def log_logged_model_params(request: Request) -> Response:
        f = await read_fields(request)
        params = dict(f.key_values("params"))
        await call(ctx.logged_models().log_params, request.path_params["model_id"], params)
        return ok()

    def list_model_artifacts(model_id: str, path: str) -> dict[str, object]:
        model = ctx.logged_models().get(model_id)
        root = _model_root(model)
        files = service.list_artifacts(posixpath.join(root, path) if path else root)
        listed = [
            {"path": posixpath.join(path, i.path) if path else i.path, "is_dir": i.is_dir}
            | ({} if i.file_size is None else {"file_size": i.file_size})
            for i in files
        ]
        return {"root_uri": model.artifact_location, "files": listed}

    async def list_logged_model_artifacts(request: Request) -> Response:
        f = await read_fields(request)
        path = f.text("artifact_directory_path") or ""
        if path:
            path = artifact_path(path)
        return ok(await call(list_model_artifacts, request.path_params["model_id"], path))

    one = "/mlflow/logged-models/{model_id}"
    return [
        Endpoint(
            "POST",
            "/mlflow/logged-models",
            create_logged_model,
            "Create a logged model (PENDING until finalized)",
            {
                "experiment_id": "string",
                "name": "string",
                "model_type": "string",
                "source_run_id": "string",
                "params": "object[]",
                "tags": "object[]",
            },
        ),
        Endpoint(
            "POST",
            "/mlflow/logged-models/search",
            search_logged_models,
            "Search logged models of experiments",
            {
                "experiment_ids": "string[]",
                "filter": "string",
                "order_by": "object[]",
                "max_results": "integer",
                "page_token": "string",
            },
        ),
        Endpoint("GET", one, get_logged_model, "Get a logged model", {"allow_deleted": "boolean"}),
        Endpoint(
            "PATCH",
            one,
            finalize_logged_model,
            "Finalize a logged model (READY or UPLOAD_FAILED)",
            {"model_id": "string", "status": "string"},
        ),
        Endpoint("DELETE", one, delete_logged_model, "Soft-delete a logged model"),
        Endpoint(
            "PATCH", one + "/tags", set_logged_model_tags, "Set logged model tags", {"tags": "object[]"}
        ),
        Endpoint(
            "DELETE", one + "/tags/{tag_key:path}", delete_logged_model_tag, "Delete a logged model tag"
        ),
        Endpoint(
            "POST",
            one + "/params",
            log_logged_model_params,
            "Log logged model params",
            {"model_id": "string", "params": "object[]"},
        ),
        Endpoint(
            "GET",
            one + "/artifacts/directories",
            list_logged_model_artifacts,
            "List a logged model's artifacts under a folder",
            {"artifact_directory_path": "string", "page_token": "string"},
        ),
    ]
