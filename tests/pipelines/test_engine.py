"""The engine on the in-process executor: results, the run record, caching, failures, resume."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conveyor.config import Settings
from conveyor.errors import InvalidInput, InvalidState
from conveyor.pipelines import PipelineParameterError
from conveyor.pipelines.engine import PipelineFailed
from conveyor.pipelines.runner import open_records, resume, run_pipeline, why_rerun
from conveyor.store.sql.pipeline_records import RunState, StepState
from conveyor.tracking.client import Client

FLOWS = str(Path(__file__).with_name("pipeline_flows.py"))


def target(name: str) -> str:
    return f"{FLOWS}:{name}"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


def states(result) -> dict[str, StepState]:
    return {s.node_id: s.status for s in result.steps}


# -- running and recording --------------------------------------------------------------------


def test_chain_runs_in_order_and_is_recorded(settings: Settings) -> None:
    result = run_pipeline(target("chain"), {"n": 3}, settings=settings)

    assert result.ok
    assert [s.node_id for s in result.steps] == ["first", "inc", "inc-2", "inc-3"]
    assert result.output("inc-3") == 3
    assert set(states(result).values()) == {StepState.SUCCEEDED}
    run = result.run
    assert run.pipeline == "chain" and run.params == {"n": 3} and run.executor == "local"
    assert run.target == target("chain")
    assert run.python_version.count(".") == 2 and len(run.packages_hash) == 64
    assert run.git_commit is not None and len(run.git_commit) == 40  # the tests run inside the repo
    assert run.end_time is not None and run.end_time >= run.start_time
    assert [n["id"] for n in run.spec["nodes"]] == ["first", "inc", "inc-2", "inc-3"]
    step = result.step("inc-2")
    assert step.attempts == 1 and step.start_time is not None and step.end_time is not None
    produced = result.step("inc").outputs["parts"][0]
    assert step.inputs == {"x": {"artifact": produced}}
    assert produced["serializer"] == "json" and len(produced["sha256"]) == 64


def test_run_creates_a_tracking_run_with_the_params(settings: Settings) -> None:
    result = run_pipeline(target("chain"), {"n": 2}, settings=settings)

    client = Client(settings=settings)
    tracked = client.get_run(result.run.tracking_run_id)
    assert tracked.info.status == "FINISHED"
    assert tracked.params == {"n": "2"}
    assert tracked.tags["conveyor.pipeline.run_id"] == result.run.id
    assert client.get_experiment(tracked.info.experiment_id).name == "chain"


def test_steps_log_into_child_runs_of_the_pipeline_run(settings: Settings) -> None:
    result = run_pipeline(target("frames"), {"rows": 10}, settings=settings)

    assert result.ok, result.steps
    client = Client(settings=settings)
    parent = result.run.tracking_run_id
    children = client.search_runs(
        [client.get_run(parent).info.experiment_id], f"tags.mlflow.parentRunId = '{parent}'"
    )
    by_name = {run.info.run_name: run for run in children}
    assert set(by_name) == {"log_and_return", "log_and_return-2"}
    assert by_name["log_and_return"].params == {"label": "train"}
    assert by_name["log_and_return"].metrics["value"].value == sum(range(5))
    assert all(run.info.status == "FINISHED" for run in children)


def test_tuple_outputs_are_stored_as_parts(settings: Settings) -> None:
    result = run_pipeline(target("frames"), {"rows": 10}, settings=settings)

    train, test = result.output("split")
    assert list(train["x"]) == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert list(test["x"]) == [5.0, 6.0, 7.0, 8.0, 9.0]
    parts = result.step("split").outputs["parts"]
    assert [p["serializer"] for p in parts] == ["parquet", "parquet"]
    assert result.output("column_sum-2") == 35.0


def test_a_reader_that_mutates_its_input_cannot_change_what_others_read(settings: Settings) -> None:
    result = run_pipeline(target("shared"), settings=settings)

    assert result.output("mutate") == 4
    assert result.output("length") == 3  # as on every executor: each reader gets the stored value
    assert result.output("base_list") == [1, 2, 3]


def test_map_fans_out_over_a_step_output_and_collects(settings: Settings) -> None:
    result = run_pipeline(target("fan"), {"n": 100}, settings=settings)

    assert result.output("total") == sum(range(1, 101))
    mapped = result.step("inc")
    assert mapped.tasks == 100 and len(mapped.outputs["items"]) == 100
    assert result.output("inc")[:3] == [1, 2, 3]
    assert result.step("total").stdout == "summing 100 numbers\n"


def test_map_over_an_empty_list_gives_an_empty_list(settings: Settings) -> None:
    result = run_pipeline(target("fan"), {"n": 0}, settings=settings)

    assert result.ok
    assert result.output("inc") == [] and result.output("total") == 0


def test_ten_thousand_items_are_batched(settings: Settings) -> None:
    from conveyor.pipelines.executors.local import LocalExecutor

    submitted: list[int] = []
    original = LocalExecutor.submit

    def counting(self, task) -> None:  # type: ignore[no-untyped-def]
        submitted.append(len(task.units))
        original(self, task)

    LocalExecutor.submit = counting  # type: ignore[method-assign]
    try:
        started = time.perf_counter()
        result = run_pipeline(target("fan_const"), {"n": 10_000}, settings=settings, cache=False)
        elapsed = time.perf_counter() - started
    finally:
        LocalExecutor.submit = original  # type: ignore[method-assign]
    assert result.output("total") == sum(range(1, 10_001))
    mapped = [n for n in submitted if n > 1]
    assert sum(mapped) == 10_000 and len(mapped) <= 10
    assert elapsed < 30, f"10,000 trivial items took {elapsed:.1f} s"


# -- caching ------------------------------------------------------------------------------------


def test_second_run_reuses_every_output(settings: Settings) -> None:
    first = run_pipeline(target("chain"), {"n": 3}, settings=settings)
    second = run_pipeline(target("chain"), {"n": 3}, settings=settings)

    assert set(states(second).values()) == {StepState.CACHED}
    assert {s.cached_from for s in second.steps} == {first.run.id}
    assert second.output("inc-3") == 3
    assert why_rerun(second.run.id, "inc", settings) == [
        f"inc did not run: its outputs were reused from run {first.run.id}"
    ]


def test_a_changed_parameter_reruns_only_what_depends_on_it(settings: Settings) -> None:
    run_pipeline(target("frames"), {"rows": 10, "scale": 1.0}, settings=settings)
    second = run_pipeline(target("frames"), {"rows": 10, "scale": 2.0}, settings=settings)

    assert states(second)["make_frame"] is StepState.SUCCEEDED
    assert states(second)["column_sum"] is StepState.SUCCEEDED
    lines = why_rerun(second.run.id, "make_frame", settings)
    assert len(lines) == 1 and lines[0].startswith("parameter 'scale' changed")
    assert why_rerun(second.run.id, "split", settings)[0].startswith("input 'frame' changed")


def test_mapped_items_are_cached_one_by_one(settings: Settings) -> None:
    run_pipeline(target("fan_const"), {"n": 5}, settings=settings)
    second = run_pipeline(target("fan_const"), {"n": 6}, settings=settings)

    assert second.output("total") == sum(range(1, 7))
    assert states(second)["inc"] is StepState.SUCCEEDED  # one new item ran
    lines = why_rerun(second.run.id, "inc", settings)
    assert any("1 of 6 item(s)" in line for line in lines), lines


def test_no_cache_and_cache_false_run_the_step(settings: Settings) -> None:
    run_pipeline(target("partly_cached"), settings=settings)
    again = run_pipeline(target("partly_cached"), settings=settings)
    forced = run_pipeline(target("partly_cached"), settings=settings, cache=False)

    assert states(again) == {
        "first": StepState.CACHED,
        "inc": StepState.CACHED,
        "uncached": StepState.SUCCEEDED,
    }
    assert set(states(forced).values()) == {StepState.SUCCEEDED}
    assert why_rerun(again.run.id, "uncached", settings) == ["uncached has cache=False: it runs every time"]
    assert why_rerun(forced.run.id, "inc", settings) == [
        "inc ran because the run had the cache off (--no-cache)"
    ]


def test_a_deleted_cached_artifact_is_recomputed(settings: Settings) -> None:
    first = run_pipeline(target("chain"), {"n": 2}, settings=settings)
    stored = Path(settings.resolved_artifact_root()) / first.step("inc").outputs["parts"][0]["path"]
    stored.unlink()

    second = run_pipeline(target("chain"), {"n": 2}, settings=settings)

    assert states(second) == {
        "first": StepState.CACHED,
        "inc": StepState.SUCCEEDED,
        "inc-2": StepState.CACHED,
    }
    assert second.output("inc-2") == 2
    assert "no stored output could be reused" in why_rerun(second.run.id, "inc", settings)[0]
    third = run_pipeline(target("chain"), {"n": 2}, settings=settings)
    assert set(states(third).values()) == {StepState.CACHED}


def test_a_corrupted_cached_artifact_is_recomputed(settings: Settings) -> None:
    first = run_pipeline(target("chain"), {"n": 1}, settings=settings)
    stored = Path(settings.resolved_artifact_root()) / first.step("inc").outputs["parts"][0]["path"]
    stored.write_text("99")

    second = run_pipeline(target("chain"), {"n": 1}, settings=settings)

    assert states(second)["inc"] is StepState.SUCCEEDED
    assert second.output("inc") == 1


def test_code_change_in_a_called_helper_invalidates_the_cache(settings: Settings, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "helpers_mod.py").write_text("def scale(x):\n    return x * 2\n")
    flow = project / "helper_flow.py"
    flow.write_text(
        "from conveyor import pipeline, step\n"
        "import helpers_mod\n\n"
        "@step\ndef base() -> int:\n    return 3\n\n"
        "@step\ndef scaled(x: int) -> int:\n    return helpers_mod.scale(x)\n\n"
        "@pipeline\ndef helper_flow():\n    scaled(base())\n"
    )
    first = run_pipeline(str(flow), settings=settings)
    assert first.output("scaled") == 6

    import importlib
    import sys

    (project / "helpers_mod.py").write_text("def scale(x):\n    return x * 3\n")
    importlib.reload(sys.modules["helpers_mod"])
    second = run_pipeline(str(flow), settings=settings)

    assert states(second) == {"base": StepState.CACHED, "scaled": StepState.SUCCEEDED}
    assert second.output("scaled") == 9
    assert why_rerun(second.run.id, "scaled", settings)[0].startswith(
        "code changed: changed: helpers_mod:scale"
    )


# -- failures -------------------------------------------------------------------------------------


def test_a_failing_step_fails_the_run_and_stops_it(settings: Settings) -> None:
    result = run_pipeline(target("failing"), settings=settings)

    assert result.run.status is RunState.FAILED
    step = result.step("explode")
    assert step.status is StepState.FAILED and step.error == "ValueError: boom"
    assert "raise ValueError(message)" in step.traceback
    assert states(result)["inc"] is StepState.SKIPPED
    assert "explode: ValueError: boom" in result.run.error
    with pytest.raises(PipelineFailed, match="explode: ValueError: boom"):
        result.raise_for_status()


def test_continue_on_failure_runs_independent_branches(settings: Settings) -> None:
    result = run_pipeline(target("failing"), settings=settings, fail_fast=False)

    assert result.run.status is RunState.FAILED
    assert states(result) == {
        "first": StepState.SUCCEEDED,
        "explode": StepState.FAILED,
        "inc": StepState.SKIPPED,
        "independent": StepState.SUCCEEDED,
        "inc-2": StepState.SUCCEEDED,
    }
    assert result.step("inc").error == "not run: step 'explode' failed"


def test_retries_with_backoff_until_success(settings: Settings, tmp_path: Path) -> None:
    result = run_pipeline(target("retrying"), {"folder": str(tmp_path), "failures": 2}, settings=settings)

    assert result.ok
    assert result.step("flaky").attempts == 3 and result.output("flaky") == 3


def test_retries_run_out(settings: Settings, tmp_path: Path) -> None:
    result = run_pipeline(target("retrying"), {"folder": str(tmp_path), "failures": 5}, settings=settings)

    step = result.step("flaky")
    assert step.status is StepState.FAILED and step.attempts == 3
    assert step.error == "ConnectionError: attempt 3 failed"


def test_errors_outside_retry_on_are_not_retried(settings: Settings, tmp_path: Path) -> None:
    result = run_pipeline(target("not_retried"), {"folder": str(tmp_path)}, settings=settings)

    assert result.step("wrong_error").attempts == 1
    assert (tmp_path / "wrong_error.attempts").read_text() == "1"


def test_a_step_past_its_timeout_is_stopped(settings: Settings) -> None:
    started = time.monotonic()
    result = run_pipeline(target("hanging"), {"seconds": 30.0}, settings=settings)

    assert time.monotonic() - started < 10
    step = result.step("hang")
    assert step.status is StepState.FAILED
    assert step.error == "StepTimeout: step 'hang' ran longer than its timeout of 0.5 s"


def test_a_wrong_return_type_fails_the_step(settings: Settings) -> None:
    result = run_pipeline(target("mistyped"), settings=settings)

    assert result.step("wrong_type").error == (
        "TypeError: step 'wrong_type' is annotated to return int but returned builtins.str"
    )


def test_unserializable_output_needs_the_pickle_opt_in(settings: Settings) -> None:
    refused = run_pipeline(target("unserializable"), settings=settings)
    error = refused.step("opaque").error
    assert error.startswith("InvalidInput: No serializer stores a value of type pipeline_flows.Opaque")
    assert "allow_pickle=True" in error

    allowed = run_pipeline(target("unserializable"), {"opt_in": True}, settings=settings)
    assert allowed.ok
    assert allowed.output("opaque_pickled").value == 2
    assert "allow_pickle=True" in allowed.step("opaque_pickled").stderr
    assert allowed.step("opaque_pickled").outputs["parts"][0]["serializer"] == "pickle"


def test_bad_parameters_are_refused_before_anything_runs(settings: Settings) -> None:
    with pytest.raises(PipelineParameterError, match="has no parameter 'm'"):
        run_pipeline(target("chain"), {"m": 1}, settings=settings)
    with pytest.raises(PipelineParameterError, match="needs a value for parameter 'folder'"):
        run_pipeline(target("retrying"), settings=settings)
    assert open_records(settings).list_runs() == []


def test_unknown_target_and_executor_are_clear_errors(settings: Settings) -> None:
    with pytest.raises(InvalidInput, match="No pipeline file"):
        run_pipeline("missing_file.py", settings=settings)
    with pytest.raises(InvalidInput, match="defines several pipelines"):
        run_pipeline(FLOWS, settings=settings)
    with pytest.raises(InvalidInput, match="Unknown executor 'threads'"):
        run_pipeline(target("chain"), executor="threads", settings=settings)


# -- resume ---------------------------------------------------------------------------------------


def test_resume_reruns_only_failed_and_downstream_steps(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "closed").touch()
    failed = run_pipeline(target("resumable"), {"folder": str(tmp_path)}, settings=settings, fail_fast=False)
    assert states(failed)["gate"] is StepState.FAILED and states(failed)["inc-2"] is StepState.SKIPPED

    (tmp_path / "closed").unlink()
    resumed = resume(failed.run.id, settings=settings)

    assert resumed.ok and resumed.run.resumed_from == failed.run.id
    assert states(resumed) == {
        "first": StepState.CACHED,
        "inc": StepState.CACHED,
        "gate": StepState.SUCCEEDED,
        "inc-2": StepState.SUCCEEDED,
        "independent": StepState.CACHED,
        "inc-3": StepState.CACHED,
    }
    assert resumed.step("inc").cached_from == failed.run.id
    assert resumed.output("inc-2") == 11
    with pytest.raises(InvalidState, match="nothing to resume"):
        resume(resumed.run.id, settings=settings)


def test_run_ids_resolve_by_unique_prefix(settings: Settings) -> None:
    result = run_pipeline(target("chain"), {"n": 1}, settings=settings)
    records = open_records(settings)

    assert records.get_run(result.run.id[:8]).id == result.run.id
    with pytest.raises(InvalidInput, match="too short"):
        records.get_run(result.run.id[:3])
