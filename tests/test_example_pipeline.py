"""``examples/pipeline.py`` works as documented: it is the pipeline page's worked example.

The pipeline runs in-process (the local executor) against a store in a scratch folder,
twice, the second time entirely from the cache; then twice through the CLI on the process
executor, as ``make demo`` runs it, where the second run, in a fresh process like a
user's second command, must reuse every step too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

import conveyor
from conveyor.config import Settings
from conveyor.pipelines.loading import load_target
from conveyor.pipelines.runner import run_pipeline
from conveyor.store.entities import RunStatus
from conveyor.store.sql.pipeline_records import StepState
from conveyor.tracking.client import Client

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "pipeline.py"
STEPS = ["load", "validate", "split", "featurize", "train", "evaluate", "pick_best"]


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A store of its own, and no ``CONVEYOR_*`` setting of the machine's that could point elsewhere.

    ``CONVEYOR_HOME`` agrees with it, so that nothing can reach ``./.conveyor`` of the
    checkout. Afterwards the fluent API (which steps log through) drops its client on
    this store, which is about to be deleted.
    """
    for name in [n for n in os.environ if n.startswith("CONVEYOR_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CONVEYOR_HOME", str(tmp_path / "home"))
    yield Settings(home=tmp_path / "home")
    conveyor.set_tracking_uri(None)


def example_module() -> ModuleType:
    load_target(str(EXAMPLE))  # imports it as the CLI does: module `pipeline`, its folder on sys.path
    return sys.modules["pipeline"]


def test_example_trains_the_grid_picks_the_best_and_caches(settings: Settings) -> None:
    grid = example_module().GRID
    first = run_pipeline(str(EXAMPLE), settings=settings)
    first.raise_for_status()
    assert [s.node_id for s in first.steps] == STEPS
    assert {s.status for s in first.steps} == {StepState.SUCCEEDED}
    assert first.step("train").tasks == first.step("evaluate").tasks == len(grid)
    assert len(first.output("train")) == len(grid)

    best = first.output("pick_best")
    assert best["config"] in grid
    assert best["metric"] == "roc_auc"
    assert best["score"] == max(m["roc_auc"] for m in first.output("evaluate")) > 0.9
    assert best["metrics"]["accuracy"] > 0.9

    client = Client(settings=settings)
    try:
        experiment = client.get_experiment_by_name("breast_cancer")
        assert experiment is not None
        children = {
            r.info.run_name: r
            for r in client.search_runs([experiment.experiment_id])
            if r.tags.get("mlflow.parentRunId") == first.run.tracking_run_id
        }
    finally:
        client.close()
    expected = [f"{step}[{i}]" for step in ("train", "evaluate") for i in range(len(grid))]
    assert sorted(children) == sorted(expected)
    for i, config in enumerate(grid):
        trained, evaluated = children[f"train[{i}]"], children[f"evaluate[{i}]"]
        assert trained.info.status is evaluated.info.status is RunStatus.FINISHED
        assert trained.params == {k: str(v) for k, v in config.items()}
        assert trained.metrics["train_accuracy"].value > 0.9
        assert {"accuracy", "f1", "roc_auc"} <= evaluated.metrics.keys()

    again = run_pipeline(str(EXAMPLE), settings=settings)
    assert again.ok
    assert {s.node_id: s.status for s in again.steps} == dict.fromkeys(STEPS, StepState.CACHED)
    assert {s.cached_from for s in again.steps} == {first.run.id}
    assert again.output("pick_best") == best


def test_validate_names_every_problem() -> None:
    bad = pd.DataFrame({"radius": [1.0, None, -2.0], "target": [0, 1, 2]})
    with pytest.raises(ValueError, match="invalid training data") as caught:
        example_module().validate.fn(bad, min_rows=10)
    message = str(caught.value)
    for problem in (
        "missing values in: ['radius']",
        "negative measurements in: ['radius']",
        "'target' must be 0 or 1",
        "only 3 rows",
    ):
        assert problem in message


@pytest.mark.slow
def test_cli_runs_the_example_twice_the_second_time_from_the_cache(tmp_path: Path) -> None:
    """What ``make demo`` does, on worker processes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env["CONVEYOR_HOME"] = str(tmp_path / "home")
    command = [sys.executable, "-m", "conveyor.cli", "pipeline", "run", str(EXAMPLE), "--executor", "process"]
    command += ["--workers", "2", "--param", "test_size=0.3", "--json"]
    runs = []
    for _ in range(2):
        done = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
        runs.append(json.loads(done.stdout))
    first, again = runs
    assert first["run"]["status"] == again["run"]["status"] == "SUCCEEDED"
    assert first["run"]["params"]["test_size"] == 0.3
    assert {s["status"] for s in first["steps"]} == {"SUCCEEDED"}
    assert {s["status"] for s in again["steps"]} == {"CACHED"}
    assert {s["cached_from"] for s in again["steps"]} == {first["run"]["id"]}
