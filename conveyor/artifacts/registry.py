"""Which fsspec file system serves an artifact root, picked by the root's URI scheme.

Each scheme maps to a :class:`SchemeSpec`: the dotted path of an fsspec class (imported
on first use, so ``import conveyor`` never loads adlfs, s3fs or the Azure SDK), what to
install when that import fails, how a write is made atomic on that storage, and which
foreign exceptions mean "the service cannot be reached" or "credentials refused".

``registry`` is a read-only view; add a scheme with :func:`register_scheme`::

    register_scheme("gs", SchemeSpec("gcsfs.GCSFileSystem", "pip install gcsfs", "commit"))
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from conveyor.errors import BackendUnavailable, InvalidInput

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

__all__ = [
    "Location",
    "SchemeSpec",
    "WriteMode",
    "is_instance_of_any",
    "open_location",
    "register_scheme",
    "registry",
    "scheme_of",
    "spec_for",
]

#: How a write becomes visible all at once (see ``ArtifactStore.write``):
#:
#: - ``"local"``: temporary file in the target folder, ``fsync``, then ``os.replace``.
#: - ``"commit"``: the file system publishes an object only when its file is closed (Azure
#:   commits the staged block list, S3 completes the multipart upload), so an aborted
#:   write is discarded instead of closed.
#: - ``"move"``: write under a temporary name next to the target, then ``fs.mv``; works
#:   on any fsspec file system, at the price of a copy on stores without renames.
WriteMode = Literal["local", "commit", "move"]


@dataclass(frozen=True, slots=True)
class SchemeSpec:
    """What the artifact store needs to know about one kind of storage."""

    #: Dotted path of the fsspec ``AbstractFileSystem`` subclass.
    filesystem: str
    #: Shown when importing ``filesystem`` fails, e.g. ``pip install 'conveyor[azure]'``.
    install_hint: str | None = None
    #: See :data:`WriteMode`; ``"move"`` is the safe choice for an unknown file system.
    write_mode: WriteMode = "move"
    #: Dotted names of exceptions meaning the service could not be reached.
    unavailable_errors: tuple[str, ...] = ()
    #: Dotted names of exceptions meaning the credentials were refused.
    denied_errors: tuple[str, ...] = ()
    #: Dotted names of exceptions meaning a path (or its container) does not exist, for
    #: SDK errors the file system passes on without turning them into FileNotFoundError.
    missing_errors: tuple[str, ...] = ()


_AZURE = SchemeSpec(
    filesystem="adlfs.AzureBlobFileSystem",
    install_hint="pip install 'conveyor[azure]'",
    write_mode="commit",
    unavailable_errors=(
        "azure.core.exceptions.ServiceRequestError",
        "azure.core.exceptions.ServiceResponseError",
    ),
    denied_errors=("azure.core.exceptions.ClientAuthenticationError",),
    missing_errors=("azure.core.exceptions.ResourceNotFoundError",),
)

_registry: dict[str, SchemeSpec] = {
    "file": SchemeSpec("fsspec.implementations.local.LocalFileSystem", write_mode="local"),
    "memory": SchemeSpec("fsspec.implementations.memory.MemoryFileSystem", write_mode="move"),
    "az": _AZURE,
    "abfs": _AZURE,
    "abfss": _AZURE,
    "s3": SchemeSpec(
        filesystem="s3fs.S3FileSystem",
        install_hint="pip install 'conveyor[s3]'",
        write_mode="commit",
        unavailable_errors=(
            "botocore.exceptions.ConnectionError",
            "botocore.exceptions.ReadTimeoutError",
        ),
        denied_errors=("botocore.exceptions.NoCredentialsError",),
    ),
}

#: Read-only view of every registered scheme.
registry: Mapping[str, SchemeSpec] = MappingProxyType(_registry)


@dataclass(frozen=True, slots=True)
class Location:
    """An opened artifact root: the file system and the root's path inside it."""

    fs: AbstractFileSystem
    #: Root path as the file system spells it, without a trailing ``/``.
    root: str
    spec: SchemeSpec


def register_scheme(scheme: str, spec: SchemeSpec, *, clobber: bool = False) -> None:
    """Make ``scheme://`` artifact roots use ``spec``.

    Raises:
        InvalidInput: ``scheme`` is already registered and ``clobber`` is false; silently
            replacing a back end would redirect every artifact of that scheme.
    """
    scheme = scheme.lower()
    if scheme in _registry and not clobber:
        raise InvalidInput(
            f"Artifact scheme {scheme!r} is already registered ({_registry[scheme].filesystem}); "
            "pass clobber=True to replace it"
        )
    _registry[scheme] = spec


def scheme_of(root_uri: str) -> str:
    """The registry key for ``root_uri``: its URI scheme, or ``"file"`` for a plain path."""
    scheme = urlsplit(root_uri).scheme.lower()
    # One letter is a Windows drive (C:\\mlruns), not a scheme.
    return scheme if len(scheme) > 1 else "file"


def spec_for(scheme: str) -> SchemeSpec:
    """The spec registered for ``scheme``.

    Raises:
        InvalidInput: unknown scheme; the message lists the registered ones.
    """
    try:
        return _registry[scheme]
    except KeyError:
        known = ", ".join(sorted(_registry))
        raise InvalidInput(
            f"Unsupported artifact root scheme {scheme!r}. Currently registered schemes are: "
            f"{known}. Add one with conveyor.artifacts.registry.register_scheme()."
        ) from None


def open_location(root_uri: str, storage_options: Mapping[str, Any] | None = None) -> Location:
    """Import the file system for ``root_uri``, build it, and locate the root in it.

    Options encoded in the URI (such as the account in ``abfss://c@account.dfs...``) are
    used unless ``storage_options`` sets them too.

    Raises:
        InvalidInput: unknown scheme.
        BackendUnavailable: the package for the scheme is not installed.
    """
    scheme = scheme_of(root_uri)
    spec = spec_for(scheme)
    cls = _import_filesystem(scheme, spec)
    options = {**cls._get_kwargs_from_urls(root_uri), **(storage_options or {})}
    root = cls._strip_protocol(root_uri).rstrip("/")
    return Location(fs=cls(**options), root=root, spec=spec)


def is_instance_of_any(exc: BaseException, dotted_names: tuple[str, ...]) -> bool:
    """Whether ``exc`` is an instance of any named class, without importing anything.

    A class whose module was never imported cannot have raised ``exc``, so only modules
    already in ``sys.modules`` are consulted; this keeps vendor SDKs out of the import
    graph until a back end that uses them is opened.
    """
    for dotted in dotted_names:
        module_name, _, class_name = dotted.rpartition(".")
        cls = getattr(sys.modules.get(module_name), class_name, None)
        if isinstance(cls, type) and isinstance(exc, cls):
            return True
    return False


def _import_filesystem(scheme: str, spec: SchemeSpec) -> type[AbstractFileSystem]:
    module_name, _, class_name = spec.filesystem.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f": {spec.install_hint}" if spec.install_hint else ""
        raise BackendUnavailable(
            f"Artifact roots with scheme {scheme!r} need {module_name.split('.')[0]!r}, "
            f"which is not installed{hint}"
        ) from exc
    return getattr(module, class_name)  # type: ignore[no-any-return]
