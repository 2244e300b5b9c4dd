"""``/api/conveyor/v1/registry/models/{name}/versions/{version}/card``: model cards over HTTP.

- ``GET …/card`` builds the card afresh from the platform's records, without storing it:
  JSON (``ModelCard.to_dict()``), or ``?format=markdown`` / ``?format=html``.
- ``PATCH …/card`` sets the editable fields given (an empty string clears one), then
  stores a new card, as ``conveyor registry card --set`` does; it needs ``write``.
- ``GET …/card/history`` lists the stored cards; ``…/history/{number}`` returns one's
  exact bytes, checked against the SHA-256 recorded when it was saved.

Card fields are user-editable and the HTML is meant to be opened in a browser, so text
answers carry a Content-Security-Policy that forbids scripts, fetches, forms and framing
and sandboxes the page, plus ``nosniff``: the renderer escapes every text, and this
would still hold if an escape were missed. Workspaces need nothing here: the store
answers "not found" for another workspace's models.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from conveyor.errors import InvalidInput
from conveyor.registry import RegistryService
from conveyor.registry.card_files import FORMATS, card_history, read_stored_card, render_card
from conveyor.registry.cards import EDITABLE_FIELDS, build_card, update_card
from conveyor.server.mlflow_api.registry_wire import actor
from conveyor.server.requests import json_body
from conveyor.server.responses import JSON

CARDS_PREFIX = "/api/conveyor/v1/registry/models"
#: Stricter than the page's own meta policy: no base, form, frame or same-origin powers either.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'; sandbox"
)
_MEDIA_TYPES = {"markdown": "text/markdown", "html": "text/html"}
_CARD = "/{name}/versions/{version}/card"
_FORMAT_HELP = "json, markdown or html"


def build_router(registry: RegistryService) -> APIRouter:
    """The card routes, bound to one registry (whose store also holds the source runs)."""
    router = APIRouter(prefix=CARDS_PREFIX, tags=["conveyor: model cards"])

    @router.get(_CARD, summary="The version's model card, built now from the platform's records")
    async def get_card(
        name: str, version: str, fmt: str = Query("json", alias="format", description=_FORMAT_HELP)
    ) -> Response:
        if fmt not in ("json", *FORMATS):
            raise InvalidInput(f"Unknown model card format {fmt!r}: use {_FORMAT_HELP}")
        card = await run_in_threadpool(build_card, registry, registry.store, name, version)
        if fmt == "json":
            return JSON(card.to_dict())
        return _text(render_card(card, fmt), fmt)

    @router.patch(_CARD, summary="Set editable fields and store a new card (needs write)")
    async def patch_card(name: str, version: str, request: Request) -> dict[str, Any]:
        fields = _editable_fields(await json_body(request))
        saved = await run_in_threadpool(
            update_card, registry, registry.store, name, version, fields, actor=actor(request)
        )
        return asdict(saved)

    @router.get(f"{_CARD}/history", summary="The cards stored for the version, oldest first")
    def history(name: str, version: str) -> dict[str, Any]:
        return {"cards": [stored.to_json() for stored in card_history(registry, name, version)]}

    @router.get(f"{_CARD}/history/{{number}}", summary="One stored card, its bytes verified")
    def stored_card(
        name: str,
        version: str,
        number: int,
        fmt: str = Query("markdown", alias="format", description="markdown or html"),
    ) -> Response:
        return _text(read_stored_card(registry, name, version, number, fmt), fmt)

    return router


def _editable_fields(data: dict[str, Any]) -> dict[str, str]:
    """The request's fields, each a string; unknown names are refused by ``set_card_fields``."""
    for field, value in data.items():
        if not isinstance(value, str):
            raise InvalidInput(
                f"Invalid value {value!r} for model card field '{field}': expected a string "
                f"(the editable fields are {', '.join(EDITABLE_FIELDS)}; an empty string clears one)"
            )
    return data


def _text(content: str | bytes, fmt: str) -> Response:
    headers = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Content-Type-Options": "nosniff"}
    return Response(content, media_type=_MEDIA_TYPES[fmt], headers=headers)
