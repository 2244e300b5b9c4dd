"""``MlflowClient`` against a live Conveyor server: lifecycle, search, history, artifacts."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
import pytest
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException

from conveyor.store import open_store
from conveyor.store.entities import LifecycleStage
from conveyor.tracking.client import Client

if TYPE_CHECKING:
    from .conftest import Server

pytestmark = pytest.mark.slow


def _now() -> int:
    return int(time.time() * 1000)


def test_get_metric_history_and_log_batch(client: mlflow.MlflowClient, experiment_id: str) -> None:
    run = client.create_run(experiment_id)
    start = _now()
    client.log_batch(
        run.info.run_id,
        metrics=[Metric("loss", 1.0 / (i + 1), start + i, i) for i in range(1000)],
        params=[Param("optimizer", "adam")],
        tags=[RunTag("phase", "train")],
    )
    history = client.get_metric_history(run.info.run_id, "loss")
    assert len(history) == 1000
    assert [m.step for m in history[:3]] == [0, 1, 2]
    assert history[-1].value == pytest.approx(1 / 1000)
    assert history[-1].timestamp == start + 999
    stored = client.get_run(run.info.run_id)
    assert stored.data.params == {"optimizer": "adam"}
    assert stored.data.tags["phase"] == "train"
    assert stored.data.metrics["loss"] == pytest.approx(1 / 1000)
    assert client.get_metric_history(run.info.run_id, "absent") == []


def test_delete_and_restore_run(client: mlflow.MlflowClient, experiment_id: str) -> None:
    run = client.create_run(experiment_id)
    run_id = run.info.run_id
    client.delete_run(run_id)
    assert client.get_run(run_id).info.lifecycle_stage == "deleted"
    assert client.search_runs([experiment_id]) == []
    deleted = client.search_runs([experiment_id], run_view_type=ViewType.DELETED_ONLY)
    assert [r.info.run_id for r in deleted] == [run_id]
    client.restore_run(run_id)
    assert client.get_run(run_id).info.lifecycle_stage == "active"
    assert [r.info.run_id for r in client.search_runs([experiment_id])] == [run_id]


def test_set_terminated_and_rename_run(client: mlflow.MlflowClient, experiment_id: str) -> None:
    run = client.create_run(experiment_id, run_name="before")
    client.update_run(run.info.run_id, name="after")
    client.set_terminated(run.info.run_id, status="KILLED")
    stored = client.get_run(run.info.run_id)
    assert stored.info.run_name == "after"
    assert stored.data.tags["mlflow.runName"] == "after"
    assert stored.info.status == "KILLED"
    assert stored.info.end_time is not None


def test_delete_restore_and_rename_experiment(client: mlflow.MlflowClient) -> None:
    name = f"lifecycle-{uuid.uuid4().hex[:10]}"
    experiment_id = client.create_experiment(name, tags={"owner": "me"})
    run = client.create_run(experiment_id)
    client.delete_experiment(experiment_id)
    assert client.get_experiment(experiment_id).lifecycle_stage == "deleted"
    assert client.get_run(run.info.run_id).info.lifecycle_stage == "deleted"
    client.restore_experiment(experiment_id)
    assert client.get_experiment(experiment_id).lifecycle_stage == "active"
    assert client.get_run(run.info.run_id).info.lifecycle_stage == "active"

    client.rename_experiment(experiment_id, name + "-renamed")
    assert client.get_experiment_by_name(name) is None
    renamed = client.get_experiment_by_name(name + "-renamed")
    assert renamed is not None
    assert renamed.experiment_id == experiment_id
    assert renamed.tags == {"owner": "me"}

    client.set_experiment_tag(experiment_id, "note", "multi\nline")
    assert client.get_experiment(experiment_id).tags["note"] == "multi\nline"
    client.delete_experiment_tag(experiment_id, "note")
    assert "note" not in client.get_experiment(experiment_id).tags


def test_search_experiments_filters_and_pages(client: mlflow.MlflowClient) -> None:
    prefix = f"search-{uuid.uuid4().hex[:8]}"
    ids = [client.create_experiment(f"{prefix}-{i}", tags={"parity": str(i % 2)}) for i in range(5)]

    found = client.search_experiments(filter_string=f"name LIKE '{prefix}-%'", order_by=["name ASC"])
    assert [e.experiment_id for e in found] == ids
    odd = client.search_experiments(filter_string=f"name LIKE '{prefix}%' AND tags.parity = '1'")
    assert {e.name for e in odd} == {f"{prefix}-1", f"{prefix}-3"}

    pages, token = [], None
    while True:
        page = client.search_experiments(
            max_results=2, filter_string=f"name LIKE '{prefix}%'", order_by=["name DESC"], page_token=token
        )
        pages.append([e.name for e in page])
        token = page.token
        if not token:
            break
    assert pages == [[f"{prefix}-4", f"{prefix}-3"], [f"{prefix}-2", f"{prefix}-1"], [f"{prefix}-0"]]

    client.delete_experiment(ids[0])
    active = client.search_experiments(filter_string=f"name LIKE '{prefix}%'")
    assert ids[0] not in {e.experiment_id for e in active}
    deleted = client.search_experiments(
        view_type=ViewType.DELETED_ONLY, filter_string=f"name LIKE '{prefix}%'"
    )
    assert [e.experiment_id for e in deleted] == [ids[0]]


def test_search_runs_pages(client: mlflow.MlflowClient, experiment_id: str) -> None:
    run_ids = []
    for i in range(5):
        run = client.create_run(experiment_id, start_time=1000 + i)
        client.log_metric(run.info.run_id, "i", i)
        run_ids.append(run.info.run_id)
    first = client.search_runs([experiment_id], max_results=2, order_by=["metrics.i ASC"])
    second = client.search_runs(
        [experiment_id], max_results=2, order_by=["metrics.i ASC"], page_token=first.token
    )
    third = client.search_runs(
        [experiment_id], max_results=2, order_by=["metrics.i ASC"], page_token=second.token
    )
    seen = [r.info.run_id for page in (first, second, third) for r in page]
    assert seen == run_ids
    assert third.token is None
    by_start = client.search_runs([experiment_id], order_by=["attributes.start_time DESC"])
    assert [r.info.run_id for r in by_start] == run_ids[::-1]


def test_list_and_download_artifacts(client: mlflow.MlflowClient, experiment_id: str, tmp_path: Path) -> None:
    run = client.create_run(experiment_id)
    source = tmp_path / "src"
    (source / "deep" / "er").mkdir(parents=True)
    (source / "top.txt").write_text("top")
    (source / "deep" / "er" / "leaf.json").write_text('{"a": 1}')
    client.log_artifacts(run.info.run_id, str(source), artifact_path="bundle")
    client.log_artifact(run.info.run_id, str(source / "top.txt"))

    assert [(f.path, f.is_dir) for f in client.list_artifacts(run.info.run_id)] == [
        ("bundle", True),
        ("top.txt", False),
    ]
    assert [f.path for f in client.list_artifacts(run.info.run_id, "bundle/deep")] == ["bundle/deep/er"]
    leaf = client.download_artifacts(run.info.run_id, "bundle/deep/er/leaf.json", str(tmp_path))
    assert Path(leaf).read_text() == '{"a": 1}'
    whole = Path(client.download_artifacts(run.info.run_id, "bundle", str(tmp_path / "all")))
    assert (whole / "top.txt").read_text() == "top"
    assert (whole / "deep" / "er" / "leaf.json").exists()


def test_errors_reach_the_client_as_mlflow_exceptions(
    client: mlflow.MlflowClient, experiment_id: str
) -> None:
    run = client.create_run(experiment_id)
    client.log_param(run.info.run_id, "p", "1")
    with pytest.raises(MlflowException, match="Changing param values is not allowed") as changed:
        client.log_param(run.info.run_id, "p", "2")
    assert changed.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException) as missing:
        client.get_run("0" * 32)
    assert missing.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    name = client.get_experiment(experiment_id).name
    with pytest.raises(MlflowException) as taken:
        client.create_experiment(name)
    assert taken.value.error_code == "RESOURCE_ALREADY_EXISTS"


def test_logged_data_is_in_the_sql_store(
    client: mlflow.MlflowClient, experiment_id: str, server: Server
) -> None:
    """What MLflow logs through the server is what Conveyor's own store reads: one source of truth."""
    run = client.create_run(experiment_id, tags={"via": "mlflow"})
    client.log_metric(run.info.run_id, "loss", 0.25, step=3)
    client.log_param(run.info.run_id, "alpha", "0.5")
    client.log_text(run.info.run_id, "content", "notes/readme.txt")
    client.set_terminated(run.info.run_id)

    store = open_store(server.database_url)
    try:
        stored = store.get_run(run.info.run_id)
        assert stored.info.experiment_id == experiment_id
        assert stored.info.status == "FINISHED"
        assert stored.info.lifecycle_stage == LifecycleStage.ACTIVE
        assert stored.params == {"alpha": "0.5"}
        assert stored.tags["via"] == "mlflow"
        assert stored.metrics["loss"].value == 0.25
        assert stored.metrics["loss"].step == 3
        record = store.get_artifact_record(f"{experiment_id}/{run.info.run_id}/artifacts/notes/readme.txt")
        assert record is not None
        assert record.size == len("content")
        assert record.run_id == run.info.run_id
    finally:
        store.close()


def test_what_conveyor_logs_mlflow_reads(
    client: mlflow.MlflowClient, experiment_id: str, server: Server, tmp_path: Path
) -> None:
    """The other direction: Conveyor's own client (native API) logs, the MLflow client reads."""
    conveyor = Client(server.url)
    run_id = conveyor.create_run(experiment_id, run_name="native", tags={"via": "conveyor"}).info.run_id
    conveyor.log_params(run_id, {"depth": 4})
    for step in range(5):
        conveyor.log_metric(run_id, "auc", 0.5 + step / 10, step=step)
    report = tmp_path / "report.txt"
    report.write_text("from conveyor\n")
    conveyor.log_artifact(run_id, report, "reports")
    conveyor.set_terminated(run_id)

    seen = client.get_run(run_id)
    assert seen.info.run_name == "native"
    assert seen.info.status == "FINISHED"
    assert seen.data.params == {"depth": "4"}
    assert seen.data.tags["via"] == "conveyor"
    assert [m.step for m in client.get_metric_history(run_id, "auc")] == list(range(5))
    assert [f.path for f in client.list_artifacts(run_id, "reports")] == ["reports/report.txt"]
    local = client.download_artifacts(run_id, "reports/report.txt", str(tmp_path / "out"))
    assert Path(local).read_text() == "from conveyor\n"
    conveyor.close()
