"""A training pipeline, end to end: validated data, a hyperparameter sweep, the best model.

Run it twice and the second run reuses every step from the cache. Parameters come from
``--param``: a new ``test_size`` re-runs ``split`` and what follows it, not ``load``; a
grid with one more entry trains only that entry::

    conveyor pipeline run examples/pipeline.py
    conveyor pipeline run examples/pipeline.py --param test_size=0.3 --executor process
    conveyor pipeline run examples/pipeline.py --param metric=accuracy \
        --param 'grid=[{"model": "logreg", "C": 0.5}, {"model": "forest", "n_estimators": 50}]'

The graph: ``load → validate → split → featurize → train[N] → evaluate[N] → pick_best``.
``train`` and ``evaluate`` fan out with ``.map``, one task per entry of ``grid``. Every
step returns a type Conveyor stores without pickle: DataFrames become Parquet, models
joblib files, dicts JSON. The data is scikit-learn's bundled breast-cancer set, so
nothing is downloaded. ``docs/pipelines.md`` explains each feature used here.
"""

from __future__ import annotations

from typing import Any, Literal

import pandas as pd
from sklearn.base import ClassifierMixin
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import conveyor
from conveyor import pipeline, step
from conveyor.pipelines import PipelineParameterError

TARGET = "target"
#: The sweep when ``--param grid=...`` is not given: one dict of settings per model.
GRID: list[dict[str, Any]] = [
    {"model": "logreg", "C": 0.01},
    {"model": "logreg", "C": 0.1},
    {"model": "logreg", "C": 1.0},
    {"model": "forest", "n_estimators": 100, "max_depth": 6},
]


@step
def load() -> pd.DataFrame:
    """The 569 tumours: 30 numeric measurements each, and ``target`` (0 malignant, 1 benign)."""
    return load_breast_cancer(as_frame=True).frame


@step
def validate(data: pd.DataFrame, min_rows: int = 100) -> pd.DataFrame:
    """Stop the run here, with the reason, rather than train on data that cannot be right."""
    problems = []
    if TARGET not in data.columns:
        problems.append(f"no {TARGET!r} column")
    features = data.drop(columns=[TARGET], errors="ignore")
    text = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if text:
        problems.append(f"non-numeric feature columns: {text}")
    missing = data.columns[data.isna().any()].tolist()
    if missing:
        problems.append(f"missing values in: {missing}")
    if not text and (features < 0).any().any():
        problems.append(f"negative measurements in: {features.columns[(features < 0).any()].tolist()}")
    if TARGET in data.columns and not set(data[TARGET].unique()) <= {0, 1}:
        problems.append(f"{TARGET!r} must be 0 or 1, found {sorted(data[TARGET].unique())}")
    if len(data) < min_rows:
        problems.append(f"only {len(data)} rows, at least {min_rows} needed")
    if problems:
        raise ValueError("invalid training data: " + "; ".join(problems))
    return data


@step
def split(data: pd.DataFrame, test_size: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and test sets, stratified so both keep the class balance."""
    train, test = train_test_split(data, test_size=test_size, random_state=seed, stratify=data[TARGET])
    return train, test


@step
def featurize(train: pd.DataFrame, test: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Standardise the features with statistics of the train set only, so no test data leaks."""
    columns = train.columns.drop(TARGET)
    scaler = StandardScaler().fit(train[columns])
    train_scaled, test_scaled = train.copy(), test.copy()
    train_scaled[columns] = scaler.transform(train[columns])
    test_scaled[columns] = scaler.transform(test[columns])
    return train_scaled, test_scaled


@step(retries=1, timeout="10m", resources={"cpu": 1})
def train(config: dict[str, Any], data: pd.DataFrame, seed: int) -> ClassifierMixin:
    """Fit the model one ``grid`` entry describes; its settings and fit go to its tracking run."""
    settings = {k: v for k, v in config.items() if k != "model"}
    if config["model"] == "logreg":
        model: ClassifierMixin = LogisticRegression(max_iter=1000, **settings)
    elif config["model"] == "forest":
        model = RandomForestClassifier(random_state=seed, n_jobs=1, **settings)
    else:
        raise ValueError(f"unknown model {config['model']!r} in grid: use 'logreg' or 'forest'")
    x, y = data.drop(columns=[TARGET]), data[TARGET]
    model.fit(x, y)
    conveyor.log_params(config)
    conveyor.log_metric("train_accuracy", float(model.score(x, y)))
    return model


@step
def evaluate(model: ClassifierMixin, data: pd.DataFrame) -> dict[str, float]:
    """Test-set metrics of one model, logged beside its training in the tracking store."""
    x, y = data.drop(columns=[TARGET]), data[TARGET]
    predicted = model.predict(x)
    metrics = {
        "accuracy": float(accuracy_score(y, predicted)),
        "f1": float(f1_score(y, predicted)),
        "roc_auc": float(roc_auc_score(y, model.predict_proba(x)[:, 1])),
    }
    conveyor.log_metrics(metrics)
    return metrics


@step
def pick_best(grid: list[dict[str, Any]], scores: list[dict[str, float]], metric: str) -> dict[str, Any]:
    """The grid entry with the best test ``metric``; ties go to the entry listed first."""
    best = max(range(len(grid)), key=lambda i: (scores[i][metric], -i))
    print(f"best of {len(grid)}: {grid[best]} with {metric} {scores[best][metric]:.4f}")
    return {"config": grid[best], "metric": metric, "score": scores[best][metric], "metrics": scores[best]}


@pipeline
def breast_cancer(
    test_size: float = 0.25,
    seed: int = 0,
    grid: list[dict[str, Any]] = GRID,
    metric: Literal["accuracy", "f1", "roc_auc"] = "roc_auc",
) -> None:
    """Train every model of ``grid`` and pick the one with the best test ``metric``."""
    if not grid:  # plain Python at build time: fail before anything runs
        raise PipelineParameterError('grid is empty: give at least one model, e.g. [{"model": "logreg"}]')
    data = validate(load())
    train_raw, test_raw = split(data, test_size=test_size, seed=seed)
    train_set, test_set = featurize(train_raw, test_raw)
    models = train.map(grid, data=train_set, seed=seed)
    scores = evaluate.map(models, data=test_set)
    pick_best(grid, scores, metric=metric)
