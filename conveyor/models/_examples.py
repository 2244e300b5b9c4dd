"""Input examples: stored next to the model in formats that load without running code.

A DataFrame goes to Parquet, an array to ``.npy`` and a dict of arrays to ``.npz``, and
all are read back with pickle disabled; arrays of Python objects are refused for that
reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from conveyor.errors import InvalidInput
from conveyor.models._signature import infer_schema

__all__ = ["read_example", "write_example"]

_FILES = {"dataframe": "input_example.parquet", "tensor": "input_example.npy", "tensors": "input_example.npz"}


def write_example(folder: Path, example: Any) -> dict[str, str]:
    """Write ``example`` into ``folder``; return the manifest's ``input_example`` entry.

    Raises:
        InvalidInput: the example is not a DataFrame, an array or a dict of arrays, or
            holds Python objects (which only pickle could store).
    """
    kind = infer_schema(example).kind
    path = folder / _FILES[kind]
    if kind == "dataframe":
        example.to_parquet(path, index=False)
    elif kind == "tensor":
        np.save(path, _plain(np.asarray(example), "input_example"), allow_pickle=False)
    else:
        np.savez(path, **{str(k): _plain(np.asarray(v), str(k)) for k, v in example.items()})
    return {"path": path.name, "kind": kind}


def read_example(folder: Path, entry: Mapping[str, str] | None) -> Any:
    """The example a manifest entry points to (None when there is none).

    Raises:
        InvalidInput: the entry's kind is unknown.
    """
    if not entry:
        return None
    kind = entry.get("kind")
    if kind not in _FILES:
        raise InvalidInput(f"Unknown input example kind {kind!r}; expected one of {sorted(_FILES)}")
    path = folder / _FILES[kind]
    if kind == "dataframe":
        import pandas as pd

        return pd.read_parquet(path)
    if kind == "tensor":
        return np.load(path, allow_pickle=False)
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def _plain(array: np.ndarray, name: str) -> np.ndarray:
    if array.dtype == object:
        raise InvalidInput(
            f"The input example {name!r} holds Python objects, which only pickle could store; "
            "pass a DataFrame (strings are fine there) or a numeric array"
        )
    return array
