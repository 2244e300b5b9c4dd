"""Which flavor stores a model: a registry tried in order, pickle only on request."""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from types import MappingProxyType

from conveyor.errors import InvalidInput
from conveyor.models.flavors._base import Flavor, PickleWarning, qualname

__all__ = ["FlavorRegistry"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


class FlavorRegistry:
    """Flavors by name, in the order :meth:`for_model` tries them.

    Order matters where classes overlap: ``XGBClassifier`` and ``LGBMClassifier`` are
    scikit-learn estimators too, so ``xgboost`` and ``lightgbm`` come before ``sklearn``.
    """

    def __init__(self) -> None:
        self._flavors: dict[str, Flavor] = {}
        #: Read-only view of the registered flavors, in selection order.
        self.flavors: Mapping[str, Flavor] = MappingProxyType(self._flavors)

    def register(self, flavor: Flavor, *, clobber: bool = False) -> None:
        """Add ``flavor`` under its name, tried after those already registered.

        Raises:
            InvalidInput: not a :class:`Flavor`, a malformed name, or the name is taken
                and ``clobber`` is false (replacing a flavor silently would change how
                existing models load).
        """
        if not isinstance(flavor, Flavor):
            raise InvalidInput(f"Expected a Flavor instance, got {qualname(flavor)}")
        if not _NAME.match(getattr(flavor, "name", "")):
            raise InvalidInput(
                f"{type(flavor).__name__}.name must be lowercase letters, digits, '_', '.', '-'"
            )
        if flavor.name in self._flavors and not clobber:
            raise InvalidInput(
                f"A flavor named {flavor.name!r} is already registered ({self._flavors[flavor.name]!r}); "
                "pass clobber=True to replace it"
            )
        self._flavors[flavor.name] = flavor

    def by_name(self, name: str) -> Flavor:
        """The flavor registered as ``name``.

        Raises:
            InvalidInput: unknown name; the message lists the registered ones.
        """
        try:
            return self._flavors[name]
        except KeyError:
            raise InvalidInput(
                f"Unknown model flavor {name!r}. Currently registered flavors are: "
                f"{', '.join(self._flavors)}. Add one with conveyor.models.register_flavor()."
            ) from None

    def for_model(self, model: object, *, name: str | None = None, allow_pickle: bool = False) -> Flavor:
        """The flavor that stores ``model``: ``name`` if given, else the first that accepts it.

        A flavor that pickles (``python_function``) is used only with ``allow_pickle=True``,
        with a :class:`PickleWarning`, and picked by type only when no safe flavor fits.

        Raises:
            InvalidInput: the named flavor does not accept the model, nothing does, or
                only a pickling flavor does and ``allow_pickle`` is false.
        """
        candidates = [self.by_name(name)] if name else list(self._flavors.values())
        accepting = [f for f in candidates if f.accepts(model)]
        safe = [f for f in accepting if not f.uses_pickle]
        if safe:
            return safe[0]
        if not accepting:
            tried = ", ".join(f.name for f in candidates)
            raise InvalidInput(f"No model flavor stores a {qualname(model)} (tried: {tried})")
        chosen = accepting[0]
        if not allow_pickle:
            raise InvalidInput(
                f"A {qualname(model)} can only be stored by the {chosen.name!r} flavor, which pickles it. "
                "Loading a pickle runs code from the file, so this needs allow_pickle=True (here and at "
                "load); prefer converting the model to a supported framework or to ONNX."
            )
        warnings.warn(
            f"Saving a {qualname(model)} with the {chosen.name!r} flavor (pickle) because "
            "allow_pickle=True: loading it will run code from the file",
            PickleWarning,
            stacklevel=3,
        )
        return chosen
