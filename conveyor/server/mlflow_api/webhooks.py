"""MLflow's webhook endpoints (``/mlflow/webhooks``, ``webhooks.proto``) over Conveyor's webhooks.

The official client's ``create_webhook``, ``get_webhook``, ``list_webhooks``,
``update_webhook``, ``delete_webhook`` and ``test_webhook`` manage the same subscriptions
as ``conveyor registry webhooks``; deliveries keep Conveyor's body and signature
(``X-Conveyor-Signature``, docs/registry.md), as one webhook has one format.

Events: MLflow names them ``{entity, action}`` with closed proto enums, so only the
three Conveyor events MLflow has a name for travel through this API:

=====================================  ==========================
MLflow ``entity.action``               Conveyor event
=====================================  ==========================
``model_version.created``              ``model_version.created``
``model_version_alias.created``        ``alias.moved`` (set or moved, as MLflow fires it)
``model_version_alias.deleted``        ``alias.deleted``
=====================================  ==========================

Conveyor's approval events have no MLflow name: an unknown enum value would make the
client fail to parse the whole answer. So they are neither accepted nor shown here; an
update through this API keeps them on a webhook that has them, and a webhook with
nothing else cannot be shown (400 pointing to the CLI) and is left out of listings.
MLflow events Conveyor never sends (``registered_model.created``, tag and prompt
events) are refused rather than accepted and never fired.

Webhooks are server-wide: they receive every workspace's events, their URLs may name
any host, and testing one makes the server POST there. Managing them therefore needs
``admin`` in ``default`` (the server's administrators), checked here on top of the
edge's ``admin`` in the request's workspace.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from fastapi import Request, Response

from conveyor.errors import InvalidInput, PermissionDenied
from conveyor.identity import DEFAULT_WORKSPACE, Permission, require
from conveyor.registry.webhooks import EVENTS, Webhook, WebhookService, WebhookStatus
from conveyor.server.mlflow_api.registry_wire import actor
from conveyor.server.mlflow_api.routing import Context, Endpoint, call
from conveyor.server.mlflow_api.wire import Fields, invalid, missing, ok, read_fields

_PATH = "/mlflow/webhooks"
_ONE = f"{_PATH}/{{webhook_id}}"
#: MLflow's (entity, action), as proto enum names, of each Conveyor event it can name.
TO_MLFLOW = {
    "model_version.created": ("MODEL_VERSION", "CREATED"),
    "alias.moved": ("MODEL_VERSION_ALIAS", "CREATED"),
    "alias.deleted": ("MODEL_VERSION_ALIAS", "DELETED"),
}
_FROM_MLFLOW = {pair: event for event, pair in TO_MLFLOW.items()}
#: Conveyor events outside MLflow's enums: managed with ``conveyor registry webhooks`` only.
CONVEYOR_ONLY = tuple(event for event in EVENTS if event not in TO_MLFLOW)
#: ``webhooks.proto``'s enums, indexed by number (protobuf JSON may send either).
_ENTITIES = (
    "ENTITY_UNSPECIFIED",
    "REGISTERED_MODEL",
    "MODEL_VERSION",
    "MODEL_VERSION_TAG",
    "MODEL_VERSION_ALIAS",
    "PROMPT",
    "PROMPT_VERSION",
    "PROMPT_TAG",
    "PROMPT_VERSION_TAG",
    "PROMPT_ALIAS",
    "BUDGET_POLICY",
)
_ACTIONS = ("ACTION_UNSPECIFIED", "CREATED", "UPDATED", "DELETED", "SET", "EXCEEDED")
_STATUSES = ("STATUS_UNSPECIFIED", "ACTIVE", "DISABLED")
DEFAULT_MAX_RESULTS, MAX_RESULTS = 100, 1000
#: Checks that the caller may manage webhooks, then hands out the service.
ServiceFor = Callable[[Request], WebhookService]


def endpoints(ctx: Context) -> list[Endpoint]:
    """The webhook routes; each answers only a server administrator (see the module docstring)."""

    def hooks(request: Request) -> WebhookService:
        _require_server_admin(request)
        return WebhookService(ctx.model_registry().store)

    return _read_endpoints(hooks) + _write_endpoints(hooks)


def _read_endpoints(hooks: ServiceFor) -> list[Endpoint]:
    async def list_webhooks(request: Request) -> Response:
        service, f = hooks(request), await read_fields(request)
        limit = f.integer_or("max_results", DEFAULT_MAX_RESULTS) or DEFAULT_MAX_RESULTS
        if not 1 <= limit <= MAX_RESULTS:
            raise InvalidInput(f"max_results must be between 1 and {MAX_RESULTS}.")
        start = _offset(f.text("page_token"))
        shown = [w for w in await call(service.list_webhooks) if _mlflow_events(w.events)]
        shown.sort(key=lambda w: (-w.created, w.id))  # MLflow lists newest first
        page = shown[start : start + limit]
        payload: dict[str, Any] = {"webhooks": [_webhook_json(w) for w in page]}
        if start + limit < len(shown):
            payload["next_page_token"] = str(start + limit)
        return ok(payload)

    async def get_webhook(request: Request) -> Response:
        service = hooks(request)
        found = await call(service.get_by_id, request.path_params["webhook_id"])
        return ok({"webhook": _webhook_json(found)})

    return [
        Endpoint(
            "GET",
            _PATH,
            list_webhooks,
            "List webhooks, newest first (admin of default)",
            {"max_results": "integer", "page_token": "string"},
        ),
        Endpoint("GET", _ONE, get_webhook, "Get a webhook (admin of default)"),
    ]


def _write_endpoints(hooks: ServiceFor) -> list[Endpoint]:
    async def create_webhook(request: Request) -> Response:
        service, f = hooks(request), await read_fields(request)
        _refuse_description(f)
        secret = f.text("secret")
        if not secret:
            raise _missing_secret()
        created = await call(
            service.create,
            f.need_text("name"),
            f.need_text("url"),
            _parse_events(f),
            secret=secret,
            status=_status(f) or WebhookStatus.ACTIVE,
            actor=actor(request),
        )
        return ok({"webhook": _webhook_json(created)})

    async def update_webhook(request: Request) -> Response:
        service, f = hooks(request), await read_fields(request)
        _refuse_description(f)
        webhook_id = request.path_params["webhook_id"]
        current = await call(service.get_by_id, webhook_id)
        events = None
        if f.data.get("events"):
            # The Conveyor-only events were invisible to the caller: replacing keeps them.
            events = [*_parse_events(f), *(e for e in current.events if e in CONVEYOR_ONLY)]
        else:
            _webhook_json(current)  # refuse before changing a webhook this API cannot show
        updated = await call(
            service.update,
            webhook_id,
            name=f.text("name") or None,
            url=f.text("url") or None,
            events=events,
            secret=f.text("secret"),
            status=_status(f),
            actor=actor(request),
        )
        return ok({"webhook": _webhook_json(updated)})

    async def delete_webhook(request: Request) -> Response:
        service = hooks(request)
        found = await call(service.get_by_id, request.path_params["webhook_id"])
        await call(service.delete, found.name, actor=actor(request))
        return ok()

    async def test_webhook(request: Request) -> Response:
        service, f = hooks(request), await read_fields(request)
        found = await call(service.get_by_id, request.path_params["webhook_id"])
        event = _event(f.need_message("event"), "event") if f.data.get("event") else None
        status, error = await call(service.test, found.name, event=event)
        result: dict[str, Any] = {"success": error is None}
        if status is not None:
            result["response_status"] = status
        if error is not None:
            result["error_message"] = error
        return ok({"result": result})

    fields = {"name": "string", "url": "string", "events": "object[]", "secret": "string", "status": "string"}
    return [
        Endpoint(
            "POST",
            _PATH,
            create_webhook,
            "Create a webhook (admin of default; the secret is never returned)",
            fields,
        ),
        Endpoint(
            "PATCH",
            _ONE,
            update_webhook,
            "Change a webhook's name, URL, events, secret or status (admin of default)",
            fields,
        ),
        Endpoint("DELETE", _ONE, delete_webhook, "Delete a webhook and its deliveries (admin of default)"),
        Endpoint(
            "POST",
            f"{_ONE}/test",
            test_webhook,
            "POST a signed webhook.test event to the webhook's URL now (admin of default)",
            {"event": "object"},
        ),
    ]


# -- authorization ----------------------------------------------------------------------------


def _require_server_admin(request: Request) -> None:
    """Admin in ``default``, whatever workspace the request names; open when auth is off.

    Why not the request's workspace: a webhook receives every workspace's events, so a
    workspace admin could otherwise read other teams' registry through a URL of theirs.
    """
    context = getattr(request.state, "context", None)
    principal = getattr(context, "principal", None)
    if principal is None:
        return
    try:
        require(principal, Permission.ADMIN, DEFAULT_WORKSPACE)
    except PermissionDenied as exc:
        raise PermissionDenied(
            "Webhooks are server-wide (they receive every workspace's registry events), so "
            f"managing them needs admin in '{DEFAULT_WORKSPACE}'. {exc.message}"
        ) from None


# -- the wire format -------------------------------------------------------------------------


def _webhook_json(webhook: Webhook) -> dict[str, Any]:
    """A ``Webhook`` message: never the secret, and only the events MLflow can name.

    ``last_updated_timestamp`` is left out (the client reads 0): Conveyor keeps no such
    column, and the audit log (``registry.webhook.update``) holds every change instead.

    Raises:
        InvalidInput: the webhook subscribes to Conveyor-only events alone, which the
            client could not parse (an empty event list is an error there).
    """
    events = _mlflow_events(webhook.events)
    if not events:
        raise InvalidInput(
            f"Webhook {webhook.name!r} subscribes only to {', '.join(webhook.events)}, which MLflow's "
            "webhook API cannot name; read or change it with `conveyor registry webhooks`."
        )
    return {
        "webhook_id": webhook.id,
        "name": webhook.name,
        "url": webhook.url,
        "events": events,
        "status": webhook.status.value,
        "creation_timestamp": webhook.created,
    }


def _mlflow_events(events: Iterable[str]) -> list[dict[str, str]]:
    pairs = (TO_MLFLOW[e] for e in EVENTS if e in events and e in TO_MLFLOW)
    return [{"entity": entity, "action": action} for entity, action in pairs]


def _parse_events(f: Fields) -> list[str]:
    """``events``, MLflow's ``[{entity, action}]``, as Conveyor event names.

    Raises:
        InvalidInput: none given, a malformed item, or an event Conveyor does not send.
    """
    items = f.objects("events")
    if not items:
        raise InvalidInput(
            f"Missing value for required parameter 'events': a webhook needs at least one of {_supported()}."
        )
    return list(dict.fromkeys(_event(item) for item in items))


def _event(item: Fields, field: str = "events") -> str:
    entity = _enum(item, "entity", _ENTITIES, f"{field}.entity")
    action = _enum(item, "action", _ACTIONS, f"{field}.action")
    found = _FROM_MLFLOW.get((entity, action))
    if found is None:
        raise InvalidInput(
            f"Webhook event {entity.lower()}.{action.lower()} is not one Conveyor sends. Through "
            f"MLflow's API a webhook may subscribe to {_supported()}; Conveyor's "
            f"{', '.join(CONVEYOR_ONLY)} events need `conveyor registry webhooks create --event`."
        )
    return found


def _supported() -> str:
    return ", ".join(f"{entity.lower()}.{action.lower()}" for entity, action in TO_MLFLOW.values())


def _enum(f: Fields, name: str, names: tuple[str, ...], label: str | None = None) -> str:
    """A proto enum field by name (any case) or number; the unspecified value is refused.

    ``label`` is how messages name the field (``events.entity`` for a nested one).
    """
    label = label or name
    value = f.raw(name)
    if value is None:
        raise missing(label)
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < len(names):
        return names[value]
    if isinstance(value, str) and value.upper() in names[1:]:
        return value.upper()
    raise invalid(label, value, f"one of {', '.join(names[1:])}")


def _status(f: Fields) -> WebhookStatus | None:
    if f.raw("status") is None:
        return None
    return WebhookStatus(_enum(f, "status", _STATUSES))


def _refuse_description(f: Fields) -> None:
    """Conveyor webhooks have no description column; dropping one silently would lie."""
    if f.text("description"):
        raise InvalidInput(
            "Conveyor webhooks have no description: leave 'description' out and say what the "
            "webhook is for in its name."
        )


def _missing_secret() -> InvalidInput:
    return InvalidInput(
        "Missing value for required parameter 'secret': Conveyor signs every delivery, so a "
        "webhook needs a secret of at least 16 characters (returned by no API; keep it)."
    )


def _offset(token: str | None) -> int:
    if not token:
        return 0
    if not token.isdigit():
        raise InvalidInput(f"Invalid page_token {token!r}: pass back the next_page_token of a listing.")
    return int(token)
