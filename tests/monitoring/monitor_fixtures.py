"""A served model with a reference profile, real Parquet prediction logs and real feedback.

Imported by the monitor-job tests (``from tests.monitoring.monitor_fixtures import …``).
The registry runs on SQLite or PostgreSQL (``backend`` fixture); each test registers its
own model name, since the PostgreSQL database is shared by the session. Predictions are
written with the serving team's :class:`PredictionLogger` and labels with its
:class:`FeedbackStore`, so the monitor reads exactly what a server writes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from conveyor import models
from conveyor.artifacts import ArtifactStore
from conveyor.monitoring.context import MonitorContext
from conveyor.monitoring.profiles import profile_version
from conveyor.registry import RegistryService
from conveyor.serving.feedback import FeedbackStore
from conveyor.serving.predlog import PredictionLogger, PredictionRecord
from conveyor.store.sql.store import SqlStore
from conveyor.store.sql.webhooks import EventHook

#: The end of the hour the tests monitor, and the hour itself.
END = datetime(2026, 3, 1, 11, tzinfo=UTC)
START = END - timedelta(hours=1)
FEATURES = ("x1", "x2", "k")
ROWS_PER_REQUEST = 10


def reference_frame(rows: int, *, seed: int = 0, shift: float = 0.0) -> pd.DataFrame:
    """Two normal features, a small integer, a city, and the label ``y`` (x1 drives it)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "x1": rng.normal(shift, 1.0, rows),
            "x2": rng.normal(0.0, 1.0, rows),
            "k": rng.integers(0, 4, rows),
            "city": rng.choice(["paris", "lyon", "nice"], rows),
        }
    )
    frame["y"] = (frame["x1"] + 0.5 * rng.normal(size=rows) > 0).astype(np.int64)
    return frame


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A logistic regression on x1, x2, k with a signature (so extra columns are dropped)."""
    frame = reference_frame(2000)
    path = tmp_path_factory.mktemp("monitor-model") / "model"
    fitted = LogisticRegression().fit(frame[list(FEATURES)], frame["y"])
    models.save(fitted, path, input_example=frame[list(FEATURES)].head())
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database URL of the store under test."""
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'monitor.db'}"


@dataclass
class Served:
    """A registered model version with a profile, and helpers that write its logs and labels."""

    ctx: MonitorContext
    name: str
    model: Any
    logged: list[str] = field(default_factory=list)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}@champion"

    def log(
        self,
        frame: pd.DataFrame,
        *,
        at: datetime = START + timedelta(minutes=10),
        prefix: str = "r",
        inputs: Sequence[str] = (*FEATURES, "city"),
        outputs: bool = True,
        version: str = "1",
        regression: bool = False,
    ) -> list[str]:
        """Log ``frame`` as requests of ``ROWS_PER_REQUEST`` rows, a second apart; returns the ids.

        ``outputs``: the classifier's prediction and probabilities; ``regression``: the
        regressor's prediction only.
        """
        features = frame[list(FEATURES)]
        proba = self.model.predict_proba(features) if outputs else None
        values = self.model.predict(features) if regression else None
        ids = []
        with PredictionLogger(self.ctx.log_root, flush_interval_s=0.05) as log:
            for number, begin in enumerate(range(0, len(frame), ROWS_PER_REQUEST)):
                part = frame.iloc[begin : begin + ROWS_PER_REQUEST]
                request_id = f"{prefix}{number}"
                ids.append(request_id)
                rows = slice(begin, begin + ROWS_PER_REQUEST)
                record = self._record(part, request_id, at + timedelta(seconds=number), inputs, version)
                if proba is not None:
                    scores = proba[rows]
                    record.outputs.update(
                        prediction=(scores[:, 1] > 0.5).astype(np.int64),
                        proba_0=scores[:, 0],
                        proba_1=scores[:, 1],
                    )
                if values is not None:
                    record.outputs.update(prediction=values[rows])
                log.submit(record)
        self.logged += ids
        return ids

    def _record(
        self,
        part: pd.DataFrame,
        request_id: str,
        at: datetime,
        inputs: Sequence[str],
        version: str,
    ) -> PredictionRecord:
        return PredictionRecord(
            request_id=request_id,
            timestamp=at,
            model=self.name,
            version=version,
            alias="champion",
            variant="primary",
            inputs={name: part[name].to_numpy() for name in inputs},
            outputs={},
            latency_ms=1.0,
        )

    def label(self, ids: Sequence[str], labels: Sequence[Any], received_at: datetime | None = None) -> None:
        """Send one label per logged row of the requests ``ids``, in order."""
        items = [
            {"request_id": request_id, "row": row, "label": labels[index * ROWS_PER_REQUEST + row]}
            for index, request_id in enumerate(ids)
            for row in range(ROWS_PER_REQUEST)
            if index * ROWS_PER_REQUEST + row < len(labels)
        ]
        FeedbackStore(self.ctx.log_root).record(self.name, items, received_at=received_at)


def open_context(
    url: str, tmp_path: Path, events: Sequence[EventHook] | None = None
) -> tuple[MonitorContext, RegistryService]:
    """A context on the database at ``url``, artifacts and logs under ``tmp_path``."""
    store = SqlStore(url).open()
    registry = RegistryService(store, ArtifactStore(str(tmp_path / "artifacts")), alias_guards=(), events=())
    ctx = MonitorContext.for_registry(registry, log_root=str(tmp_path / "predictions"), events=events)
    return ctx, registry


def serve(
    ctx: MonitorContext,
    model_dir: Path,
    *,
    reference: pd.DataFrame | None = None,
    profile: bool = True,
) -> Served:
    """Register the model as a new name, profile it (predictions and CBPE), point champion at it."""
    name = f"churn-{uuid.uuid4().hex[:8]}"
    registry = ctx.registry
    registry.create_model(name)
    registry.create_version(name, str(model_dir))
    registry.set_alias(name, "champion", 1)
    loaded = models.load(model_dir)
    if profile:
        data = reference if reference is not None else reference_frame(2000, seed=1)
        profile_version(ctx, f"models:/{name}/1", data, predictions_from_model=True, labels_column="y")
    return Served(ctx, name, loaded.raw)


@pytest.fixture
def served(backend: str, tmp_path: Path, model_dir: Path) -> Iterator[Served]:
    """A profiled champion on SQLite or PostgreSQL; no webhook events (see test_alerts for those)."""
    ctx, _ = open_context(backend, tmp_path, events=())
    yield serve(ctx, model_dir)
    ctx.close()


@pytest.fixture
def served_sqlite(tmp_path: Path, model_dir: Path) -> Iterator[Served]:
    """As ``served``, on SQLite only: for the many bad-input cases."""
    ctx, _ = open_context(f"sqlite:///{tmp_path / 'monitor.db'}", tmp_path, events=())
    yield serve(ctx, model_dir)
    ctx.close()
