"""The flavor interface: a subclass writes one kind of model into files and reads it back.

The packaging layer (:mod:`conveyor.models._packaging`) does everything else once for
all flavors: staging, hashing every file through the artifact store, the manifest,
verification before loading, the signature and the input example.
"""

from __future__ import annotations

import sys
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

from conveyor.errors import InvalidInput

__all__ = [
    "Flavor",
    "LoadOptions",
    "PickleWarning",
    "check_choice",
    "installed_version",
    "is_instance_of",
    "qualname",
    "refuse_pickle",
]


class PickleWarning(UserWarning):
    """A model is being saved or loaded with pickle because the caller passed ``allow_pickle=True``."""


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """What the caller of ``load`` allowed; the one argument every flavor's ``load`` receives."""

    #: Whether pickle-based files may be deserialized (that runs code from the file).
    allow_pickle: bool = False
    #: Extra fully-qualified type names a skops file may contain beyond scikit-learn,
    #: NumPy and SciPy types (``"mypkg.transformers.Clipper"``).
    trusted_types: tuple[str, ...] = ()


class Flavor(ABC):
    """Writes one kind of model into a folder and reads it back.

    A subclass sets :attr:`name`, :attr:`framework`, :attr:`requirements` and
    :attr:`types` (or overrides :meth:`accepts`) and supplies :meth:`dump` and
    :meth:`load`; :meth:`predict` defaults to ``model.predict(data)``.

    Contract (checked by the round-trip tests in ``tests/models``): for a model the
    flavor accepts, ``predict(load(folder, dump(model, folder)), x)`` equals
    ``model.predict(x)``; ``dump`` writes only regular files under ``folder`` and
    returns JSON-ready fields; ``load`` reads only files ``dump`` wrote (the packaging
    layer has verified them) and never runs code from them unless
    :attr:`LoadOptions.allow_pickle` is true.
    """

    #: Registry and manifest name (lowercase).
    name: ClassVar[str]
    #: Distribution whose installed version the manifest records as the framework.
    framework: ClassVar[str]
    #: Distributions the model needs at load time, pinned into ``pip_requirements``.
    requirements: ClassVar[tuple[str, ...]]
    #: Dotted class names the default :meth:`accepts` checks, importing nothing.
    types: ClassVar[tuple[str, ...]] = ()
    #: Whether this flavor stores models with pickle, so ``allow_pickle=True`` is needed
    #: both to save and to load them, and the registry never picks it by type alone.
    uses_pickle: ClassVar[bool] = False

    def accepts(self, model: object) -> bool:
        """Whether this flavor can store ``model``."""
        return not isinstance(model, type) and is_instance_of(model, self.types)

    @abstractmethod
    def dump(self, model: Any, folder: Path) -> dict[str, Any]:
        """Write ``model`` into the empty ``folder``; return the flavor's manifest fields.

        Raises:
            InvalidInput: the model cannot be stored in this flavor's format.
        """

    @abstractmethod
    def load(self, folder: Path, fields: Mapping[str, Any], options: LoadOptions) -> Any:
        """The native model from a verified ``folder`` that :meth:`dump` wrote.

        Raises:
            InvalidInput: the fields are malformed, name something this flavor refuses
                to load (an unknown class, a format it does not read), or loading would
                run code the caller did not allow.
        """

    def predict(self, model: Any, data: Any) -> Any:
        """Run the native ``model`` on ``data`` (already checked against the signature)."""
        return model.predict(data)

    def pinned_requirements(self) -> list[str]:
        """``name==version`` for each of :attr:`requirements` that is installed."""
        return [f"{dist}=={version}" for dist in self.requirements if (version := installed_version(dist))]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution``, or None when it is not installed."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def qualname(value: object) -> str:
    """``module.QualName`` of ``value``'s type, as manifests record model classes."""
    cls = type(value)
    return f"{cls.__module__}.{cls.__qualname__}"


def is_instance_of(value: object, dotted_names: Iterable[str]) -> bool:
    """``isinstance`` against dotted class names, looked up only in modules already imported.

    A class whose module was never imported cannot have instances, so choosing a flavor
    never imports XGBoost, LightGBM or ONNX.
    """
    for dotted in dotted_names:
        module_name, _, class_name = dotted.rpartition(".")
        cls = getattr(sys.modules.get(module_name), class_name, None)
        if isinstance(cls, type) and isinstance(value, cls):
            return True
    return False


def refuse_pickle(what: str, options: LoadOptions) -> None:
    """Refuse to unpickle ``what`` unless the caller opted in; warn when they did.

    Raises:
        InvalidInput: ``options.allow_pickle`` is false; the message says why pickle is refused.
    """
    if not options.allow_pickle:
        raise InvalidInput(
            f"{what} is stored as a pickle, and loading a pickle runs code from the file: "
            "anyone who could write it could run anything as you. Pass allow_pickle=True "
            "only for models from a source you trust, or re-save the model in a safe format "
            "(skops, XGBoost/LightGBM native, ONNX)."
        )
    warnings.warn(
        f"Loading {what} with pickle because allow_pickle=True: this runs code from the file",
        PickleWarning,
        stacklevel=3,
    )


def check_choice(fields: Mapping[str, Any], key: str, allowed: Iterable[str]) -> str:
    """``fields[key]`` if it is one of ``allowed``: manifest values never name arbitrary code.

    Raises:
        InvalidInput: the value is missing or not allowed.
    """
    value = fields.get(key)
    choices = sorted(allowed)
    if value not in choices:
        raise InvalidInput(f"Model manifest field {key!r} must be one of {choices}, got {value!r}")
    return str(value)
