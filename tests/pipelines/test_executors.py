"""The process and Dask executors: same results and semantics as in-process, real processes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from conveyor.config import Settings
from conveyor.errors import BackendUnavailable, InvalidInput
from conveyor.pipelines.runner import run_pipeline
from conveyor.store.sql.pipeline_records import RunState, StepState
from conveyor.testing.dask import DaskCluster
from conveyor.testing.processes import free_port

FLOWS = str(Path(__file__).with_name("pipeline_flows.py"))


def target(name: str) -> str:
    return f"{FLOWS}:{name}"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


# -- process executor ---------------------------------------------------------------------------


@pytest.mark.slow
def test_process_executor_runs_steps_in_worker_processes(settings: Settings) -> None:
    result = run_pipeline(target("where_run"), {"n": 4}, executor="process", workers=2, settings=settings)

    assert result.ok
    pids = set(result.output("pid_of"))
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    assert result.run.executor == "process"


@pytest.mark.slow
def test_process_executor_gives_the_same_outputs_and_cache_as_local(settings: Settings) -> None:
    local = run_pipeline(target("frames"), {"rows": 12}, settings=settings, cache=False)
    pooled = run_pipeline(target("frames"), {"rows": 12}, executor="process", settings=settings, cache=False)

    for step in ("split", "column_sum", "column_sum-2"):
        assert local.step(step).outputs == pooled.step(step).outputs | {
            "parts": [
                {**part, "path": local_part["path"]}
                for part, local_part in zip(
                    pooled.step(step).outputs["parts"], local.step(step).outputs["parts"], strict=True
                )
            ]
        }
    cached = run_pipeline(target("frames"), {"rows": 12}, executor="process", settings=settings)
    assert {s.status for s in cached.steps} == {StepState.CACHED}


@pytest.mark.slow
def test_process_executor_fans_out_and_retries(settings: Settings, tmp_path: Path) -> None:
    fanned = run_pipeline(target("fan"), {"n": 300}, executor="process", settings=settings)
    assert fanned.output("total") == sum(range(1, 301))

    retried = run_pipeline(
        target("retrying"), {"folder": str(tmp_path), "failures": 1}, executor="process", settings=settings
    )
    assert retried.ok and retried.step("flaky").attempts == 2


@pytest.mark.slow
def test_a_killed_worker_is_a_failed_attempt_that_is_retried(settings: Settings, tmp_path: Path) -> None:
    result = run_pipeline(target("dying"), {"folder": str(tmp_path)}, executor="process", settings=settings)

    assert result.ok
    step = result.step("die_once")
    assert step.attempts == 2
    assert (tmp_path / "die_once.attempts").read_text() == "2"


@pytest.mark.slow
def test_a_killed_worker_without_retries_fails_the_step_clearly(settings: Settings, tmp_path: Path) -> None:
    result = run_pipeline(target("dying_always"), executor="process", settings=settings)

    step = result.step("die_always")
    assert step.status is StepState.FAILED
    assert "worker process running this step died (exit code -9)" in step.error


@pytest.mark.slow
def test_process_executor_enforces_timeouts_in_the_worker(settings: Settings) -> None:
    started = time.monotonic()
    result = run_pipeline(target("hanging"), {"seconds": 30.0}, executor="process", settings=settings)

    assert time.monotonic() - started < 15
    assert result.step("hang").error == "StepTimeout: step 'hang' ran longer than its timeout of 0.5 s"


@pytest.mark.slow
def test_a_step_deaf_to_signals_is_killed_after_its_timeout(settings: Settings) -> None:
    started = time.monotonic()
    result = run_pipeline(target("hanging_deaf"), {"seconds": 60.0}, executor="process", settings=settings)

    assert time.monotonic() - started < 20
    step = result.step("hang_deaf")
    assert step.status is StepState.FAILED
    assert step.error == "StepTimeout: step 'hang_deaf' ran longer than its timeout of 0.5 s and was killed"


# -- dask executor ------------------------------------------------------------------------------


@pytest.mark.slow
def test_dask_executor_runs_on_the_cluster(settings: Settings, dask_cluster: DaskCluster) -> None:
    result = run_pipeline(
        target("fan"), {"n": 200}, executor="dask", address=dask_cluster.address, settings=settings
    )

    assert result.ok
    assert result.output("total") == sum(range(1, 201))
    assert result.run.executor == "dask" and result.run.executor_address == dask_cluster.address
    workers = {w.split(":")[1] for w in result.step("inc").worker.split(", ")}
    assert str(os.getpid()) not in workers
    cached = run_pipeline(
        target("fan"), {"n": 200}, executor="dask", address=dask_cluster.address, settings=settings
    )
    assert {s.status for s in cached.steps} == {StepState.CACHED}


@pytest.mark.slow
def test_dask_resources_are_checked_and_used(settings: Settings, dask_cluster: DaskCluster) -> None:
    fits = run_pipeline(
        target("resourceful"), executor="dask", address=dask_cluster.address, settings=settings
    )
    assert fits.ok and fits.output("heavy") == 0

    with pytest.raises(InvalidInput, match=r"No worker of the Dask cluster at .* offers CPU=64"):
        run_pipeline(
            target("resourceful"),
            {"greedy": True},
            executor="dask",
            address=dask_cluster.address,
            settings=settings,
        )


@pytest.mark.slow
def test_dask_retries_and_timeouts_behave_as_elsewhere(
    settings: Settings, dask_cluster: DaskCluster, tmp_path: Path
) -> None:
    retried = run_pipeline(
        target("retrying"),
        {"folder": str(tmp_path), "failures": 1},
        executor="dask",
        address=dask_cluster.address,
        settings=settings,
    )
    assert retried.ok and retried.step("flaky").attempts == 2

    started = time.monotonic()
    timed_out = run_pipeline(
        target("hanging"), {"seconds": 3.0}, executor="dask", address=dask_cluster.address, settings=settings
    )
    assert time.monotonic() - started < 15
    assert timed_out.step("hang").error.startswith(
        "StepTimeout: step 'hang' ran longer than its timeout of 0.5 s"
    )


@pytest.mark.slow
def test_a_task_whose_dask_worker_dies_is_run_again(
    settings: Settings, dask_cluster: DaskCluster, tmp_path: Path
) -> None:
    """The test cluster's scheduler has ``allowed-failures`` 0, so the lost worker reaches the
    engine as ``KilledWorker``: a failed attempt, retried by the engine like on any executor."""
    from distributed import Client

    result = run_pipeline(
        target("dying"),
        {"folder": str(tmp_path)},
        executor="dask",
        address=dask_cluster.address,
        settings=settings,
    )

    assert result.ok
    assert result.step("die_once").attempts == 2
    assert (tmp_path / "die_once.attempts").read_text() == "2"
    with Client(dask_cluster.address, timeout=30) as client:
        client.wait_for_workers(2, timeout=60)


@pytest.mark.slow
def test_an_unreachable_scheduler_is_a_clear_error_not_a_hang(settings: Settings) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match=f"Cannot reach the Dask scheduler at {address}"):
        run_pipeline(target("chain"), executor="dask", address=address, settings=settings)
    assert time.monotonic() - started < 30


def test_dask_needs_an_address(settings: Settings) -> None:
    with pytest.raises(InvalidInput, match="needs the scheduler's address"):
        run_pipeline(target("chain"), executor="dask", settings=settings)


def test_a_failed_run_leaves_no_running_step(settings: Settings) -> None:
    result = run_pipeline(target("failing"), settings=settings)

    assert result.run.status is RunState.FAILED
    assert StepState.RUNNING not in {s.status for s in result.steps}
