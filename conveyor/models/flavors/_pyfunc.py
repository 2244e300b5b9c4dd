"""Any Python object with ``predict``, stored with cloudpickle: only when the caller opts in."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from conveyor.errors import InvalidInput
from conveyor.models.flavors._base import Flavor, LoadOptions, check_choice, qualname, refuse_pickle

__all__ = ["PythonFunctionFlavor"]

_FILE = "model.pkl"
#: Fixed so that the bytes do not change with the interpreter's default protocol.
_PROTOCOL = 5


class PythonFunctionFlavor(Flavor):
    """Any object with a callable ``predict``: the escape hatch for custom models.

    There is no safe general format for arbitrary Python objects, so this flavor
    pickles (with cloudpickle, which also stores classes defined in ``__main__`` or a
    notebook by value). Loading a pickle runs code from the file, so both ``save`` and
    ``load`` require ``allow_pickle=True`` and warn with :class:`PickleWarning`; the
    flavor registry never picks it on its own.
    """

    name = "python_function"
    framework = "cloudpickle"
    requirements = ("cloudpickle",)
    uses_pickle = True

    def accepts(self, model: object) -> bool:
        return not isinstance(model, type) and callable(getattr(model, "predict", None))

    def dump(self, model: Any, folder: Path) -> dict[str, Any]:
        import cloudpickle

        try:
            with open(folder / _FILE, "wb") as out:
                cloudpickle.dump(model, out, protocol=_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise InvalidInput(f"Cannot pickle a {type(model).__name__}: {exc}") from exc
        return {"serialization_format": "cloudpickle", "python_class": qualname(model)}

    def load(self, folder: Path, fields: Mapping[str, Any], options: LoadOptions) -> Any:
        check_choice(fields, "serialization_format", ("cloudpickle",))
        refuse_pickle(f"The python_function model {fields.get('python_class', '')!r}", options)
        with open(folder / _FILE, "rb") as handle:
            return pickle.load(handle)  # the caller opted in above
