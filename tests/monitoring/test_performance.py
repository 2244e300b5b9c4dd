"""Realized metrics equal scikit-learn's; undefined ones are None with a reason; labels join."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn import metrics as sk

from conveyor.errors import InvalidInput
from conveyor.monitoring import classification_metrics, join_labels, regression_metrics


@pytest.fixture
def binary() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    proba = rng.beta(2, 2, 2000)
    truth = (rng.random(2000) < proba).astype(int)
    return truth, (proba > 0.5).astype(int), proba


def test_binary_metrics_equal_sklearn(binary) -> None:
    truth, predicted, proba = binary
    m = classification_metrics(truth, predicted, proba=proba)
    assert m.average == "binary" and m.classes == [0, 1] and not m.estimated
    assert m.accuracy == pytest.approx(sk.accuracy_score(truth, predicted))
    assert m.precision == pytest.approx(sk.precision_score(truth, predicted))
    assert m.recall == pytest.approx(sk.recall_score(truth, predicted))
    assert m.f1 == pytest.approx(sk.f1_score(truth, predicted))
    assert m.roc_auc == pytest.approx(sk.roc_auc_score(truth, proba), rel=1e-12)
    assert m.log_loss == pytest.approx(sk.log_loss(truth, proba), rel=1e-9)
    two_columns = classification_metrics(truth, predicted, proba=np.column_stack([1 - proba, proba]))
    assert two_columns.roc_auc == pytest.approx(m.roc_auc) and two_columns.log_loss == pytest.approx(
        m.log_loss
    )


def test_multiclass_metrics_equal_sklearn() -> None:
    rng = np.random.default_rng(1)
    proba = rng.dirichlet([1, 2, 3], 1500)
    classes = ["a", "b", "c"]
    truth = np.array([rng.choice(classes, p=p) for p in proba])
    predicted = np.array(classes)[proba.argmax(axis=1)]
    m = classification_metrics(truth, predicted, proba=proba, classes=classes)
    assert m.average == "macro"
    assert m.precision == pytest.approx(sk.precision_score(truth, predicted, average="macro"))
    assert m.recall == pytest.approx(sk.recall_score(truth, predicted, average="macro"))
    assert m.f1 == pytest.approx(sk.f1_score(truth, predicted, average="macro"))
    assert m.roc_auc == pytest.approx(
        sk.roc_auc_score(truth, proba, multi_class="ovr", labels=classes), rel=1e-12
    )
    assert m.log_loss == pytest.approx(sk.log_loss(truth, proba, labels=classes), rel=1e-9)


def test_one_class_window_has_no_auc_but_a_reason(binary) -> None:
    _, _, proba = binary
    m = classification_metrics(
        np.ones(50, int), (proba[:50] > 0.5).astype(int), proba=proba[:50], classes=[0, 1]
    )
    assert m.roc_auc is None and m.reasons["roc_auc"] == "only one class in the window's labels"
    assert m.accuracy is not None
    json.dumps(m.to_dict(), allow_nan=False)
    none = classification_metrics([1, 1], [0, 0], classes=[0, 1])
    assert none.precision == 0.0 and none.reasons["precision"] == "no predicted positives"
    assert none.reasons["roc_auc"] == "no probabilities given"


def test_missing_labels_are_left_out_and_counted(binary) -> None:
    truth, predicted, proba = binary
    labels = truth.astype(float)
    labels[:100] = np.nan
    m = classification_metrics(labels, predicted, proba=proba)
    assert (m.n, m.n_missing) == (1900, 100)
    assert m.accuracy == pytest.approx(sk.accuracy_score(truth[100:], predicted[100:]))
    empty = classification_metrics([np.nan, np.nan], [1, 0])
    assert empty.n == 0 and empty.accuracy is None and "all" in empty.reasons


def test_mismatched_lengths_are_refused_precisely(binary) -> None:
    truth, predicted, proba = binary
    with pytest.raises(InvalidInput, match="y_true has 2000 rows, y_pred has 1999 rows"):
        classification_metrics(truth, predicted[1:])
    with pytest.raises(InvalidInput, match="proba has 10 rows"):
        classification_metrics(truth, predicted, proba=proba[:10])
    with pytest.raises(InvalidInput, match="proba has 2 columns but there are 3 classes"):
        classification_metrics(truth, predicted, proba=np.ones((2000, 2)), classes=[0, 1, 2])
    with pytest.raises(InvalidInput, match="y_true has 3 rows, y_pred has 2 rows"):
        regression_metrics([1, 2, 3], [1, 2])


def test_regression_metrics_equal_sklearn() -> None:
    rng = np.random.default_rng(2)
    truth = rng.normal(10, 3, 1000)
    predicted = truth + rng.normal(0, 1, 1000)
    m = regression_metrics(pd.Series(truth), pa.array(predicted))
    assert m.mae == pytest.approx(sk.mean_absolute_error(truth, predicted))
    assert m.rmse == pytest.approx(np.sqrt(sk.mean_squared_error(truth, predicted)))
    assert m.r2 == pytest.approx(sk.r2_score(truth, predicted))
    constant = regression_metrics([2.0, 2.0, np.nan], [1.0, 3.0, 2.0])
    assert constant.r2 is None and constant.reasons["r2"] == "labels are constant in the window"
    assert (constant.n, constant.n_missing, constant.mae) == (2, 1, 1.0)


def test_join_labels_dedupes_and_counts_unknown_ids() -> None:
    predictions = pd.DataFrame(
        {"request_id": ["r1", "r1", "r2", "r3"], "row": [0, 1, 0, 0], "output.prediction": [1, 0, 1, 1]}
    )
    labels = pa.table(
        {
            "request_id": ["r1", "r2", "r2", "r9", "r1"],
            "row": [0, 0, 0, 0, 1],
            "label": [1, 0, 1, 1, 0],
            "received_at": pd.to_datetime(
                ["2024-01-01", "2024-01-03", "2024-01-02", "2024-01-01", "2024-01-01"]
            ),
        }
    )
    joined = join_labels(predictions, labels)
    assert joined.to_dict() == {"n_labels": 5, "n_matched": 3, "n_unknown": 1, "n_duplicates": 1}
    by_key = joined.frame.set_index(["request_id", "row"])["label"].to_dict()
    assert by_key == {("r1", 0): 1, ("r1", 1): 0, ("r2", 0): 0}  # r2: the later label wins
    with pytest.raises(InvalidInput, match=r"labels lacks the columns \['label'\]"):
        join_labels(predictions, labels.drop(["label"]))
