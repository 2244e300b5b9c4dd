"""JSON for plain Python data: dicts, lists, strings, numbers, booleans and None."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, BinaryIO

from conveyor.pipelines.serializers._base import Serializer, as_file

__all__ = ["JsonSerializer"]

#: The exact types JSON gives back. Subclasses are refused (see ``JsonSerializer``).
_SCALARS = (str, int, float, bool, type(None))

#: One fixed encoding, so that equal values give equal bytes.
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True, check_circular=False
)


class JsonSerializer(Serializer):
    """JSON text with sorted keys, no spaces and ASCII only: byte-deterministic.

    Takes ``dict`` (``str`` keys), ``list``, ``str``, ``int``, ``float``, ``bool`` and
    ``None``, nested to any depth, and nothing that would come back different:

    - **Exact types only.** A tuple would load as a list, an ``OrderedDict`` or
      ``defaultdict`` as a dict, ``numpy.float64`` or an ``IntEnum`` as the plain number,
      so these are refused (numpy scalars go to ``npy-scalar``; return lists instead of
      tuples). A dict key that is not a ``str`` would come back as a string and is refused.
    - **Key order is not kept:** keys are sorted, so equal dicts give equal bytes whatever
      order they were built in (what the cache wants); the loaded dict is in sorted order.
    - **NaN and infinities** are written as the bare tokens ``NaN``, ``Infinity`` and
      ``-Infinity``, as Python's ``json`` does. Python reads them back, but strict JSON
      parsers do not. Every NaN loads as the same NaN (sign and payload are not kept);
      ``-0.0`` is kept. Floats are written with ``repr``, the shortest text that reads
      back to the same float on every platform.
    - Non-ASCII text is escaped (``\\u00e9``), so any ``str``, lone surrogates included,
      round-trips.

    The whole text is built in memory before it is written: JSON is meant for small
    values (parameters, metrics, lists of names); large data belongs in arrays or tables.
    """

    name = "json"
    version = 1
    extension = ".json"

    def accepts(self, value: object) -> bool:
        return json_problem(value, "value") is None

    def refusal(self, value: object) -> str | None:
        return json_problem(value, "value")

    def dump(self, value: Any) -> Iterator[bytes]:
        yield _ENCODER.encode(value).encode("ascii")

    def load(self, data: bytes | BinaryIO) -> Any:
        if not isinstance(data, bytes | bytearray):
            data = as_file(data).read()
        return json.loads(data)


def json_problem(value: object, where: str, ancestors: frozenset[int] = frozenset()) -> str | None:
    """Where and why ``value`` is not JSON that round-trips, or None if it is.

    ``ancestors`` holds the ids of the containers above ``value``, to catch cycles.
    """
    kind = type(value)
    if kind in _SCALARS:
        return None
    if kind is not dict and kind is not list:
        hint = "; return a list instead" if kind is tuple else ""
        return f"{where} is a {kind.__module__}.{kind.__qualname__}, not a JSON type{hint}"
    if id(value) in ancestors:
        return f"{where} contains itself"
    inner = ancestors | {id(value)}
    try:
        if kind is list:
            for index, item in enumerate(value):  # type: ignore[arg-type]
                if (found := json_problem(item, f"{where}[{index}]", inner)) is not None:
                    return found
            return None
        for key, item in value.items():  # type: ignore[attr-defined]
            if type(key) is not str:
                return f"{where} has a key {key!r} that is not a str (it would load as a string)"
            if (found := json_problem(item, f"{where}[{key!r}]", inner)) is not None:
                return found
    except RecursionError:
        return f"{where} is nested too deeply"
    return None
