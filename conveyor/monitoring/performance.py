"""Realized model performance once labels arrive, and joining labels to logged predictions.

Metrics equal scikit-learn's on the same data (the tests compare them): accuracy,
precision, recall and F1 (binary for the positive class, or macro over the classes that
occur for multiclass; an undefined ratio is 0 with a reason, as ``zero_division=0``), ROC
AUC (binary, or one-vs-rest macro) and log loss for classifiers; MAE, RMSE and R² for
regressors. Where a metric is undefined it is None and ``reasons`` says why: ROC AUC with
one class, R² with constant labels. Rows whose label or prediction is missing are left out
and counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    import pandas as pd

from conveyor.errors import InvalidInput
from conveyor.monitoring._json import json_safe

KEYS = ("request_id", "row")


def _pandas() -> Any:
    """pandas, imported on first use: ``import conveyor.monitoring`` does not load it (50 MB)."""
    import pandas

    return pandas


@dataclass(frozen=True)
class ClassificationMetrics:
    """Classifier performance on one window, realized or (``estimated=True``) estimated by CBPE."""

    n: int
    classes: list[Any]
    average: str
    accuracy: float | None = None
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    roc_auc: float | None = None
    log_loss: float | None = None
    n_missing: int = 0
    reasons: dict[str, str] = field(default_factory=dict)
    estimated: bool = False
    calibration: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (no NaN)."""
        return json_safe(self)


@dataclass(frozen=True)
class RegressionMetrics:
    """Regressor performance on one window."""

    n: int
    mae: float | None = None
    rmse: float | None = None
    r2: float | None = None
    n_missing: int = 0
    reasons: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (no NaN)."""
        return json_safe(self)


def as_array(values: Any, name: str) -> np.ndarray:
    """A 1-D or 2-D numpy array from a list, Series, DataFrame or Arrow array."""
    if isinstance(values, pa.ChunkedArray | pa.Array):
        values = values.to_pandas()
    array = np.asarray(values)
    if array.ndim not in (1, 2):
        raise InvalidInput(f"{name} must be one- or two-dimensional, got shape {array.shape}")
    return array


def check_lengths(**arrays: np.ndarray | None) -> int:
    """The common length of the arrays given, or InvalidInput naming the ones that differ."""
    given = {name: len(a) for name, a in arrays.items() if a is not None}
    if len(set(given.values())) > 1:
        detail = ", ".join(f"{name} has {n} rows" for name, n in given.items())
        raise InvalidInput(f"inputs must have the same length: {detail}")
    return next(iter(given.values()), 0)


def present(*arrays: np.ndarray | None) -> np.ndarray:
    """Rows where none of the arrays has a missing value."""
    keep: np.ndarray | None = None
    for array in arrays:
        if array is None:
            continue
        missing = _pandas().isna(array)
        row_missing = missing.any(axis=1) if missing.ndim == 2 else missing
        keep = ~row_missing if keep is None else keep & ~row_missing
    return keep


def sorted_classes(*arrays: np.ndarray) -> list[Any]:
    found = set()
    for array in arrays:
        found.update(_pandas().unique(array).tolist())
    return sorted(found, key=lambda v: (type(v).__name__, v))


def _ratio(numerator: float, denominator: float, metric: str, why: str, reasons: dict[str, str]) -> float:
    if denominator == 0:
        reasons[metric] = why
        return 0.0
    return numerator / denominator


def binary_auc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """ROC AUC as the Mann-Whitney U statistic (ties count half); None with one class."""
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def classification_metrics(
    y_true: Any,
    y_pred: Any,
    *,
    proba: Any = None,
    classes: Sequence[Any] | None = None,
    pos_label: Any = None,
) -> ClassificationMetrics:
    """Realized classifier metrics on one window.

    Args:
        y_true: true labels (missing ones are left out and counted in ``n_missing``).
        y_pred: predicted labels.
        proba: predicted probabilities: ``(n, len(classes))``, or ``(n,)`` for the positive
            class of a binary problem. Needed for ROC AUC and log loss.
        classes: all classes, in the order of ``proba``'s columns; default: the sorted
            labels that occur in ``y_true`` and ``y_pred``.
        pos_label: the positive class of a binary problem; default the second class.

    Raises:
        InvalidInput: inputs of different lengths, or ``proba`` that does not match ``classes``.
    """
    truth, predicted = as_array(y_true, "y_true"), as_array(y_pred, "y_pred")
    scores = None if proba is None else as_array(proba, "proba").astype(float)
    check_lengths(y_true=truth, y_pred=predicted, proba=scores)
    keep = present(truth, predicted, scores)
    truth, predicted = truth[keep], predicted[keep]
    scores = None if scores is None else scores[keep]
    classes = list(classes) if classes is not None else sorted_classes(truth, predicted)
    if scores is not None and scores.ndim == 2 and scores.shape[1] != len(classes):
        raise InvalidInput(
            f"proba has {scores.shape[1]} columns but there are {len(classes)} classes {classes}"
        )
    binary = len(classes) <= 2 and (scores is None or scores.ndim == 1 or scores.shape[1] == 2)
    reasons: dict[str, str] = {}
    base = {"n": int(truth.size), "classes": classes, "n_missing": int((~keep).sum()), "reasons": reasons}
    if truth.size == 0:
        reasons["all"] = "no labelled rows in the window"
        return ClassificationMetrics(average="binary" if binary else "macro", **base)
    accuracy = float(np.mean(truth == predicted))
    if binary:
        positive = classes[-1] if pos_label is None else pos_label
        precision, recall, f1 = _binary_prf(truth == positive, predicted == positive, reasons)
        auc, loss = _binary_scores(truth, scores, classes, positive, reasons)
        return ClassificationMetrics(
            average="binary",
            accuracy=accuracy,
            precision=precision,
            recall=recall,
            f1=f1,
            roc_auc=auc,
            log_loss=loss,
            **base,
        )
    precision, recall, f1 = _macro_prf(truth, predicted)
    auc, loss = _multiclass_scores(truth, scores, classes, reasons)
    return ClassificationMetrics(
        average="macro",
        accuracy=accuracy,
        precision=precision,
        recall=recall,
        f1=f1,
        roc_auc=auc,
        log_loss=loss,
        **base,
    )


def _binary_prf(
    actual: np.ndarray, flagged: np.ndarray, reasons: dict[str, str]
) -> tuple[float, float, float]:
    tp = float(np.sum(actual & flagged))
    fp = float(np.sum(~actual & flagged))
    fn = float(np.sum(actual & ~flagged))
    precision = _ratio(tp, tp + fp, "precision", "no predicted positives", reasons)
    recall = _ratio(tp, tp + fn, "recall", "no actual positives", reasons)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn, "f1", "no positives, predicted or actual", reasons)
    return precision, recall, f1


def _macro_prf(truth: np.ndarray, predicted: np.ndarray) -> tuple[float, float, float]:
    per_class = [_binary_prf(truth == c, predicted == c, {}) for c in sorted_classes(truth, predicted)]
    means = np.mean(np.array(per_class), axis=0)
    return float(means[0]), float(means[1]), float(means[2])


def _log_loss(p_true: np.ndarray) -> float:
    eps = np.finfo(float).eps
    return float(-np.mean(np.log(np.clip(p_true, eps, 1 - eps))))


def _binary_scores(
    truth: np.ndarray, scores: np.ndarray | None, classes: list[Any], positive: Any, reasons: dict[str, str]
) -> tuple[float | None, float | None]:
    if scores is None:
        reasons["roc_auc"] = reasons["log_loss"] = "no probabilities given"
        return None, None
    score = scores if scores.ndim == 1 else scores[:, classes.index(positive)]
    actual = truth == positive
    auc = binary_auc(score, actual)
    if auc is None:
        reasons["roc_auc"] = "only one class in the window's labels"
    return auc, _log_loss(np.where(actual, score, 1 - score))


def _multiclass_scores(
    truth: np.ndarray, scores: np.ndarray | None, classes: list[Any], reasons: dict[str, str]
) -> tuple[float | None, float | None]:
    if scores is None or scores.ndim != 2:
        reasons["roc_auc"] = reasons["log_loss"] = "no probability matrix given"
        return None, None
    aucs = [binary_auc(scores[:, i], truth == c) for i, c in enumerate(classes)]
    defined = [a for a in aucs if a is not None]
    if len(defined) < len(aucs):
        reasons["roc_auc"] = "one-vs-rest macro over the classes that occur in the window's labels"
    if not defined:
        reasons["roc_auc"] = "only one class in the window's labels"
    column = _pandas().Index(classes).get_indexer(truth)
    if (column < 0).any():
        raise InvalidInput(
            f"labels {sorted(set(truth[column < 0].tolist()))} are not among the classes {classes}"
        )
    loss = _log_loss(scores[np.arange(truth.size), column])
    return (float(np.mean(defined)) if defined else None), loss


def regression_metrics(y_true: Any, y_pred: Any) -> RegressionMetrics:
    """Realized regressor metrics (MAE, RMSE, R²) on one window.

    Raises:
        InvalidInput: inputs of different lengths.
    """
    truth = as_array(y_true, "y_true").astype(float)
    predicted = as_array(y_pred, "y_pred").astype(float)
    check_lengths(y_true=truth, y_pred=predicted)
    keep = present(truth, predicted)
    truth, predicted = truth[keep], predicted[keep]
    reasons: dict[str, str] = {}
    if truth.size == 0:
        reasons["all"] = "no labelled rows in the window"
        return RegressionMetrics(n=0, n_missing=int((~keep).sum()), reasons=reasons)
    error = truth - predicted
    total = float(np.sum(np.square(truth - truth.mean())))
    r2 = None
    if total == 0:
        reasons["r2"] = "labels are constant in the window"
    else:
        r2 = 1.0 - float(np.sum(np.square(error))) / total
    return RegressionMetrics(
        n=int(truth.size),
        mae=float(np.mean(np.abs(error))),
        rmse=float(np.sqrt(np.mean(np.square(error)))),
        r2=r2,
        n_missing=int((~keep).sum()),
        reasons=reasons,
    )


@dataclass(frozen=True)
class LabelJoin:
    """Predictions with their labels, and what happened to the labels on the way."""

    frame: pd.DataFrame
    n_labels: int
    n_matched: int
    n_unknown: int
    n_duplicates: int

    def to_dict(self) -> dict[str, int]:
        """The counts (not the frame)."""
        return {
            "n_labels": self.n_labels,
            "n_matched": self.n_matched,
            "n_unknown": self.n_unknown,
            "n_duplicates": self.n_duplicates,
        }


def _frame(data: Any, name: str, needed: Sequence[str]) -> pd.DataFrame:
    pd = _pandas()
    frame = data.to_pandas() if isinstance(data, pa.Table | pa.RecordBatch) else data
    if not isinstance(frame, pd.DataFrame):
        raise InvalidInput(f"{name} must be a pandas DataFrame or a pyarrow Table, got {type(data).__name__}")
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise InvalidInput(f"{name} lacks the columns {missing}; it has {list(frame.columns)}")
    return frame


def join_labels(predictions: Any, labels: Any) -> LabelJoin:
    """Attach labels (``request_id, row, label[, received_at]``) to logged predictions.

    A label that arrives twice for one ``(request_id, row)`` counts once: the latest by
    ``received_at`` (else the last given) wins. Labels for unknown predictions are counted
    and dropped; predictions without a label are dropped (they stay for estimation).

    Raises:
        InvalidInput: a table lacks the key columns or ``label``.
    """
    logged = _frame(predictions, "predictions", KEYS)
    given = _frame(labels, "labels", (*KEYS, "label"))
    if "received_at" in given.columns:
        given = given.sort_values("received_at", kind="stable")
    latest = given.drop_duplicates(list(KEYS), keep="last")
    columns = [*KEYS, "label", *(["received_at"] if "received_at" in latest.columns else [])]
    joined = logged.drop(columns=[c for c in ("label", "received_at") if c in logged.columns]).merge(
        latest[columns], on=list(KEYS), how="inner"
    )
    pd = _pandas()
    known = pd.MultiIndex.from_frame(latest[list(KEYS)]).isin(pd.MultiIndex.from_frame(logged[list(KEYS)]))
    return LabelJoin(
        frame=joined,
        n_labels=len(given),
        n_matched=len(joined),
        n_unknown=int((~known).sum()),
        n_duplicates=len(given) - len(latest),
    )
