"""The client and fluent API, on a local store and against a live server."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import conveyor as cv
from conveyor.errors import IntegrityError, InvalidInput
from conveyor.store import open_store
from conveyor.store.entities import RunStatus
from conveyor.tracking.client import Client
from conveyor.tracking.datasets import digest_dataframe


@pytest.fixture(params=["local", "remote"])
def tracking_uri(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    monkeypatch.setenv("CONVEYOR_HOME", str(tmp_path / "home"))
    if request.param == "local":
        yield f"sqlite:///{tmp_path / 'local.db'}"
    else:
        yield request.getfixturevalue("live_server")


@pytest.fixture
def fluent(tracking_uri: str) -> Iterator[None]:
    cv.set_tracking_uri(tracking_uri)
    yield
    cv.set_tracking_uri(None)


def test_fluent_run_logs_everything(fluent: None, tmp_path: Path) -> None:
    experiment_id = cv.set_experiment(f"fluent-{tmp_path.name}")
    artifact = tmp_path / "report.txt"
    artifact.write_text("all good\n")
    frame = pd.DataFrame({"x": np.arange(20_000), "y": np.arange(20_000) % 3})
    with cv.start_run(run_name="baseline", tags={"team": "risk"}) as run:
        cv.log_params({"C": 0.5, "solver": "lbfgs"})
        for step in range(300):
            cv.log_metric("loss", 1.0 / (step + 1), step=step)
        cv.log_metrics({"accuracy": 0.91, "f1": 0.88})
        cv.log_artifact(artifact, "reports")
        cv.log_input(frame, name="train", source="memory", context="training")
    client = cv.get_client()
    stored = client.get_run(run.run_id)
    assert stored.info.status == RunStatus.FINISHED
    assert stored.params == {"C": "0.5", "solver": "lbfgs"}
    assert stored.tags["team"] == "risk"
    assert "mlflow.source.name" in stored.tags
    assert stored.metrics["loss"].step == 299
    assert len(client.get_metric_history(run.run_id, "loss")) == 300
    assert stored.inputs[0].dataset.digest == digest_dataframe(frame)
    assert stored.inputs[0].tags == {"mlflow.data.context": "training"}
    assert [(f.path, f.is_dir) for f in client.list_artifacts(run.run_id)] == [("reports", True)]
    downloaded = client.download_artifacts(run.run_id, "reports/report.txt", tmp_path / "out")
    assert downloaded.read_text() == "all good\n"
    frame_out = cv.search_runs("metrics.accuracy > 0.9", order_by=["metrics.accuracy DESC"])
    assert list(frame_out["run_id"]) == [run.run_id]
    assert frame_out.loc[0, "params.C"] == "0.5"
    assert frame_out.loc[0, "experiment_id"] == experiment_id


def test_failed_block_marks_run_failed_and_keeps_metrics(fluent: None) -> None:
    with pytest.raises(RuntimeError), cv.start_run() as run:
        cv.log_metric("m", 1.0)
        raise RuntimeError("training diverged")
    stored = cv.get_client().get_run(run.run_id)
    assert stored.info.status == RunStatus.FAILED
    assert stored.metrics["m"].value == 1.0


def test_nested_runs_need_opt_in(fluent: None) -> None:
    with cv.start_run() as parent:
        with pytest.raises(InvalidInput, match="already active"):
            cv.start_run()
        with cv.start_run(nested=True) as child:
            pass
    assert cv.get_client().get_run(child.run_id).tags["mlflow.parentRunId"] == parent.run_id


def test_logging_without_run_is_a_clear_error(fluent: None) -> None:
    with pytest.raises(InvalidInput, match="start_run"):
        cv.log_metric("m", 1.0)


def test_corrupted_artifact_is_refused(
    tracking_uri: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    client = Client(tracking_uri)
    run_id = client.create_run("0").info.run_id
    source = tmp_path / "weights.bin"
    source.write_bytes(b"\x01" * 4096)
    client.log_artifact(run_id, source)
    home = tmp_path / "home"
    stored = (
        next((home / "artifacts").rglob("weights.bin"), None) if tracking_uri.startswith("sqlite") else None
    )
    if stored is None:
        stored = next(Path(p) for p in Path(tmp_path).parent.rglob("weights.bin") if run_id in str(p))
    stored.write_bytes(b"\x02" * 4096)
    with pytest.raises(IntegrityError, match=r"weights\.bin"):
        client.download_artifacts(run_id, "weights.bin", tmp_path / "out")
    assert not (tmp_path / "out" / "weights.bin").exists()
    client.close()


CRASHING_SCRIPT = textwrap.dedent(
    """
    import os, conveyor as cv
    cv.set_experiment("crash")
    run = cv.start_run()
    print(run.run_id, flush=True)
    for step in range(5000):
        cv.log_metric("loss", 1.0 / (step + 1), step=step)
    raise SystemExit(3)
    """
)


def test_interpreter_exit_flushes_buffered_metrics(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    env = {"CONVEYOR_TRACKING_URI": url, "CONVEYOR_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, "-c", CRASHING_SCRIPT],
        env={**__import__("os").environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 3, done.stderr
    run_id = done.stdout.split()[0]
    store = open_store(url)
    assert len(store.get_metric_history(run_id, "loss").items) == 5000
    assert store.get_run(run_id).info.status == RunStatus.FAILED
