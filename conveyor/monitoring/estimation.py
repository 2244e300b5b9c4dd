"""Classifier performance before labels arrive: confidence-based performance estimation (CBPE).

NannyML's method: if the model's probabilities are calibrated, a prediction scored ``p``
for the positive class is right with probability ``p``, so the expected confusion matrix
of a window is a sum of probabilities, with no label needed:

    E[TP] = sum of p over predicted positives     E[FP] = sum of (1 - p) over them
    E[FN] = sum of p over predicted negatives     E[TN] = sum of (1 - p) over them

Accuracy, precision, recall and F1 follow from it (ratios of expectations), ROC AUC from
the expected ROC curve (each row counts ``p`` as a positive and ``1 - p`` as a negative).
Multiclass: one-vs-rest per class, macro averaged; calibrated rows renormalized to sum to 1.

Models are rarely calibrated, so :func:`fit_cbpe` first learns a calibration from
reference predictions with labels (isotonic regression by default, Platt scaling on
request). The estimate holds while the relation between scores and outcomes stays as in
the reference (covariate shift is fine, concept drift is not) and is marked
``estimated=True`` with the calibration used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from conveyor.errors import InvalidInput
from conveyor.monitoring.performance import (
    ClassificationMetrics,
    as_array,
    check_lengths,
    present,
    sorted_classes,
)

CALIBRATIONS = ("isotonic", "platt")


@dataclass(frozen=True)
class Calibrator:
    """A monotone map from a model's score to a calibrated probability.

    Isotonic: piecewise linear through ``points`` (x, y), clipped at the ends, as
    scikit-learn's ``IsotonicRegression(out_of_bounds="clip")``. Platt: ``expit(a * logit(s) + b)``.
    """

    method: str
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()
    a: float = 1.0
    b: float = 0.0

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        if self.method == "isotonic":
            return np.interp(scores, self.x, self.y)
        from scipy.special import expit

        return expit(self.a * _logit(scores) + self.b)


def _logit(scores: np.ndarray) -> np.ndarray:
    from scipy.special import logit

    return logit(np.clip(scores, 1e-12, 1 - 1e-12))


def _pava(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted least-squares non-decreasing fit (pool adjacent violators)."""
    means: list[float] = []
    totals: list[float] = []
    sizes: list[int] = []
    for value, weight in zip(values.tolist(), weights.tolist(), strict=True):
        means.append(value)
        totals.append(weight)
        sizes.append(1)
        while len(means) > 1 and means[-2] > means[-1]:
            weight_sum = totals[-2] + totals[-1]
            means[-2] = (means[-2] * totals[-2] + means[-1] * totals[-1]) / weight_sum
            totals[-2] = weight_sum
            sizes[-2] += sizes[-1]
            del means[-1], totals[-1], sizes[-1]
    return np.repeat(means, sizes)


def fit_isotonic(scores: np.ndarray, targets: np.ndarray) -> Calibrator:
    """Isotonic calibration of ``scores`` against 0/1 ``targets``."""
    x, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    means = np.bincount(inverse, weights=targets) / counts
    fitted = _pava(means, counts.astype(float))
    # Only the ends of each flat run matter to the interpolation: drop the rest.
    change = np.flatnonzero(np.diff(fitted)) if fitted.size > 1 else np.array([], dtype=int)
    keep = np.unique(np.concatenate([[0], change, change + 1, [fitted.size - 1]]))
    return Calibrator("isotonic", x=tuple(x[keep].tolist()), y=tuple(fitted[keep].tolist()))


def fit_platt(scores: np.ndarray, targets: np.ndarray) -> Calibrator:
    """Platt scaling: logistic regression of ``targets`` on ``logit(scores)``."""
    # scipy is imported where it is used: ``import conveyor.monitoring`` stays light.
    from scipy.optimize import minimize
    from scipy.special import expit

    z = _logit(scores)

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        p = np.clip(expit(params[0] * z + params[1]), 1e-15, 1 - 1e-15)
        residual = p - targets
        value = -np.sum(targets * np.log(p) + (1 - targets) * np.log(1 - p))
        return float(value), np.array([np.sum(residual * z), np.sum(residual)])

    result = minimize(loss, x0=np.array([1.0, 0.0]), jac=True, method="BFGS")
    return Calibrator("platt", a=float(result.x[0]), b=float(result.x[1]))


def _expected_auc(scores: np.ndarray, p: np.ndarray) -> float | None:
    """ROC AUC expected when row i is positive with probability p[i] (ratio of expectations)."""
    q = 1.0 - p
    _, group = np.unique(scores, return_inverse=True)
    pos, neg, both = (np.bincount(group, weights=w) for w in (p, q, p * q))
    neg_below = np.cumsum(neg) - neg
    pairs = p.sum() * q.sum() - both.sum()
    if pairs <= 0:
        return None
    return float((np.sum(pos * neg_below) + 0.5 * np.sum(pos * neg - both)) / pairs)


def _expected_prf(p: np.ndarray, flagged: np.ndarray) -> tuple[float, float, float]:
    tp, fp, fn = p[flagged].sum(), (1 - p[flagged]).sum(), p[~flagged].sum()
    precision = tp / (tp + fp) if tp + fp > 0 else 0.0
    recall = tp / (tp + fn) if tp + fn > 0 else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn > 0 else 0.0
    return float(precision), float(recall), float(f1)


@dataclass(frozen=True)
class CBPE:
    """A fitted estimator: the classes and one calibrator per class (one for binary)."""

    classes: list[Any]
    calibrators: list[Calibrator]
    method: str

    @property
    def binary(self) -> bool:
        return len(self.classes) == 2

    def calibrated(self, proba: np.ndarray) -> np.ndarray:
        """Calibrated probabilities: ``(n,)`` of the positive class, or ``(n, k)`` rows summing to 1."""
        if self.binary:
            return self.calibrators[0](_positive_scores(proba))
        matrix = np.column_stack([cal(proba[:, i]) for i, cal in enumerate(self.calibrators)])
        totals = matrix.sum(axis=1, keepdims=True)
        return np.divide(matrix, totals, out=np.full_like(matrix, 1 / matrix.shape[1]), where=totals > 0)

    def estimate(self, proba: Any) -> ClassificationMetrics:
        """Estimated accuracy, precision, recall, F1, ROC AUC and log loss of a window.

        The predicted label is the class of highest probability (positive when its
        probability is above 0.5), as ``predict`` of scikit-learn classifiers.

        Raises:
            InvalidInput: ``proba`` whose shape does not fit the classes.
        """
        scores = _check_proba(as_array(proba, "proba").astype(float), len(self.classes))
        scores = scores[present(scores)]
        base = {"n": len(scores), "classes": self.classes, "estimated": True, "calibration": self.method}
        if len(scores) == 0:
            return ClassificationMetrics(
                average="binary" if self.binary else "macro", reasons={"all": "empty window"}, **base
            )
        return self._binary(scores, base) if self.binary else self._multiclass(scores, base)

    def _binary(self, proba: np.ndarray, base: dict[str, Any]) -> ClassificationMetrics:
        score = _positive_scores(proba)
        p = self.calibrators[0](score)
        flagged = score > 0.5
        precision, recall, f1 = _expected_prf(p, flagged)
        auc = _expected_auc(score, p)
        loss = float(
            -np.mean(p * np.log(np.clip(score, 1e-15, 1)) + (1 - p) * np.log(np.clip(1 - score, 1e-15, 1)))
        )
        return ClassificationMetrics(
            average="binary",
            accuracy=float(np.mean(np.where(flagged, p, 1 - p))),
            precision=precision,
            recall=recall,
            f1=f1,
            roc_auc=auc,
            log_loss=loss,
            reasons={} if auc is not None else {"roc_auc": "calibrated probabilities are all 0 or all 1"},
            **base,
        )

    def _multiclass(self, proba: np.ndarray, base: dict[str, Any]) -> ClassificationMetrics:
        p = self.calibrated(proba)
        predicted = np.argmax(proba, axis=1)
        per_class = np.array([_expected_prf(p[:, i], predicted == i) for i in range(len(self.classes))])
        aucs = [a for i in range(len(self.classes)) if (a := _expected_auc(proba[:, i], p[:, i])) is not None]
        loss = float(-np.mean(np.sum(p * np.log(np.clip(proba, 1e-15, 1)), axis=1)))
        return ClassificationMetrics(
            average="macro",
            accuracy=float(np.mean(p[np.arange(len(p)), predicted])),
            precision=float(per_class[:, 0].mean()),
            recall=float(per_class[:, 1].mean()),
            f1=float(per_class[:, 2].mean()),
            roc_auc=float(np.mean(aucs)) if aucs else None,
            log_loss=loss,
            **base,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form, to store beside the reference profile."""
        return {
            "method": self.method,
            "classes": self.classes,
            "calibrators": [c.__dict__ for c in self.calibrators],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CBPE:
        """Read :meth:`to_dict`'s output."""
        calibrators = [
            Calibrator(c["method"], tuple(c["x"]), tuple(c["y"]), c["a"], c["b"]) for c in data["calibrators"]
        ]
        return cls(classes=list(data["classes"]), calibrators=calibrators, method=data["method"])


def _positive_scores(proba: np.ndarray) -> np.ndarray:
    return proba if proba.ndim == 1 else proba[:, 1]


def _check_proba(proba: np.ndarray, n_classes: int) -> np.ndarray:
    if proba.ndim == 1 and n_classes == 2:
        return proba
    if proba.ndim == 2 and proba.shape[1] == n_classes:
        return proba
    raise InvalidInput(
        f"proba of shape {proba.shape} does not fit {n_classes} classes: give (n, {n_classes})"
        + (" or (n,) for the positive class" if n_classes == 2 else "")
    )


def fit_cbpe(
    proba: Any, labels: Any, *, classes: Sequence[Any] | None = None, method: str = "isotonic"
) -> CBPE:
    """Fit CBPE's calibration on reference predictions (probabilities) and their true labels.

    Args:
        proba: ``(n, k)`` probabilities in the order of ``classes``, or ``(n,)`` of the
            positive (second) class for a binary model.
        labels: the true labels; rows with a missing label or probability are left out.
        classes: the model's classes; default the sorted labels.
        method: ``"isotonic"`` or ``"platt"``.

    Raises:
        InvalidInput: a bad method, lengths that differ, a shape that does not fit the
            classes, or fewer than two classes.
    """
    if method not in CALIBRATIONS:
        raise InvalidInput(f"calibration must be one of {CALIBRATIONS}, got {method!r}")
    scores, truth = as_array(proba, "proba").astype(float), as_array(labels, "labels")
    check_lengths(proba=scores, labels=truth)
    keep = present(scores, truth)
    scores, truth = scores[keep], truth[keep]
    classes = list(classes) if classes is not None else sorted_classes(truth)
    if len(classes) < 2:
        raise InvalidInput(f"CBPE needs at least two classes in the reference labels, got {classes}")
    scores = _check_proba(scores, len(classes))
    fit = fit_isotonic if method == "isotonic" else fit_platt
    if len(classes) == 2:
        calibrators = [fit(_positive_scores(scores), (truth == classes[1]).astype(float))]
    else:
        calibrators = [fit(scores[:, i], (truth == c).astype(float)) for i, c in enumerate(classes)]
    return CBPE(classes=classes, calibrators=calibrators, method=method)
