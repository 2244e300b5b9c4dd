"""What every command shares: the ``--tracking-uri`` option and opening the stores it names.

Everything heavy (pydantic-settings, SQLAlchemy, pandas, httpx) is imported inside the
functions, so that ``conveyor --help`` stays fast; ``tests/cli/test_cli.py`` checks it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

import typer

from conveyor.errors import InvalidInput

if TYPE_CHECKING:
    from conveyor.config import Settings
    from conveyor.tracking.client import Client
    from conveyor.tracking.service import TrackingService

TrackingUri = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        envvar="CONVEYOR_TRACKING_URI",
        show_envvar=True,
        help="Server URL (http://host:port) or database URL; default: the local store in CONVEYOR_HOME.",
    ),
]

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")]


def load_settings() -> Settings:
    """Settings from the ``CONVEYOR_*`` environment, with a readable error for a bad value."""
    from pydantic import ValidationError

    from conveyor.config import Settings

    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"CONVEYOR_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
        )
        raise InvalidInput(f"Invalid configuration in the environment: {problems}") from None


def ensure_home(settings: Settings) -> None:
    """Create ``CONVEYOR_HOME`` when the embedded defaults (SQLite file, artifact folder) live there."""
    if settings.database_url is None or settings.artifact_root is None:
        settings.home.mkdir(parents=True, exist_ok=True)


def is_server_uri(uri: str | None) -> bool:
    return bool(uri) and uri.startswith(("http://", "https://"))  # type: ignore[union-attr]


@contextlib.contextmanager
def open_client(tracking_uri: str | None) -> Iterator[Client]:
    """A tracking client on the URI (flag or ``CONVEYOR_TRACKING_URI``) or the local store, closed after."""
    from conveyor.tracking.client import Client

    settings = load_settings()
    if not tracking_uri and not is_server_uri(settings.tracking_uri):
        ensure_home(settings)
    client = Client(tracking_uri, settings=settings)
    try:
        yield client
    finally:
        client.close()


def resolve_uri(tracking_uri: str | None) -> tuple[Settings, str | None]:
    """The settings, and the tracking URI from the flag or ``CONVEYOR_TRACKING_URI`` (None: local)."""
    settings = load_settings()
    return settings, tracking_uri or settings.tracking_uri


def database_url(tracking_uri: str | None, command: str) -> tuple[Settings, str]:
    """The database a maintenance command works on directly; a server URL is refused."""
    settings, uri = resolve_uri(tracking_uri)
    if is_server_uri(uri):
        raise InvalidInput(
            f"`conveyor {command}` works on the database itself, not through a server ({uri}). "
            "Run it where the data lives, with --tracking-uri or CONVEYOR_DATABASE_URL "
            "set to the database URL."
        )
    if uri:
        return settings, uri
    ensure_home(settings)
    return settings, settings.resolved_database_url()


@contextlib.contextmanager
def open_service(tracking_uri: str | None) -> Iterator[TrackingService]:
    """Metadata and artifact stores of a local or database URI together, closed after."""
    from pydantic import SecretStr

    from conveyor.tracking.service import TrackingService

    settings, url = database_url(tracking_uri, "gc")
    service = TrackingService.from_settings(settings.model_copy(update={"database_url": SecretStr(url)}))
    try:
        yield service
    finally:
        service.store.close()
