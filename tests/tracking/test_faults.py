"""Crashes and concurrency never lose acknowledged data or leave half-written batches."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import httpx
import pytest

from conveyor.store import open_store
from conveyor.testing.processes import stop_process
from conveyor.testing.servers import start_server

POINTS_PER_BATCH = 1000


@pytest.mark.slow
def test_kill_9_during_log_batch_stream_keeps_every_acknowledged_batch(tmp_path: Path) -> None:
    url, server = start_server(tmp_path)
    try:
        api = f"{url}/api/2.0/mlflow"
        experiment = httpx.post(f"{api}/experiments/create", json={"name": "crash"}).json()["experiment_id"]
        run_id = httpx.post(f"{api}/runs/create", json={"experiment_id": experiment}).json()["run"]["info"][
            "run_id"
        ]
        acknowledged: list[int] = []
        stop = threading.Event()

        def stream() -> None:
            with httpx.Client(timeout=10) as client:
                for batch in range(10_000):
                    metrics = [
                        {"key": f"b{batch}", "value": i * 0.5, "timestamp": 1000 + i, "step": i}
                        for i in range(POINTS_PER_BATCH)
                    ]
                    try:
                        response = client.post(
                            f"{api}/runs/log-batch", json={"run_id": run_id, "metrics": metrics}
                        )
                    except httpx.TransportError:
                        return
                    if response.status_code == 200:
                        acknowledged.append(batch)
                    if stop.is_set():
                        return

        sender = threading.Thread(target=stream)
        sender.start()
        while len(acknowledged) < 25 and sender.is_alive():
            sender.join(0.01)
        os.kill(server.pid, signal.SIGKILL)
        server.wait()
        stop.set()
        sender.join(30)
    finally:
        if server.poll() is None:
            stop_process(server)

    store = open_store(f"sqlite:///{tmp_path / 'conveyor.db'}")
    run = store.get_run(run_id)
    for batch in acknowledged:
        assert len(store.get_metric_history(run_id, f"b{batch}").items) == POINTS_PER_BATCH
    stored = [key for key in run.metrics if key.startswith("b")]
    for key in stored:
        assert len(store.get_metric_history(run_id, key).items) == POINTS_PER_BATCH, f"half-written {key}"
    assert len(stored) >= len(acknowledged) >= 25
    store.close()


WRITER = textwrap.dedent(
    """
    import sys
    from conveyor.store import open_store
    from conveyor.store.entities import Metric, Param

    url, run_id, worker = sys.argv[1], sys.argv[2], sys.argv[3]
    store = open_store(url)
    for batch in range(40):
        points = [Metric(f"w{worker}", float(i), batch * 250 + i, batch * 250 + i) for i in range(250)]
        store.log_batch(run_id, metrics=points, params=[Param(f"w{worker}-b{batch}", "x")])
    """
)


@pytest.mark.slow
def test_two_processes_write_one_sqlite_store_without_loss(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'conveyor.db'}"
    store = open_store(url)
    run_id = store.create_run(store.create_experiment("parallel")).info.run_id
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, url, run_id, str(w)], stderr=subprocess.PIPE)
        for w in range(2)
    ]
    for writer in writers:
        _, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err.decode()
        assert b"locked" not in err
    run = store.get_run(run_id)
    assert len(run.params) == 80
    for worker in range(2):
        assert len(store.get_metric_history(run_id, f"w{worker}").items) == 40 * 250
    store.close()


@pytest.mark.slow
def test_parallel_first_open_migrates_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    code = "import sys; from conveyor.store import open_store; open_store(sys.argv[1]).close()"
    openers = [subprocess.Popen([sys.executable, "-c", code, url], stderr=subprocess.PIPE) for _ in range(4)]
    for opener in openers:
        _, err = opener.communicate(timeout=120)
        assert opener.returncode == 0, err.decode()
    assert open_store(url).get_experiment("0").name == "Default"
