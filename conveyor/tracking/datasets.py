"""Audit-grade dataset fingerprints: SHA-256 over the full content, not a sample.

MLflow's digest is 8 hex characters of MD5 over the first 10,000 rows, so two datasets
that differ after row 10,000 look the same. Conveyor hashes every row (pandas' vectorised
row hashing, then SHA-256 over those hashes, the column names and dtypes), so the digest
changes when any value, column or type changes.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import pandas as pd

from conveyor.errors import InvalidInput
from conveyor.store.entities import Dataset


def digest_dataframe(frame: pd.DataFrame) -> str:
    hasher = hashlib.sha256()
    header = [[str(c), str(t)] for c, t in zip(frame.columns, frame.dtypes, strict=True)]
    hasher.update(json.dumps(header).encode())
    row_hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    hasher.update(np.ascontiguousarray(row_hashes).tobytes())
    return hasher.hexdigest()


def digest_array(array: np.ndarray) -> str:
    hasher = hashlib.sha256()
    hasher.update(json.dumps([list(array.shape), str(array.dtype)]).encode())
    hasher.update(np.ascontiguousarray(array).tobytes())
    return hasher.hexdigest()


def dataset_from(data: Any, name: str, source: str, source_type: str = "local") -> Dataset:
    """A ``Dataset`` record for a DataFrame or array, with its schema and row count as profile."""
    if isinstance(data, pd.DataFrame):
        schema = {"columns": [{"name": str(c), "type": str(t)} for c, t in data.dtypes.items()]}
        return Dataset(
            name=name,
            digest=digest_dataframe(data),
            source_type=source_type,
            source=source,
            schema=json.dumps(schema),
            profile=json.dumps({"num_rows": len(data), "num_columns": data.shape[1]}),
        )
    if isinstance(data, np.ndarray):
        return Dataset(
            name=name,
            digest=digest_array(data),
            source_type=source_type,
            source=source,
            schema=json.dumps({"shape": list(data.shape), "dtype": str(data.dtype)}),
            profile=json.dumps({"num_rows": int(data.shape[0]) if data.ndim else 1}),
        )
    raise InvalidInput(
        f"Cannot fingerprint a {type(data).__name__}: pass a pandas DataFrame or a numpy array"
    )
