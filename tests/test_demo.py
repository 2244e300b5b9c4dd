"""``make demo`` end to end: server subprocess, training, leaderboard, clean stop.

The demo runs in a scratch folder with ``--no-wait``; the runs it logged through the
server are then read straight from the SQLite file it left in ``./.conveyor``.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from conveyor.store.entities import RunStatus
from conveyor.tracking.client import Client

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo.py"


@pytest.mark.slow
def test_demo_logs_runs_and_stops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    done = subprocess.run(
        [sys.executable, str(DEMO), "--no-wait", "--port", "0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert "Leaderboard" in done.stdout
    assert "MLFLOW_TRACKING_URI=http://127.0.0.1:" in done.stdout
    assert "Server stopped." in done.stdout

    home = tmp_path / ".conveyor"
    monkeypatch.setenv("CONVEYOR_HOME", str(home))
    client = Client(f"sqlite:///{home / 'conveyor.db'}")
    try:
        experiment = client.get_experiment_by_name("breast-cancer")
        assert experiment is not None
        runs = client.search_runs([experiment.experiment_id], order_by=["metrics.accuracy DESC"])
        assert sorted(r.info.run_name for r in runs) == [
            "logreg-C=0.01",
            "logreg-C=0.1",
            "logreg-C=1.0",
            "logreg-C=10.0",
            "random-forest",
        ]
        for run in runs:
            assert run.info.status == RunStatus.FINISHED
            assert run.metrics["accuracy"].value > 0.85
            assert {"model"} <= run.params.keys()
            contexts = {i.dataset.name: i.tags.get("mlflow.data.context") for i in run.inputs}
            assert contexts == {"breast_cancer_train": "training", "breast_cancer_test": "evaluation"}
            files = {f.path for f in client.list_artifacts(run.info.run_id)}
            assert files == {"evaluation", "model"}
        forest = next(r for r in runs if r.info.run_name == "random-forest")
        assert len(client.get_metric_history(forest.info.run_id, "val_accuracy")) == 10

        best = runs[0]
        local = client.download_artifacts(best.info.run_id, "model/model.pkl", tmp_path / "download")
        model = pickle.loads(local.read_bytes())  # the demo pickled it moments ago
        assert hasattr(model, "predict")
    finally:
        client.close()
