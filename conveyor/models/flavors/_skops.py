"""skops files, loaded only when every type they contain is trusted.

skops rebuilds objects from a description instead of running pickle's byte code, but it
still imports and instantiates the classes the file names. So the file's types are
listed first (:func:`skops.io.get_untrusted_types`) and loading is refused unless each
one is a scikit-learn, NumPy or SciPy type, a type the flavor vouches for, or one the
caller named in ``trusted_types``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from conveyor.errors import InvalidInput
from conveyor.models.flavors._base import LoadOptions

__all__ = ["SAFE_MODULES", "dump_skops", "load_skops", "skops_types"]

#: Top-level packages whose types a skops file may contain without an opt-in.
SAFE_MODULES = ("sklearn", "numpy", "scipy")


def dump_skops(model: Any, path: Path) -> list[str]:
    """Write ``model`` to ``path`` with skops; return the types a loader will have to trust.

    Raises:
        InvalidInput: skops cannot represent the model.
    """
    import skops.io

    try:
        skops.io.dump(model, path)
    except (TypeError, ValueError, AttributeError) as exc:
        raise InvalidInput(f"skops cannot store a {type(model).__name__}: {exc}") from exc
    return skops_types(path)


def skops_types(path: Path) -> list[str]:
    """Types in the skops file at ``path`` beyond those skops trusts by default."""
    import skops.io

    return sorted(skops.io.get_untrusted_types(file=path))


def load_skops(path: Path, options: LoadOptions, *, vouched: Iterable[str] = ()) -> Any:
    """The object in the skops file at ``path``, if all of its types are trusted.

    Args:
        vouched: Extra type names or package prefixes (``"lightgbm."``) the calling
            flavor trusts for its own models.

    Raises:
        InvalidInput: the file contains types nobody trusted; the message lists them and
            says how to opt in.
    """
    import skops.io

    found = skops_types(path)
    prefixes = (*(f"{m}." for m in SAFE_MODULES), *vouched)
    refused = [t for t in found if not t.startswith(prefixes) and t not in options.trusted_types]
    if refused:
        raise InvalidInput(
            f"The model file {path.name} contains types that are not scikit-learn, NumPy or SciPy "
            f"types: {refused}. Loading it would import and build them. If you trust them, pass "
            f"trusted_types={refused!r} to load()."
        )
    return skops.io.load(path, trusted=found)
