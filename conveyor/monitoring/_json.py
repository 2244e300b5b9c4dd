"""JSON-safe conversion shared by every result's ``to_dict``.

Results are stored as time series and rendered as HTML and Prometheus gauges by later
steps, so they must survive ``json.dumps`` with ``allow_nan=False``: NaN and infinities
become ``None``, numpy scalars and arrays become plain Python values.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np


def json_safe(value: Any) -> Any:
    """``value`` with NaN/inf as None, numpy types as Python types, dataclasses as dicts."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: json_safe(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return [json_safe(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
