"""Which serializer stores a value: a registry tried in order, with pickle only on request."""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from conveyor.errors import InvalidInput
from conveyor.pipelines.serializers._base import ArtifactRef, Serializer, type_name

if TYPE_CHECKING:
    from conveyor.artifacts.store import ArtifactStore

__all__ = ["PickleFallbackWarning", "SerializerRegistry"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


class PickleFallbackWarning(UserWarning):
    """A value is being stored with pickle because the caller passed ``allow_pickle=True``."""


class SerializerRegistry:
    """Serializers by name, kept in the order :meth:`for_value` tries them.

    The package builds one, :data:`conveyor.pipelines.serializers.default_registry`, and
    its module-level functions use it; tests and embedders can build their own.
    """

    def __init__(self) -> None:
        self._serializers: dict[str, Serializer] = {}
        #: Read-only view of the registered serializers, in selection order.
        self.serializers: Mapping[str, Serializer] = MappingProxyType(self._serializers)

    def register(self, serializer: Serializer, *, clobber: bool = False, before: str | None = None) -> None:
        """Add ``serializer`` under its ``name``.

        New serializers are tried after those already registered unless ``before`` names
        one to go ahead of (the models capability registers its format before
        ``"joblib"``). Replacing a serializer with ``clobber=True`` keeps its place
        unless ``before`` is given.

        Raises:
            InvalidInput: ``serializer`` is not a :class:`Serializer`, declares an invalid
                name, version or extension, its name is taken and ``clobber`` is false
                (silently replacing one would change how every such value is stored),
                or ``before`` is not registered.
        """
        _check_declaration(serializer)
        name = serializer.name
        if name in self._serializers and not clobber:
            raise InvalidInput(
                f"A serializer named {name!r} is already registered "
                f"({self._serializers[name]!r}); pass clobber=True to replace it"
            )
        if before is None:
            self._serializers[name] = serializer
            return
        if before not in self._serializers or before == name:
            raise InvalidInput(
                f"Cannot register {name!r} before {before!r}: no other serializer has that name. "
                f"Registered: {', '.join(self._serializers)}"
            )
        entries = [(key, value) for key, value in self._serializers.items() if key != name]
        at = next(i for i, (key, _) in enumerate(entries) if key == before)
        entries.insert(at, (name, serializer))
        self._serializers.clear()  # in place, so that the read-only view stays current
        self._serializers.update(entries)

    def by_name(self, name: str) -> Serializer:
        """The serializer registered as ``name`` (as recorded in :attr:`ArtifactRef.serializer`).

        Raises:
            InvalidInput: unknown name; the message lists the registered ones.
        """
        try:
            return self._serializers[name]
        except KeyError:
            known = ", ".join(sorted(self._serializers))
            raise InvalidInput(
                f"Unknown serializer {name!r}. Currently registered serializers are: {known}. "
                "Add one with conveyor.pipelines.serializers.register()."
            ) from None

    def for_value(self, value: Any, *, allow_pickle: bool = False) -> Serializer:
        """The serializer that stores ``value``: the first registered one that accepts it.

        With the built-in serializers the order is: pandas ``DataFrame`` or
        ``pyarrow.Table`` → ``parquet``; ``numpy.ndarray`` without Python objects →
        ``npy``; NumPy scalar → ``npy-scalar``; JSON data (``dict`` with ``str`` keys,
        ``list``, ``str``, ``int``, ``float``, ``bool``, ``None``, exact types, nested)
        → ``json``; fitted model (scikit-learn estimator, or ``fit`` and ``predict``) →
        ``joblib``. Each serializer's docstring says what it refuses. Serializers marked
        ``opt_in`` (``pickle``) are never picked by type; only when nothing else accepts
        the value and ``allow_pickle`` is true, with a :class:`PickleFallbackWarning`.

        Raises:
            InvalidInput: nothing accepts ``value`` and ``allow_pickle`` is false (or no
                opt-in serializer is registered). The message names the type, why each
                candidate refused it, and ``allow_pickle``.
        """
        candidates = list(self._serializers.values())
        for serializer in candidates:
            if not serializer.opt_in and serializer.accepts(value):
                return serializer
        if allow_pickle:
            for serializer in candidates:
                if serializer.opt_in and serializer.accepts(value):
                    warnings.warn(
                        f"Storing a value of type {type_name(value)} with the {serializer.name!r} "
                        "serializer because allow_pickle=True: loading it runs code from the "
                        "artifact, and its bytes (so its hash) may differ between processes",
                        PickleFallbackWarning,
                        stacklevel=2,
                    )
                    return serializer
        reasons = [f"{s.name}: {reason}" for s in candidates if (reason := s.refusal(value))]
        tried = ", ".join(s.name for s in candidates if not s.opt_in)
        raise InvalidInput(
            f"No serializer stores a value of type {type_name(value)}"
            + (f" ({'; '.join(reasons)})" if reasons else "")
            + f". Tried, in order: {tried}. Convert it to a supported type, or pass "
            "allow_pickle=True to store it with pickle (loading a pickle runs code; "
            "use it only for artifacts you trust)."
        )

    def save(
        self, store: ArtifactStore, rel_path: str, value: Any, *, allow_pickle: bool = False
    ) -> ArtifactRef:
        """Store ``value`` at ``rel_path`` with the serializer :meth:`for_value` picks.

        Raises:
            InvalidInput: see :meth:`for_value` and :meth:`Serializer.save`.
            PermissionDenied, BackendUnavailable: from the store.
        """
        return self.for_value(value, allow_pickle=allow_pickle).save(store, rel_path, value)

    def load_ref(self, store: ArtifactStore, ref: ArtifactRef) -> Any:
        """Load the value ``ref`` points to with the serializer that wrote it, verified.

        Raises:
            InvalidInput: the serializer is not registered, or cannot read that version.
            ArtifactNotFound: the file is gone.
            IntegrityError: the stored bytes no longer match ``ref.sha256``.
        """
        return self.by_name(ref.serializer).load_ref(store, ref)


def _check_declaration(serializer: object) -> None:
    if not isinstance(serializer, Serializer):
        raise InvalidInput(f"Expected a Serializer instance, got {type_name(serializer)}")
    cls = type(serializer).__name__
    name = getattr(serializer, "name", None)
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInput(f"{cls}.name must be lowercase letters, digits, '.', '_' or '-', got {name!r}")
    version = getattr(serializer, "version", None)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InvalidInput(f"{cls}.version must be an int of at least 1, got {version!r}")
    extension = getattr(serializer, "extension", None)
    if not isinstance(extension, str) or not re.fullmatch(r"\.[A-Za-z0-9._-]+", extension):
        raise InvalidInput(f"{cls}.extension must look like '.parquet', got {extension!r}")
