"""Pipelines on the other back ends: PostgreSQL as the record, Spark in a step, lineage of real runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from conveyor.config import Settings
from conveyor.pipelines import lineage
from conveyor.pipelines.runner import open_records, run_pipeline, why_rerun
from conveyor.store.sql.pipeline_records import StepState

FLOWS = str(Path(__file__).with_name("pipeline_flows.py"))


def target(name: str) -> str:
    return f"{FLOWS}:{name}"


@pytest.mark.postgres
def test_runs_cache_and_resume_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", database_url=SecretStr(postgres_url))
    first = run_pipeline(target("frames"), {"rows": 8, "scale": 1.5}, settings=settings)
    second = run_pipeline(target("frames"), {"rows": 8, "scale": 1.5}, settings=settings)

    assert first.ok and first.output("column_sum") == 1.5 * sum(range(4))
    assert {s.status for s in second.steps} == {StepState.CACHED}
    assert why_rerun(second.run.id, "split", settings)[0].startswith("split did not run")
    assert open_records(settings).get_run(first.run.id[:10]).id == first.run.id


@pytest.mark.slow
@pytest.mark.spark
@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")
@pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")
def test_a_spark_step_gets_a_session_from_the_configured_master(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conveyor.pipelines.spark import current_spark, stop_spark_session

    monkeypatch.setenv("CONVEYOR_SPARK_MASTER", "local[2]")
    try:
        result = run_pipeline(target("sparky"), {"rows": 30}, settings=Settings(home=tmp_path / "home"))
        assert current_spark().sparkContext.master == "local[2]"
    finally:
        stop_spark_session()

    assert result.ok, [s.error for s in result.steps]
    totals = result.output("spark_totals")
    assert list(totals["y"]) == [0, 1, 2]
    assert list(totals["total"]) == [sum(x for x in range(30) if x % 3 == y) for y in range(3)]
    assert result.output("column_sum") == float(sum(range(30)))


def test_lineage_of_real_runs_follows_cache_hits_to_the_producing_run(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    first = run_pipeline(target("frames"), {"rows": 10}, settings=settings)
    second = run_pipeline(target("frames"), {"rows": 10}, settings=settings)
    store = open_records(settings).store
    result_sha = second.step("column_sum").outputs["parts"][0]["sha256"]

    graph = lineage.upstream(store, result_sha)

    steps = {(s.run_id, s.node_id) for s in graph.steps.values()}
    assert steps == {(first.run.id, "column_sum"), (first.run.id, "split"), (first.run.id, "make_frame")}
    down = lineage.downstream(store, first.step("make_frame").outputs["parts"][0]["sha256"])
    consumers = {(s.run_id, s.node_id) for s in down.steps.values()}
    assert (second.run.id, "log_and_return") in consumers
    assert lineage.upstream(store, f"run:{second.run.id[:10]}").root == f"run:{second.run.id}"
    events = lineage.openlineage_events(store, first.run.id, artifact_root=settings.resolved_artifact_root())
    assert events[0]["eventType"] == "START" and events[-1]["eventType"] == "COMPLETE"
    assert {e["job"]["name"] for e in events} >= {"frames", "frames.split"}


@pytest.mark.slow
def test_with_a_tracking_server_steps_log_to_the_server(live_server: str, tmp_path: Path) -> None:
    from conveyor.tracking.client import Client

    settings = Settings(home=tmp_path / "home", tracking_uri=live_server)
    result = run_pipeline(target("frames"), {"rows": 6}, settings=settings)

    assert result.ok, [s.error for s in result.steps]
    client = Client(live_server)
    parent = client.get_run(result.run.tracking_run_id)
    assert parent.info.status == "FINISHED" and parent.params == {"rows": "6", "scale": "1.0"}
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{result.run.tracking_run_id}'"
    )
    assert sorted(run.params["label"] for run in children) == ["test", "train"]
