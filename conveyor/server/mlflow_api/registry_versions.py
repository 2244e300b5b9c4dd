"""MLflow's model-version endpoints (``/mlflow/model-versions/*``).

``create`` is what ``mlflow.register_model`` ends in. MLflow 3 clients send the logged
model as the source (``models:/m-<id>``, with ``model_id`` and the run id); older ones a
run artifact folder (``mlflow-artifacts:/…``) or ``runs:/<run>/<path>``. The service
fetches and verifies the files before recording the version, so the answer is ``READY``
at once and the client's wait for registration ends on its first poll. Local paths are
refused: the server must never read its own disk because a request asked it to.
"""

from __future__ import annotations

from fastapi import Request, Response

from conveyor.errors import InvalidInput
from conveyor.server.mlflow_api.registry_wire import SEARCH_FIELDS, actor, model_version_json, version_field
from conveyor.server.mlflow_api.routing import Context, Endpoint, call
from conveyor.server.mlflow_api.wire import Fields, ok, read_fields
from conveyor.store.sql.registry_entities import DEFAULT_VERSION_RESULTS

_PATH = "/mlflow/model-versions"
_NAME_VERSION = {"name": "string", "version": "string"}


def _source(f: Fields) -> str:
    """The source to register; a logged model named only by ``model_id`` is its ``models:/`` URI."""
    source = f.text("source") or ""
    model_id = f.text("model_id") or ""
    if not source and model_id:
        return f"models:/{model_id}"
    if not source:
        raise InvalidInput("Missing value for required parameter 'source'.")
    return source


def endpoints(ctx: Context) -> list[Endpoint]:
    """Create, read, search and change model versions, bound to ``ctx``'s registry."""
    return _read_write_endpoints(ctx) + _tag_and_stage_endpoints(ctx)


def _read_write_endpoints(ctx: Context) -> list[Endpoint]:
    async def create_model_version(request: Request) -> Response:
        f = await read_fields(request)
        created = await call(
            ctx.model_registry().create_version,
            f.need_text("name"),
            _source(f),
            run_id=f.text("run_id") or None,
            run_link=f.text("run_link") or None,
            description=f.text("description") or None,
            tags=dict(f.key_values("tags")),
            actor=actor(request),
        )
        return ok({"model_version": model_version_json(created)})

    async def get_model_version(request: Request) -> Response:
        f = await read_fields(request)
        found = await call(ctx.model_registry().get_version, f.need_text("name"), version_field(f))
        return ok({"model_version": model_version_json(found)})

    async def update_model_version(request: Request) -> Response:
        f = await read_fields(request)
        updated = await call(
            ctx.model_registry().update_version,
            f.need_text("name"),
            version_field(f),
            f.text("description"),
            actor=actor(request),
        )
        return ok({"model_version": model_version_json(updated)})

    async def delete_model_version(request: Request) -> Response:
        f = await read_fields(request)
        registry = ctx.model_registry()
        await call(registry.delete_version, f.need_text("name"), version_field(f), actor=actor(request))
        return ok()

    async def search_model_versions(request: Request) -> Response:
        f = await read_fields(request)
        page = await call(
            ctx.model_registry().search_versions,
            f.text("filter") or None,
            max_results=f.integer_or("max_results", DEFAULT_VERSION_RESULTS),
            order_by=f.text_list("order_by"),
            page_token=f.text("page_token") or None,
        )
        payload: dict[str, object] = {"model_versions": [model_version_json(v) for v in page.items]}
        if page.next_page_token:
            payload["next_page_token"] = page.next_page_token
        return ok(payload)

    async def get_model_version_download_uri(request: Request) -> Response:
        f = await read_fields(request)
        uri = await call(ctx.model_registry().download_uri, f.need_text("name"), version_field(f))
        return ok({"artifact_uri": uri})

    return [
        Endpoint(
            "POST",
            f"{_PATH}/create",
            create_model_version,
            "Register a model version (files verified, READY on return)",
            {
                "name": "string",
                "source": "string",
                "run_id": "string",
                "tags": "object[]",
                "run_link": "string",
                "description": "string",
                "model_id": "string",
            },
        ),
        Endpoint("GET", f"{_PATH}/get", get_model_version, "Get a model version", _NAME_VERSION),
        Endpoint(
            "PATCH",
            f"{_PATH}/update",
            update_model_version,
            "Update a model version's description",
            {**_NAME_VERSION, "description": "string"},
        ),
        Endpoint(
            "DELETE",
            f"{_PATH}/delete",
            delete_model_version,
            "Delete a model version (its number is never reused)",
            _NAME_VERSION,
        ),
        Endpoint("GET", f"{_PATH}/search", search_model_versions, "Search model versions", SEARCH_FIELDS),
        Endpoint("POST", f"{_PATH}/search", search_model_versions, "Search model versions", SEARCH_FIELDS),
        Endpoint(
            "GET",
            f"{_PATH}/get-download-uri",
            get_model_version_download_uri,
            "Where a model version's files can be downloaded",
            _NAME_VERSION,
        ),
    ]


def _tag_and_stage_endpoints(ctx: Context) -> list[Endpoint]:
    async def set_model_version_tag(request: Request) -> Response:
        f = await read_fields(request)
        await call(
            ctx.model_registry().set_version_tag,
            f.need_text("name"),
            version_field(f),
            f.need_text("key"),
            f.present_text("value"),
            actor=actor(request),
        )
        return ok()

    async def delete_model_version_tag(request: Request) -> Response:
        f = await read_fields(request)
        await call(
            ctx.model_registry().delete_version_tag,
            f.need_text("name"),
            version_field(f),
            f.need_text("key"),
            actor=actor(request),
        )
        return ok()

    async def transition_model_version_stage(request: Request) -> Response:
        f = await read_fields(request)
        moved = await call(
            ctx.model_registry().transition_stage,
            f.need_text("name"),
            version_field(f),
            f.need_text("stage"),
            archive_existing=f.boolean("archive_existing_versions"),
            actor=actor(request),
        )
        return ok({"model_version": model_version_json(moved)})

    return [
        Endpoint(
            "POST",
            f"{_PATH}/set-tag",
            set_model_version_tag,
            "Set a model version tag",
            {**_NAME_VERSION, "key": "string", "value": "string"},
        ),
        Endpoint(
            "DELETE",
            f"{_PATH}/delete-tag",
            delete_model_version_tag,
            "Delete a model version tag",
            {**_NAME_VERSION, "key": "string"},
        ),
        Endpoint(
            "POST",
            f"{_PATH}/transition-stage",
            transition_model_version_stage,
            "Move a version to an MLflow stage (deprecated; prefer aliases)",
            {**_NAME_VERSION, "stage": "string", "archive_existing_versions": "boolean"},
        ),
    ]
