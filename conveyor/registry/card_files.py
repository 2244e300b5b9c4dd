"""Model cards as files: rendered in a named format, and the stored generations read back.

:func:`~conveyor.registry.cards.save_card` writes every generation of a version's card
as ``card-<n>.md`` and ``card-<n>.html`` and enters both in the artifact index with their
SHA-256, never overwriting one. :func:`card_history` lists them from that index and
:func:`read_stored_card` returns one's exact bytes after checking them, so an auditor can
see the card an approver read, not only today's. Callers (the REST API) never touch the
artifact store or the index themselves.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from conveyor.errors import InvalidInput, NotFound
from conveyor.registry._card_render import render_html, render_markdown
from conveyor.registry.cards import PATH_TAG, ModelCard, card_folder

if TYPE_CHECKING:
    from conveyor.registry.service import RegistryService
    from conveyor.store.entities import ArtifactRecord

__all__ = ["FORMATS", "StoredCard", "StoredFile", "card_history", "read_stored_card", "render_card"]

#: The renderings of a card, by name, and the extension each is stored with.
FORMATS = {"markdown": "md", "html": "html"}
_CARD_FILE = re.compile(r"/card-(\d+)\.(md|html)$")


@dataclass(frozen=True, slots=True)
class StoredFile:
    """One stored rendering: where it is (relative to the artifact root) and what it hashes to."""

    path: str
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class StoredCard:
    """One saved generation of a version's card; a rendering is None if its file is not indexed."""

    number: int
    #: When the Markdown file (else the HTML one) was indexed, in epoch milliseconds.
    created_time: int
    markdown: StoredFile | None
    html: StoredFile | None
    #: Whether the version's ``conveyor.card.path`` tag points here (the latest saved card).
    latest: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def render_card(card: ModelCard, fmt: str) -> str:
    """``card`` as Markdown or as self-contained HTML; both escape every user text.

    Raises:
        InvalidInput: ``fmt`` is not one of :data:`FORMATS`.
    """
    renderers = {"markdown": render_markdown, "html": render_html}
    return renderers[_check_format(fmt)](card)


def _check_format(fmt: str) -> str:
    """``fmt`` if it names a rendering; else InvalidInput listing them."""
    if fmt not in FORMATS:
        raise InvalidInput(f"Unknown model card format {fmt!r}: use {' or '.join(FORMATS)}")
    return fmt


def card_history(registry: RegistryService, name: str, version: int | str) -> list[StoredCard]:
    """Every card stored for the version, oldest first.

    Raises:
        NotFound: no such model or version (in the caller's workspace).
    """
    found = registry.get_version(name, version)
    renderings: dict[int, dict[str, ArtifactRecord]] = {}
    folder = card_folder(found.name, found.version)
    for record in registry.store.list_artifact_records(f"{folder}/card-"):
        if match := _CARD_FILE.search(record.path):
            renderings.setdefault(int(match[1]), {})[match[2]] = record
    latest = found.tags.get(PATH_TAG)
    return [_stored(number, files, latest) for number, files in sorted(renderings.items())]


def read_stored_card(
    registry: RegistryService, name: str, version: int | str, number: int, fmt: str = "markdown"
) -> bytes:
    """Card ``number`` of the version in ``fmt``, its bytes checked against the index.

    Raises:
        InvalidInput: an unknown format.
        NotFound: no such model, version, card or rendering.
        IntegrityError: the stored bytes changed since the card was saved.
    """
    extension = FORMATS[_check_format(fmt)]
    for stored in card_history(registry, name, version):
        entry = stored.markdown if extension == "md" else stored.html
        if stored.number == number and entry is not None:
            return registry.artifacts.read_verified(entry.path, entry.sha256)
    raise NotFound(f"Model {name} version {version} has no stored card {number} in {fmt}")


def _stored(number: int, files: dict[str, ArtifactRecord], latest: str | None) -> StoredCard:
    markdown, html = (_file(files.get(extension)) for extension in ("md", "html"))
    first = files.get("md") or files["html"]
    return StoredCard(
        number, first.created_time, markdown, html, markdown is not None and markdown.path == latest
    )


def _file(record: ArtifactRecord | None) -> StoredFile | None:
    return None if record is None else StoredFile(record.path, record.sha256, record.size)
