"""CBPE: estimated performance without labels is close to the realized one."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.special import expit, logit
from sklearn.isotonic import IsotonicRegression

from conveyor.errors import InvalidInput
from conveyor.monitoring import CBPE, classification_metrics, fit_cbpe
from conveyor.monitoring.estimation import fit_isotonic

METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")


def true_probability(scores: np.ndarray) -> np.ndarray:
    """The model is over-confident: its scores are not the real odds (Platt's family)."""
    return expit(0.6 * logit(scores) + 0.2)


def draw(n: int, a: float, b: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scores = rng.beta(a, b, n)
    return scores, (rng.random(n) < true_probability(scores)).astype(int)


def test_isotonic_fit_equals_sklearn() -> None:
    rng = np.random.default_rng(0)
    scores = np.round(rng.random(3000), 3)  # ties, as real scores have
    targets = (rng.random(3000) < scores**2).astype(float)
    ours = fit_isotonic(scores, targets)
    theirs = IsotonicRegression(out_of_bounds="clip").fit(scores, targets)
    grid = np.linspace(-0.1, 1.1, 500)
    np.testing.assert_allclose(ours(grid), theirs.predict(grid), atol=1e-12)


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_binary_estimate_is_close_to_realized_under_covariate_shift(method: str) -> None:
    reference_scores, reference_labels = draw(20_000, 2, 2, seed=1)
    estimator = fit_cbpe(reference_scores, reference_labels, method=method)
    scores, labels = draw(20_000, 2, 4, seed=2)  # more negatives than in the reference
    estimate = estimator.estimate(scores)
    realized = classification_metrics(labels, (scores > 0.5).astype(int), proba=scores)
    assert estimate.estimated and estimate.calibration == method and not realized.estimated
    for metric in METRICS:
        assert getattr(estimate, metric) == pytest.approx(getattr(realized, metric), abs=0.02), metric
    assert estimate.log_loss == pytest.approx(realized.log_loss, abs=0.02)


def test_multiclass_estimate_is_close_to_realized() -> None:
    rng = np.random.default_rng(3)
    classes = ["low", "mid", "high"]

    def window(n: int, alpha: list[float]) -> tuple[np.ndarray, np.ndarray]:
        proba = rng.dirichlet(alpha, n)
        labels = np.array(classes)[(rng.random(n)[:, None] > np.cumsum(proba, axis=1)).sum(axis=1)]
        return proba, labels

    estimator = fit_cbpe(*window(20_000, [1, 1, 1]), classes=classes)
    proba, labels = window(20_000, [2, 1, 1])
    estimate = estimator.estimate(proba)
    realized = classification_metrics(
        labels, np.array(classes)[proba.argmax(axis=1)], proba=proba, classes=classes
    )
    for metric in METRICS:
        assert getattr(estimate, metric) == pytest.approx(getattr(realized, metric), abs=0.02), metric


def test_estimator_round_trips_through_json() -> None:
    estimator = fit_cbpe(*draw(5000, 2, 2, seed=4))
    again = CBPE.from_dict(json.loads(json.dumps(estimator.to_dict())))
    scores, _ = draw(1000, 2, 3, seed=5)
    assert again.estimate(scores) == estimator.estimate(scores)
    json.dumps(estimator.estimate(scores[:0]).to_dict(), allow_nan=False)


def test_bad_input_is_refused() -> None:
    scores, labels = draw(100, 2, 2, seed=6)
    with pytest.raises(InvalidInput, match="at least two classes"):
        fit_cbpe(scores, np.ones(100))
    with pytest.raises(InvalidInput, match="calibration must be one of"):
        fit_cbpe(scores, labels, method="beta")
    with pytest.raises(InvalidInput, match="proba has 99 rows, labels has 100 rows"):
        fit_cbpe(scores[1:], labels)
    with pytest.raises(InvalidInput, match=r"proba of shape \(100, 3\) does not fit 2 classes"):
        fit_cbpe(scores, labels).estimate(np.ones((100, 3)))
    labels_with_gaps = labels.astype(float)
    labels_with_gaps[:10] = np.nan
    assert fit_cbpe(scores, labels_with_gaps).classes == [0.0, 1.0]
