"""A registry with a few small models, and serving apps on real sockets.

Models are trained once per session on a tiny churn-like table. Apps run under uvicorn
in a thread of the test process on 127.0.0.1 (a real HTTP server: real sockets,
``Content-Length``, disconnects), so ``tritonclient`` and ``httpx`` talk to them as to
any server.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import cloudpickle
import httpx
import numpy as np
import pandas as pd
import pytest
import uvicorn
from pydantic import SecretStr
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from conveyor import models
from conveyor.config import Settings
from conveyor.registry import RegistryService
from conveyor.serving import create_app, parse_deployment
from conveyor.serving.deployment import Deployment
from conveyor.testing.processes import free_port

# Test models defined here are pickled by value: the server may not import this module.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

FEATURES = ["age", "income", "tenure"]


def churn_frame(rows: int = 200, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.normal(40, 10, rows),
            "income": rng.normal(50, 15, rows),
            "tenure": rng.normal(24, 12, rows),
        }
    )
    labels = ((frame["age"] + frame["income"] - frame["tenure"]) > 65).astype(np.int64).to_numpy()
    return frame, labels


class SlowModel:
    """Sleeps ``delay`` seconds per call, then answers the row sums: for timeouts and shutdown."""

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def predict(self, data: Any) -> np.ndarray:
        time.sleep(self.delay)
        return np.asarray(data, dtype=float).sum(axis=1)


class ExplodingModel:
    """Raises on any row whose ``age`` is negative, answers ``age * 2`` otherwise."""

    def predict(self, data: Any) -> np.ndarray:
        ages = np.asarray(data["age"], dtype=float)
        if (ages < 0).any():
            raise RuntimeError("secret internal detail: negative age")
        return ages * 2


@pytest.fixture(scope="session")
def training() -> tuple[pd.DataFrame, np.ndarray]:
    return churn_frame()


@pytest.fixture(scope="session")
def model_dirs(
    tmp_path_factory: pytest.TempPathFactory, training: tuple[pd.DataFrame, np.ndarray]
) -> dict[str, Path]:
    """Saved models: two logistic regressions, a pipeline with a text column, slow and failing pyfuncs."""
    root = tmp_path_factory.mktemp("models")
    frame, labels = training
    out = {}
    for i, c in enumerate((1.0, 0.01)):
        out[f"logreg{i + 1}"] = Path(
            models.save(
                LogisticRegression(C=c).fit(frame, labels),
                root / f"logreg{i + 1}",
                input_example=frame.head(3),
            ).uri
        )
    plans = frame.assign(plan=np.where(frame["age"] > 40, "gold", "basic"))
    pipeline = Pipeline(
        [
            ("prep", ColumnTransformer([("plan", OneHotEncoder(), ["plan"])], remainder="passthrough")),
            ("model", LogisticRegression()),
        ]
    ).fit(plans, labels)
    out["pipeline"] = Path(models.save(pipeline, root / "pipeline", input_example=plans.head(3)).uri)
    example = frame.head(2)
    for name, model in (("slow", SlowModel(0.5)), ("exploding", ExplodingModel())):
        with pytest.warns(models.PickleWarning):
            out[name] = Path(models.save(model, root / name, input_example=example, allow_pickle=True).uri)
    return out


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    home = tmp_path_factory.mktemp("serving-home")
    return Settings(
        home=home,
        database_url=SecretStr(f"sqlite:///{home / 'conveyor.db'}"),
        artifact_root=str(home / "artifacts"),
    )


@pytest.fixture(scope="session")
def registry(settings: Settings) -> Iterator[RegistryService]:
    """The registry the served ``models:/`` URIs resolve in; aliases move without approvals."""
    opened = RegistryService.from_settings(settings)
    service = RegistryService(opened.store, opened.artifacts, alias_guards=(), events=())
    yield service
    service.store.close()


@pytest.fixture(scope="session")
def churn(registry: RegistryService, model_dirs: dict[str, Path]) -> str:
    """``churn`` v1 (logreg1, champion) and v2 (logreg2, challenger)."""
    registry.create_model("churn")
    registry.create_version("churn", str(model_dirs["logreg1"]))
    registry.create_version("churn", str(model_dirs["logreg2"]))
    registry.set_alias("churn", "champion", 1)
    registry.set_alias("churn", "challenger", 2)
    return "churn"


class LiveServer:
    """A serving app under uvicorn in a thread; ``url`` once it listens."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=f"uvicorn-{self.port}", daemon=True)

    @property
    def runtime(self) -> Any:
        return self.app.state.runtime

    def start(self, *, ready: bool = True, timeout: float = 30.0) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server.started and (not ready or self._ready()):
                return self
            if not self.thread.is_alive():
                raise RuntimeError("the server thread died while starting")
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"the server at {self.url} was not ready within {timeout} s")

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/v2/health/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@contextmanager
def running(
    deployment: dict[str, Any] | Deployment, settings: Settings, *, ready: bool = True
) -> Iterator[LiveServer]:
    """A started server for ``deployment``, stopped on leaving the block."""
    parsed = deployment if isinstance(deployment, Deployment) else parse_deployment(deployment)
    server = LiveServer(create_app(parsed, settings)).start(ready=ready)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def serve(settings: Settings) -> Iterator[Callable[..., LiveServer]]:
    """``serve(deployment)``: a started server, stopped at the end of the test."""
    with ExitStack() as stack:
        yield lambda deployment, **options: stack.enter_context(running(deployment, settings, **options))


@pytest.fixture(scope="module")
def churn_server(settings: Settings, churn: str, model_dirs: dict[str, Path]) -> Iterator[LiveServer]:
    """The main test server: churn (champion), the pipeline, and the failing and slow models."""
    deployment = {
        "models": [
            {"name": "churn", "uri": "models:/churn@champion"},
            {"name": "pipeline", "uri": str(model_dirs["pipeline"])},
            {"name": "exploding", "uri": str(model_dirs["exploding"]), "allow_pickle": True},
            {"name": "slow", "uri": str(model_dirs["slow"]), "allow_pickle": True, "timeout_s": 0.2},
            {"name": "tiny", "uri": "models:/churn/1", "max_body_bytes": 2048},
        ],
    }
    with running(deployment, settings) as server:
        yield server
