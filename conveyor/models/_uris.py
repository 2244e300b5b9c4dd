"""Model URIs: where ``load`` finds a model directory, with one resolver per scheme.

Built in:

- a plain path, or ``file:///abs/path``: the folder itself;
- ``runs:/<run_id>/<path>``: the folder logged under the run's artifacts (``log_model``),
  downloaded with every file verified against the hash the tracking store recorded;
- ``models:/<name>/<version>`` and ``models:/<name>@<alias>``: reserved for the model
  registry, which plugs in with :func:`register_resolver` (``clobber=True``); until it
  does they are refused with a message saying so.

A resolver receives one :class:`ResolveRequest` and returns a :class:`ResolvedModel`.
The ``expected_digest`` it may return is how the registry makes a version immutable:
``load`` refuses a model whose digest differs from the one recorded at registration.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from conveyor.artifacts import safe_relpath
from conveyor.errors import InvalidInput

if TYPE_CHECKING:
    from conveyor.tracking.client import Client

__all__ = [
    "ResolveRequest",
    "ResolvedModel",
    "Resolver",
    "parse_models_uri",
    "register_resolver",
    "resolve",
    "resolvers",
]

#: A scheme of two or more characters, so ``C:\models`` stays a Windows path.
_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]+):")
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_MODELS = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>[0-9]+)|@(?P<alias>[A-Za-z0-9_-]+))/?$")


@dataclass(frozen=True, slots=True)
class ResolveRequest:
    """What a resolver gets: the URI, a scratch folder and the caller's tracking client."""

    #: The URI as the caller wrote it, scheme included.
    uri: str
    #: An empty local folder the resolver may download into; removed after loading.
    scratch: Path
    #: The caller's tracking client, or None: a resolver that needs one opens ``Client()``.
    client: Client | None = None


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    """A local model directory, and the digest it must have if the source recorded one."""

    folder: Path
    expected_digest: str | None = None


Resolver = Callable[[ResolveRequest], ResolvedModel]


def _resolve_run(request: ResolveRequest) -> ResolvedModel:
    """``runs:/<run_id>/<path>``: download the run's artifact folder, verified file by file."""
    from conveyor.tracking.client import Client

    run_id, _, path = request.uri[len("runs:/") :].partition("/")
    if not _RUN_ID.match(run_id) or not path.strip("/"):
        raise InvalidInput(f"Expected runs:/<32-hex run id>/<artifact path>, got {request.uri!r}")
    client = request.client or Client()
    try:
        folder = client.download_artifacts(run_id, safe_relpath(path.strip("/")), request.scratch / "model")
    finally:
        if request.client is None:
            client.close()
    return ResolvedModel(folder)


def _resolve_registry(request: ResolveRequest) -> ResolvedModel:
    """Placeholder until the model registry registers its resolver for ``models:/``."""
    name, version, alias = parse_models_uri(request.uri)
    which = f"version {version}" if version else f"alias {alias!r}"
    raise InvalidInput(
        f"Cannot resolve {request.uri!r} (model {name!r}, {which}): no model registry configured. "
        "Load the model by path or runs:/<run_id>/<path> instead."
    )


_resolvers: dict[str, Resolver] = {"runs": _resolve_run, "models": _resolve_registry}
#: Read-only view of the registered resolvers: scheme -> resolver.
resolvers: Mapping[str, Resolver] = MappingProxyType(_resolvers)


def register_resolver(scheme: str, resolver: Resolver, *, clobber: bool = False) -> None:
    """Make ``load`` resolve ``<scheme>:...`` URIs with ``resolver``.

    Raises:
        InvalidInput: the scheme is malformed, or taken and ``clobber`` is false (the
            registry passes ``clobber=True`` to replace the ``models`` placeholder).
    """
    if not _SCHEME.match(f"{scheme}:") or scheme == "file":
        raise InvalidInput(f"Invalid URI scheme {scheme!r}: letters, digits, '+', '.', '-'; not 'file'")
    if scheme in _resolvers and not clobber:
        raise InvalidInput(
            f"A resolver for {scheme!r} is registered already; pass clobber=True to replace it"
        )
    _resolvers[scheme] = resolver


def parse_models_uri(uri: str) -> tuple[str, str | None, str | None]:
    """``(name, version, alias)`` of ``models:/<name>/<version>`` or ``models:/<name>@<alias>``.

    Raises:
        InvalidInput: the URI has neither form.
    """
    match = _MODELS.match(uri)
    if match is None:
        raise InvalidInput(f"Expected models:/<name>/<version> or models:/<name>@<alias>, got {uri!r}")
    return match["name"], match["version"], match["alias"]


@contextmanager
def resolve(uri: str | Path, *, client: Client | None = None) -> Iterator[ResolvedModel]:
    """The local model directory ``uri`` names, valid inside the ``with`` block.

    Raises:
        InvalidInput: an unknown scheme (the message lists the known ones) or a
            malformed URI; anything the scheme's resolver raises.
    """
    text = str(uri)
    match = _SCHEME.match(text)
    if isinstance(uri, Path) or match is None:
        yield ResolvedModel(Path(uri))
        return
    scheme = match["scheme"]
    if scheme == "file":
        yield ResolvedModel(Path(text[len("file://") :] if text.startswith("file://") else text[5:]))
        return
    if scheme not in _resolvers:
        known = ", ".join(["file", *sorted(_resolvers)])
        raise InvalidInput(f"No resolver for model URI scheme {scheme!r}. Registered schemes are: {known}")
    with tempfile.TemporaryDirectory(prefix="conveyor-model-") as scratch:
        yield _resolvers[scheme](ResolveRequest(text, Path(scratch), client))
