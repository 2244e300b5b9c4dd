"""MLflow's fluent API (``mlflow.start_run`` & co.) against a live Conveyor server."""

from __future__ import annotations

import math
import uuid
from pathlib import Path

import mlflow
import mlflow.data
import pandas as pd
import pytest

pytestmark = pytest.mark.slow


def _new_experiment() -> str:
    return mlflow.set_experiment(f"fluent-{uuid.uuid4().hex[:10]}").experiment_id


def test_set_experiment_creates_then_reuses(tracking: str) -> None:
    name = f"fluent-{uuid.uuid4().hex[:10]}"
    first = mlflow.set_experiment(name)
    again = mlflow.set_experiment(name)
    assert first.experiment_id == again.experiment_id
    assert isinstance(first.experiment_id, str)
    assert first.artifact_location == f"mlflow-artifacts:/{first.experiment_id}"


def test_run_with_params_metrics_and_tags(tracking: str, client: mlflow.MlflowClient) -> None:
    _new_experiment()
    with mlflow.start_run(run_name="fluent-run") as run:
        mlflow.log_params({"lr": 0.01, "layers": 3})
        for step in range(5):
            mlflow.log_metrics({"loss": 1.0 / (step + 1), "acc": step / 10}, step=step)
        mlflow.set_tags({"team": "ml", "stage": "dev"})
        mlflow.log_metric("single", 7.5)

    stored = client.get_run(run.info.run_id)
    assert stored.info.status == "FINISHED"
    assert stored.info.end_time is not None
    assert stored.info.run_name == "fluent-run"
    assert stored.data.params == {"lr": "0.01", "layers": "3"}
    assert stored.data.metrics["loss"] == pytest.approx(0.2)
    assert stored.data.metrics["single"] == 7.5
    assert stored.data.tags["team"] == "ml"
    assert stored.data.tags["mlflow.runName"] == "fluent-run"
    assert "mlflow.user" in stored.data.tags
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == [0, 1, 2, 3, 4]
    assert history[0].value == 1.0


def test_non_finite_metrics_round_trip(tracking: str, client: mlflow.MlflowClient) -> None:
    _new_experiment()
    with mlflow.start_run() as run:
        mlflow.log_metric("nan", math.nan)
        mlflow.log_metric("pos", math.inf)
        mlflow.log_metric("neg", -math.inf)
        mlflow.log_metrics({"batch_nan": math.nan, "batch_inf": math.inf})
    metrics = client.get_run(run.info.run_id).data.metrics
    assert math.isnan(metrics["nan"])
    assert metrics["pos"] == math.inf
    assert metrics["neg"] == -math.inf
    assert math.isnan(metrics["batch_nan"])
    assert metrics["batch_inf"] == math.inf
    assert math.isnan(client.get_metric_history(run.info.run_id, "nan")[0].value)


def test_log_artifact_and_artifacts(tracking: str, client: mlflow.MlflowClient, tmp_path: Path) -> None:
    _new_experiment()
    single = tmp_path / "notes.txt"
    single.write_text("hello conveyor")
    folder = tmp_path / "plots"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.csv").write_text("x,y\n1,2\n")
    (folder / "sub" / "b.bin").write_bytes(bytes(range(256)) * 1000)
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(single))
        mlflow.log_artifacts(str(folder), artifact_path="plots")
        mlflow.log_text("inline", "texts/inline.txt")
        mlflow.log_dict({"k": [1, 2]}, "config.json")

    top = {f.path: f for f in client.list_artifacts(run.info.run_id)}
    assert set(top) == {"notes.txt", "plots", "texts", "config.json"}
    assert top["plots"].is_dir and not top["notes.txt"].is_dir
    assert top["notes.txt"].file_size == len("hello conveyor")
    nested = [f.path for f in client.list_artifacts(run.info.run_id, "plots")]
    assert nested == ["plots/a.csv", "plots/sub"]

    out = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=str(tmp_path / "dl")))
    assert (out / "notes.txt").read_text() == "hello conveyor"
    assert (out / "plots" / "sub" / "b.bin").read_bytes() == bytes(range(256)) * 1000
    assert mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/config.json") == {"k": [1, 2]}
    assert mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/texts/inline.txt") == "inline"


def test_log_input_from_pandas(tracking: str, client: mlflow.MlflowClient) -> None:
    _new_experiment()
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "label": ["a", "b", "a"]})
    dataset = mlflow.data.from_pandas(
        frame, source="s3://bucket/train.csv", name="train-set", targets="label"
    )
    with mlflow.start_run() as run:
        mlflow.log_input(dataset, context="training", tags={"version": "1"})
    inputs = client.get_run(run.info.run_id).inputs.dataset_inputs
    assert len(inputs) == 1
    logged = inputs[0]
    assert logged.dataset.name == "train-set"
    sent = dataset.to_dict()
    assert logged.dataset.digest == sent["digest"]
    assert logged.dataset.source_type == sent["source_type"] == "s3"
    assert logged.dataset.source == sent["source"]
    assert logged.dataset.profile == sent["profile"]
    assert "x" in logged.dataset.schema
    assert {t.key: t.value for t in logged.tags} == {"mlflow.data.context": "training", "version": "1"}


def test_search_runs_dataframe_with_filter_and_order(tracking: str) -> None:
    experiment_id = _new_experiment()
    for index, (model, score) in enumerate([("tree", 0.7), ("linear", 0.9), ("tree", 0.8)]):
        with mlflow.start_run(run_name=f"r{index}"):
            mlflow.log_param("model", model)
            mlflow.log_metric("score", score)

    frame = mlflow.search_runs(
        experiment_ids=[experiment_id],
        filter_string="params.model = 'tree'",
        order_by=["metrics.score DESC"],
    )
    assert isinstance(frame, pd.DataFrame)
    assert list(frame["metrics.score"]) == [0.8, 0.7]
    assert list(frame["params.model"]) == ["tree", "tree"]
    assert list(frame["tags.mlflow.runName"]) == ["r2", "r0"]
    assert set(frame["experiment_id"]) == {experiment_id}

    as_list = mlflow.search_runs(
        experiment_ids=[experiment_id], filter_string="metrics.score > 0.75", output_format="list"
    )
    assert sorted(r.data.metrics["score"] for r in as_list) == [0.8, 0.9]


def test_nested_runs_record_parent(tracking: str, client: mlflow.MlflowClient) -> None:
    _new_experiment()
    with mlflow.start_run() as parent, mlflow.start_run(nested=True) as child:
        mlflow.log_metric("inner", 1.0)
    stored = client.get_run(child.info.run_id)
    assert stored.data.tags["mlflow.parentRunId"] == parent.info.run_id
