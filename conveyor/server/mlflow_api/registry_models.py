"""MLflow's registered-model endpoints (``/mlflow/registered-models/*``), aliases included.

Each handler reads MLflow's request fields and calls :class:`~conveyor.registry.RegistryService`;
the service validates, so a reserved alias (``latest``, ``v<n>``), a taken name or a
missing model comes back with MLflow's error code and status. Deletes carry their fields
in a JSON body, as MLflow's client sends them. Alias moves made here are recorded in the
alias history like any other; a protected alias refuses the move (``PERMISSION_DENIED``)
when its guard says so.
"""

from __future__ import annotations

from fastapi import Request, Response

from conveyor.server.mlflow_api.registry_wire import (
    SEARCH_FIELDS,
    actor,
    model_version_json,
    registered_model_json,
    version_field,
)
from conveyor.server.mlflow_api.routing import Context, Endpoint, call
from conveyor.server.mlflow_api.wire import ok, read_fields
from conveyor.store.sql.registry_entities import DEFAULT_MODEL_RESULTS

_PATH = "/mlflow/registered-models"


def endpoints(ctx: Context) -> list[Endpoint]:
    """The registered-model routes, then the alias routes, bound to ``ctx``'s registry."""
    return _model_endpoints(ctx) + _alias_endpoints(ctx)


def _model_endpoints(ctx: Context) -> list[Endpoint]:
    async def create_registered_model(request: Request) -> Response:
        f = await read_fields(request)
        model = await call(
            ctx.model_registry().create_model,
            f.need_text("name"),
            description=f.text("description"),
            tags=dict(f.key_values("tags")),
            actor=actor(request),
        )
        return ok({"registered_model": registered_model_json(model)})

    async def get_registered_model(request: Request) -> Response:
        f = await read_fields(request)
        model = await call(ctx.model_registry().get_model, f.need_text("name"))
        return ok({"registered_model": registered_model_json(model)})

    async def rename_registered_model(request: Request) -> Response:
        f = await read_fields(request)
        registry = ctx.model_registry()
        model = await call(
            registry.rename_model, f.need_text("name"), f.need_text("new_name"), actor=actor(request)
        )
        return ok({"registered_model": registered_model_json(model)})

    async def update_registered_model(request: Request) -> Response:
        f = await read_fields(request)
        registry = ctx.model_registry()
        model = await call(
            registry.update_model, f.need_text("name"), f.text("description"), actor=actor(request)
        )
        return ok({"registered_model": registered_model_json(model)})

    async def delete_registered_model(request: Request) -> Response:
        f = await read_fields(request)
        await call(ctx.model_registry().delete_model, f.need_text("name"), actor=actor(request))
        return ok()

    async def search_registered_models(request: Request) -> Response:
        f = await read_fields(request)
        page = await call(
            ctx.model_registry().search_models,
            f.text("filter") or None,
            max_results=f.integer_or("max_results", DEFAULT_MODEL_RESULTS),
            order_by=f.text_list("order_by"),
            page_token=f.text("page_token") or None,
        )
        payload: dict[str, object] = {"registered_models": [registered_model_json(m) for m in page.items]}
        if page.next_page_token:
            payload["next_page_token"] = page.next_page_token
        return ok(payload)

    async def get_latest_versions(request: Request) -> Response:
        f = await read_fields(request)
        found = await call(ctx.model_registry().latest_versions, f.need_text("name"), f.text_list("stages"))
        return ok({"model_versions": [model_version_json(v) for v in found]})

    async def set_registered_model_tag(request: Request) -> Response:
        f = await read_fields(request)
        await call(
            ctx.model_registry().set_model_tag,
            f.need_text("name"),
            f.need_text("key"),
            f.present_text("value"),
            actor=actor(request),
        )
        return ok()

    async def delete_registered_model_tag(request: Request) -> Response:
        f = await read_fields(request)
        registry = ctx.model_registry()
        await call(registry.delete_model_tag, f.need_text("name"), f.need_text("key"), actor=actor(request))
        return ok()

    name_only = {"name": "string"}
    return [
        Endpoint(
            "POST",
            f"{_PATH}/create",
            create_registered_model,
            "Create a registered model",
            {"name": "string", "tags": "object[]", "description": "string"},
        ),
        Endpoint("GET", f"{_PATH}/get", get_registered_model, "Get a registered model", name_only),
        Endpoint(
            "POST",
            f"{_PATH}/rename",
            rename_registered_model,
            "Rename a registered model",
            {"name": "string", "new_name": "string"},
        ),
        Endpoint(
            "PATCH",
            f"{_PATH}/update",
            update_registered_model,
            "Update a registered model's description",
            {"name": "string", "description": "string"},
        ),
        Endpoint(
            "DELETE",
            f"{_PATH}/delete",
            delete_registered_model,
            "Delete a registered model and its versions (alias history is kept)",
            name_only,
        ),
        Endpoint(
            "GET", f"{_PATH}/search", search_registered_models, "Search registered models", SEARCH_FIELDS
        ),
        Endpoint(
            "POST", f"{_PATH}/search", search_registered_models, "Search registered models", SEARCH_FIELDS
        ),
        *(
            Endpoint(
                method,
                f"{_PATH}/get-latest-versions",
                get_latest_versions,
                "Newest version per stage (deprecated with stages)",
                {"name": "string", "stages": "string[]"},
            )
            for method in ("POST", "GET")
        ),
        Endpoint(
            "POST",
            f"{_PATH}/set-tag",
            set_registered_model_tag,
            "Set a registered model tag",
            {"name": "string", "key": "string", "value": "string"},
        ),
        Endpoint(
            "DELETE",
            f"{_PATH}/delete-tag",
            delete_registered_model_tag,
            "Delete a registered model tag",
            {"name": "string", "key": "string"},
        ),
    ]


def _alias_endpoints(ctx: Context) -> list[Endpoint]:
    async def set_registered_model_alias(request: Request) -> Response:
        f = await read_fields(request)
        await call(
            ctx.model_registry().set_alias,
            f.need_text("name"),
            f.need_text("alias"),
            version_field(f),
            actor=actor(request),
        )
        return ok()

    async def delete_registered_model_alias(request: Request) -> Response:
        f = await read_fields(request)
        registry = ctx.model_registry()
        await call(registry.delete_alias, f.need_text("name"), f.need_text("alias"), actor=actor(request))
        return ok()

    async def get_model_version_by_alias(request: Request) -> Response:
        f = await read_fields(request)
        registry = ctx.model_registry()
        found = await call(registry.get_version_by_alias, f.need_text("name"), f.need_text("alias"))
        return ok({"model_version": model_version_json(found)})

    name_alias = {"name": "string", "alias": "string"}
    return [
        Endpoint(
            "POST",
            f"{_PATH}/alias",
            set_registered_model_alias,
            "Point an alias at a version (recorded in the alias history)",
            {**name_alias, "version": "string"},
        ),
        Endpoint("DELETE", f"{_PATH}/alias", delete_registered_model_alias, "Remove an alias", name_alias),
        Endpoint(
            "GET", f"{_PATH}/alias", get_model_version_by_alias, "Get the version an alias names", name_alias
        ),
    ]
