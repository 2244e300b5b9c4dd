"""skops files, loaded only when every type they contain is trusted.

skops rebuilds objects from a description instead of running pickle's byte code, but it
still imports and instantiates the classes the file names. So the file's types are
listed first (:func:`skops.io.get_untrusted_types`) and loading is refused unless each
one is a scikit-learn, NumPy or SciPy type, a type the flavor vouches for, or one the
caller named in ``trusted_types``.

Two skops dumps of one model differ in bytes, which would give the same model two
digests: the zip entries carry the time they were written, and ``schema.json`` names
objects (``__id__``) and array files (``<id>.npy``) by the ``id()`` of Python objects,
which changes from dump to dump. :func:`dump_skops` rewrites the archive canonically:
ids and file names numbered in the order they appear in the schema, one fixed entry
time, entries sorted by name. Sharing is kept (one id, one number), so skops loads the
same object graph.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from conveyor.errors import InvalidInput
from conveyor.models.flavors._base import LoadOptions

__all__ = ["SAFE_MODULES", "dump_skops", "load_skops", "skops_types"]

#: Top-level packages whose types a skops file may contain without an opt-in.
SAFE_MODULES = ("sklearn", "numpy", "scipy")
#: The entry time written into every skops archive: the earliest a zip can hold.
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_SCHEMA = "schema.json"


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
    _normalize_zip(path)
    return skops_types(path)


def _normalize_zip(path: Path) -> None:
    """Rewrite the skops archive at ``path`` canonically; see the module docstring."""
    with zipfile.ZipFile(path) as source:
        entries = {info.filename: (info.compress_type, source.read(info)) for info in source.infolist()}
    compression, raw_schema = entries.pop(_SCHEMA)
    schema = json.loads(raw_schema)
    renamed: dict[str, str] = {}
    _renumber(schema, {}, renamed, set(entries))
    canonical = {renamed.get(name, name): entry for name, entry in entries.items()}
    canonical[_SCHEMA] = (compression, json.dumps(schema, indent=2).encode())
    with zipfile.ZipFile(path, "w") as target:
        for name in sorted(canonical):
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.compress_type, data = canonical[name]
            info.external_attr = 0o644 << 16
            target.writestr(info, data)


def _renumber(node: Any, ids: dict[int, int], files: dict[str, str], names: set[str]) -> None:
    """Replace, in place and in document order, ``__id__`` values and archive file names.

    ``ids`` and ``files`` map what skops wrote to the new numbers; a repeated id gets
    the number of its first appearance, so objects shared in the model stay shared.
    """
    if isinstance(node, list):
        for item in node:
            _renumber(item, ids, files, names)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key == "__id__" and isinstance(value, int) and not isinstance(value, bool):
            node[key] = ids.setdefault(value, len(ids))
        elif key == "file" and isinstance(value, str) and value in names:
            node[key] = files.setdefault(value, f"{len(files)}{Path(value).suffix}")
        else:
            _renumber(value, ids, files, names)


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
