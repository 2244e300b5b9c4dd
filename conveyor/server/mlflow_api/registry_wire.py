"""The model registry's MLflow wire format (``model_registry.proto``), shared by its routes.

Two quirks of the proto that clients rely on: a version number is a *string*
(``"version": "3"``, also inside ``aliases``), because protobuf's JSON parser refuses a
number for a string field; timestamps are int64 and go out as JSON numbers. Empty
optional fields are left out, as protobuf's serializer does.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import Request

from conveyor.errors import InvalidInput
from conveyor.server.mlflow_api.wire import Fields, key_value_list, missing
from conveyor.store.sql.registry_entities import ModelVersion, RegisteredModel

#: Request fields of both searches, for the OpenAPI document.
SEARCH_FIELDS = {"filter": "string", "max_results": "integer", "order_by": "string[]", "page_token": "string"}
#: A version registered from an MLflow 3 logged model keeps its id in the source.
_LOGGED_MODEL_SOURCE = re.compile(r"^models:/(?P<id>m-[0-9a-f]{32})/?$")


def version_field(f: Fields, name: str = "version") -> str:
    """A required version number: a digit string on the wire, a JSON integer accepted too."""
    value = f.raw(name)
    if value is None or value == "":
        raise missing(name)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidInput(
            f"Invalid value {value!r} for parameter '{name}' supplied: expected a version number."
        )
    return str(value)


def actor(request: Request) -> str | None:
    """The signed-in principal's name, or None (the service then records its own default).

    Only set when the server runs with ``--auth``: the auth middleware leaves the
    request's context in ``request.state.context``.
    """
    context = getattr(request.state, "context", None)
    principal = getattr(context, "principal", None)
    return None if principal is None else str(principal.name)


def _optional(payload: dict[str, Any], **values: object) -> dict[str, Any]:
    payload.update({key: value for key, value in values.items() if value is not None})
    return payload


def model_version_json(version: ModelVersion) -> dict[str, Any]:
    """A ``ModelVersion`` message; ``model_id`` is filled for versions of logged models."""
    match = _LOGGED_MODEL_SOURCE.match(version.source)
    payload: dict[str, Any] = {
        "name": version.name,
        "version": str(version.version),
        "creation_timestamp": version.creation_time,
        "last_updated_timestamp": version.last_updated_time,
        "current_stage": version.current_stage.value,
        "source": version.source,
        "status": version.status.value,
        "tags": key_value_list(version.tags),
        "aliases": list(version.aliases),
    }
    return _optional(
        payload,
        user_id=version.created_by,
        description=version.description,
        run_id=version.run_id,
        run_link=version.run_link,
        status_message=version.status_message,
        model_id=match["id"] if match else None,
    )


def registered_model_json(model: RegisteredModel) -> dict[str, Any]:
    """A ``RegisteredModel`` message, with its aliases and newest version per stage."""
    payload: dict[str, Any] = {
        "name": model.name,
        "creation_timestamp": model.creation_time,
        "last_updated_timestamp": model.last_updated_time,
        "latest_versions": [model_version_json(v) for v in model.latest_versions],
        "tags": key_value_list(model.tags),
        "aliases": [{"alias": alias, "version": str(number)} for alias, number in model.aliases.items()],
    }
    return _optional(payload, user_id=model.owner, description=model.description)
