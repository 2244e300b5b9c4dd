"""``conveyor registry card``: generate, store and print the path of a version's model card.

Kept apart from :mod:`conveyor.cli.registry` so the card command can change without
touching the registry's other commands; :func:`register` adds it to that group.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from conveyor.cli import _output as out
from conveyor.cli._common import JsonFlag, TrackingUri, database_url
from conveyor.errors import InvalidInput

if TYPE_CHECKING:
    from conveyor.registry import RegistryService


class CardFormat(StrEnum):
    MD = "md"
    HTML = "html"


def register(registry_app: typer.Typer) -> None:
    """Add ``card`` to the ``conveyor registry`` group."""
    registry_app.command("card")(card)


def card(
    name: str,
    version: int,
    fmt: Annotated[
        CardFormat, typer.Option("--format", help="Which rendering to print the path of (both are stored).")
    ] = CardFormat.MD,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Also write a copy of the card to this file.")
    ] = None,
    set_fields: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="FIELD=VALUE",
            help="Fill in intended_use, limitations or owner first (empty VALUE clears it); repeatable.",
        ),
    ] = None,
    as_json: JsonFlag = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Generate VERSION's model card from the platform's records, store it, print its path.

    Each run stores a new card (card-<n>.md and .html) and keeps the earlier ones. The
    path printed is one to open: the file's absolute path on a local artifact root, its
    full URI otherwise (--json keeps the path relative to the root, as the tags record it).
    """
    from conveyor.registry.cards import update_card

    fields = parse_fields(set_fields or [])
    with open_registry(tracking_uri) as registry:
        saved = update_card(registry, registry.store, name, version, fields)
        path, sha256 = (
            (saved.path, saved.sha256) if fmt is CardFormat.MD else (saved.html_path, saved.html_sha256)
        )
        if output is not None:
            output.write_bytes(registry.artifacts.read_verified(path, sha256))
        location = registry.artifacts.display_location(path)
    if as_json:
        out.emit_json(asdict(saved))
        return
    typer.echo(location)


def parse_fields(items: list[str]) -> dict[str, str]:
    """``["owner=risk team", "limitations="]`` as a dict; a later value for a field wins."""
    fields = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"--set {item!r} is not FIELD=VALUE, e.g. --set owner=risk-team")
        fields[key.strip()] = value
    return fields


@contextlib.contextmanager
def open_registry(tracking_uri: str | None, command: str = "registry card") -> Iterator[RegistryService]:
    """The registry of the database the URI names (or the local store), closed after."""
    from pydantic import SecretStr

    from conveyor.registry import RegistryService

    settings, url = database_url(tracking_uri, command)
    registry = RegistryService.from_settings(settings.model_copy(update={"database_url": SecretStr(url)}))
    try:
        yield registry
    finally:
        registry.store.close()
