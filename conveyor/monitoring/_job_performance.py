"""A window's performance: realized from joined labels, else estimated by CBPE, else none.

Labels and predictions arrive with whatever types their writers chose (a label ``1`` sent
as JSON, a prediction ``1`` from an int64 column, a probability column named
``output.proba_1``), so both sides are brought to one representation before comparing:
numbers when both are numeric (booleans included), else text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from conveyor.monitoring._job_window import PROBA_PREFIX, WindowPartial
from conveyor.monitoring.estimation import CBPE
from conveyor.monitoring.performance import (
    ClassificationMetrics,
    RegressionMetrics,
    classification_metrics,
    regression_metrics,
)

Performance = ClassificationMetrics | RegressionMetrics


def window_performance(
    partial: WindowPartial, *, task: str | None, cbpe: CBPE | None, classes: Sequence[Any] | None
) -> tuple[Performance | None, dict[str, Any]]:
    """Realized metrics when the window has labelled rows, else a CBPE estimate, else None.

    Returns the metrics and what to record about them (counts, kind, sampling).
    """
    spec = partial.spec
    labels = spec.labels.num_rows if spec.labels is not None else 0
    details: dict[str, Any] = {
        "labels_read": labels,
        "labelled_rows": partial.matched,
        "labels_unmatched": max(labels - partial.matched, 0),
    }
    labelled = partial.labelled.table
    if labelled is not None and labelled.num_rows and spec.prediction is not None:
        kind = task or infer_task(labelled["label"], labelled[spec.prediction], spec.proba)
        sampled = partial.labelled.seen > labelled.num_rows
        details |= {"performance": "realized", "task": kind, "sampled": sampled}
        if kind == "regression":
            return _regression(labelled, spec.prediction), details
        return _classification(labelled, spec.prediction, spec.proba, classes), details
    scores = partial.scores.table
    if cbpe is not None and scores is not None and scores.num_rows:
        details |= {"performance": "estimated", "task": "classification"}
        details["sampled"] = partial.scores.seen > scores.num_rows
        return cbpe.estimate(_matrix(scores, spec.proba, cbpe)), details
    details["performance"] = "none"
    return None, details


def infer_task(labels: pa.ChunkedArray, predictions: pa.ChunkedArray, proba: Sequence[str]) -> str:
    """Classification with probabilities, text or booleans, or whole numbers; else regression."""
    if proba:
        return "classification"
    for column in (labels, predictions):
        kind = column.type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_boolean(kind):
            return "classification"
    values = np.asarray(predictions.to_numpy(zero_copy_only=False), dtype=float)
    values = values[np.isfinite(values)]
    return "classification" if values.size and np.all(values == np.round(values)) else "regression"


def _regression(table: pa.Table, prediction: str) -> RegressionMetrics:
    truth = np.asarray(table["label"].to_numpy(zero_copy_only=False), dtype=float)
    predicted = np.asarray(table[prediction].to_numpy(zero_copy_only=False), dtype=float)
    return regression_metrics(truth, predicted)


def _classification(
    table: pa.Table, prediction: str, proba: Sequence[str], classes: Sequence[Any] | None
) -> ClassificationMetrics:
    truth, predicted = _values(table["label"]), _values(table[prediction])
    numeric = truth.dtype.kind in "fiub" and predicted.dtype.kind in "fiub"
    truth, predicted = _common(truth, numeric), _common(predicted, numeric)
    given = list(classes) if classes else [_suffix(n) for n in proba]
    columns = _by_class(proba, given)
    chosen = _classes(given, numeric)
    scores = None
    if columns and chosen is not None and all(table[n].null_count < table.num_rows for n in columns):
        scores = np.column_stack([_floats(table[n]) for n in columns])
    else:
        chosen = None  # without a probability per class, the classes seen are the whole world
    return classification_metrics(truth, predicted, proba=scores, classes=chosen)


def _by_class(proba: Sequence[str], classes: Sequence[Any]) -> list[str] | None:
    """The probability column of each class, in the order of ``classes``; None if one lacks it."""
    by_suffix = {_suffix(name): name for name in proba}
    found = [by_suffix.get(_text(c), by_suffix.get(str(c))) for c in classes]
    return None if not found or None in found else [name for name in found if name is not None]


def _matrix(scores: pa.Table, proba: Sequence[str], cbpe: CBPE) -> np.ndarray:
    """Probabilities in the order of the CBPE's classes (``output.proba_<class>``); NaN if absent."""
    by_suffix = {_suffix(name): name for name in proba}
    ordered = [by_suffix.get(_text(c), by_suffix.get(str(c))) for c in cbpe.classes]
    columns = [_floats(scores[n]) if n else np.full(scores.num_rows, np.nan) for n in ordered]
    return np.column_stack(columns)


def _suffix(name: str) -> str:
    return name[len(PROBA_PREFIX) :] if name.startswith(PROBA_PREFIX) else name


def _classes(given: Sequence[Any], numeric: bool) -> list[Any] | None:
    """The classes in the labels' representation; None when they cannot be (or none are known)."""
    if not given:
        return None
    try:
        return _common(np.asarray(list(given), dtype=object), numeric).tolist()
    except ValueError:
        return None


def _values(column: pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_boolean(column.type):
        column = column.cast(pa.float64())
    return column.to_numpy(zero_copy_only=False)


def _floats(column: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=float)


def _common(values: np.ndarray, numeric: bool) -> np.ndarray:
    """Numbers as float64, or everything as text (whole numbers without ``.0``); None stays None."""
    if numeric:
        return np.array([np.nan if v is None else _number(v) for v in values.tolist()], dtype=float)
    return np.array([None if _missing(v) else _text(v) for v in values.tolist()], dtype=object)


def _number(value: Any) -> float:
    if isinstance(value, str):
        lowered = value.strip().lower()
        return {"true": 1.0, "false": 0.0}.get(lowered, float(lowered))
    return float(value)


def _text(value: Any) -> str:
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))
