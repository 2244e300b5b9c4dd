"""The test Dask cluster: real worker processes, resources, kills and a clean stop."""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil
import pytest
from distributed import KilledWorker

from conveyor.testing.dask import DaskCluster, DaskClusterError, start_dask_cluster

pytestmark = pytest.mark.slow


def current_pid() -> int:
    return os.getpid()


def report_pid_then_block(marker: Path) -> None:
    marker.write_text(str(os.getpid()))
    time.sleep(120)


def wait_for_text(path: Path, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline, f"{path} was not written within {timeout}s"
        time.sleep(0.05)
    return path.read_text()


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_tasks_run_in_separate_worker_processes(dask_cluster: DaskCluster) -> None:
    with dask_cluster.client() as client:
        pid = client.submit(current_pid, pure=False).result(timeout=30)
    assert pid != os.getpid()
    assert pid in dask_cluster.worker_pids
    assert len(dask_cluster.worker_pids) == 2


def test_worker_resources_are_visible_to_the_scheduler(dask_cluster: DaskCluster) -> None:
    with dask_cluster.client() as client:
        workers = client.scheduler_info(n_workers=-1)["workers"].values()
        assert [info["resources"] for info in workers] == [{"CPU": 2.0, "MEMORY": 4e9}] * 2
        whole_worker = client.submit(current_pid, resources={"CPU": 2, "MEMORY": 4e9}, pure=False)
        assert whole_worker.result(timeout=30) in dask_cluster.worker_pids


def test_a_killed_worker_fails_its_task_and_the_nanny_replaces_it(
    dask_cluster: DaskCluster, tmp_path: Path
) -> None:
    marker = tmp_path / "pid"
    before = dask_cluster.worker_pids
    with dask_cluster.client() as client:
        future = client.submit(report_pid_then_block, marker, pure=False)
        pid = int(wait_for_text(marker))
        assert dask_cluster.kill_worker(before.index(pid)) == pid
        with pytest.raises(KilledWorker):
            future.result(timeout=30)
        client.wait_for_workers(2, timeout=30)
    after = dask_cluster.worker_pids
    assert pid not in after
    assert len(after) == 2


def test_without_nannies_a_killed_worker_stays_dead(tmp_path: Path) -> None:
    with start_dask_cluster(tmp_path, workers=2, nanny=False) as cluster:
        first, second = cluster.worker_pids
        assert cluster.kill_worker(0) == first
        assert cluster.worker_pids == [second]
        assert not running(first)


@pytest.mark.parametrize("nanny", [True, False], ids=["nanny", "no-nanny"])
def test_stop_leaves_no_process_behind(tmp_path: Path, nanny: bool) -> None:
    cluster = start_dask_cluster(tmp_path, workers=2, nanny=nanny)
    pids = [cluster.scheduler.pid, *(process.pid for process in cluster.workers), *cluster.worker_pids]
    cluster.stop()
    assert [pid for pid in pids if running(pid)] == []


def test_a_cluster_that_cannot_start_says_why(tmp_path: Path) -> None:
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "distributed.py").write_text('raise ImportError("distributed is broken on purpose")\n')
    started = time.monotonic()
    with pytest.raises(DaskClusterError, match=r"(?s)exited with code 1.*broken on purpose"):
        start_dask_cluster(tmp_path / "cluster", workers=1, env={"PYTHONPATH": str(shadow)})
    assert time.monotonic() - started < 30, "a process that exits is reported without waiting out the timeout"
