"""Finding a pipeline from the text a user types: ``churn.py``, ``churn.py:churn``, ``pkg.mod:churn``.

A file is imported as a normal module named after its stem, with its folder first on
``sys.path``, so that worker processes and Dask workers can import it the same way and
the steps it defines pickle by reference.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from conveyor.errors import InvalidInput
from conveyor.pipelines.definition import Pipeline


@dataclass(frozen=True)
class Loaded:
    pipeline: Pipeline
    #: The target normalised so that it loads again from another folder (absolute path).
    target: str
    #: Folders workers must put on ``sys.path`` to import the pipeline's module.
    sys_path: tuple[str, ...]
    #: The module file when the target was a file, for clusters that need it shipped.
    file: str | None


def load_target(target: str) -> Loaded:
    """Import the module ``target`` names and return its pipeline.

    Raises:
        InvalidInput: no such file or module, an import error (with its message), no
            pipeline in it, several without a ``:name``, or a name that is not a pipeline.
    """
    if not isinstance(target, str) or not target.strip():
        raise InvalidInput("A pipeline target is required: path/to/file.py[:name] or package.module:name")
    location, _, name = target.strip().rpartition(":") if _has_name(target) else (target.strip(), "", "")
    if location.endswith(".py") or os.sep in location or "/" in location:
        path = Path(location).resolve()
        if not path.is_file():
            raise InvalidInput(f"No pipeline file {location!r} (looked for {path})")
        module, sys_path, file = _import_file(path), str(path.parent), str(path)
        normalised = f"{path}:{name}" if name else str(path)
    else:
        module, sys_path, file = _import_module(location), os.getcwd(), None
        normalised = target.strip()
    pipeline = _pick(module, name, target)
    if not name:
        normalised = f"{normalised}:{pipeline.name}" if file else normalised
    return Loaded(pipeline, normalised, (sys_path,), file)


def _has_name(target: str) -> bool:
    head, sep, tail = target.rpartition(":")
    return bool(sep) and tail.isidentifier() and not (len(head) == 1 and head.isalpha())


def _import_file(path: Path) -> object:
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    module_name = path.stem
    if not module_name.isidentifier():
        raise InvalidInput(f"Pipeline file {path.name!r} must have a Python identifier as its name")
    existing = sys.modules.get(module_name)
    if existing is not None:
        if Path(getattr(existing, "__file__", "") or "").resolve() == path:
            return existing
        raise InvalidInput(
            f"Cannot import {path} as module {module_name!r}: another module of that name is already "
            f"imported from {getattr(existing, '__file__', '?')}; rename the file"
        )
    return _import_module(module_name)


def _import_module(name: str) -> object:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name or (exc.name and name.startswith(exc.name + ".")):
            raise InvalidInput(f"No module {name!r} to load a pipeline from") from exc
        raise InvalidInput(f"Importing {name!r} failed: {exc}") from exc


def _pick(module: object, name: str, target: str) -> Pipeline:
    if name:
        found = getattr(module, name, None)
        if not isinstance(found, Pipeline):
            raise InvalidInput(f"{target!r}: {name!r} is not a @pipeline in {module.__name__}")  # type: ignore[attr-defined]
        return found
    pipelines = {v.name: v for v in vars(module).values() if isinstance(v, Pipeline)}
    if len(pipelines) == 1:
        return next(iter(pipelines.values()))
    if not pipelines:
        raise InvalidInput(f"{target!r} defines no @pipeline function")
    raise InvalidInput(
        f"{target!r} defines several pipelines ({', '.join(sorted(pipelines))}); name one: {target}:NAME"
    )
