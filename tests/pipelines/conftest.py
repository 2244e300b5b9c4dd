"""Pipeline fixtures: a real Dask cluster, shared by the whole session.

Tests that use ``dask_cluster`` are marked ``slow``. Its workers run under nannies, so a
test that kills one leaves the cluster to heal: the nanny starts a replacement, and such
a test should wait for it (``client.wait_for_workers(2)``) before it ends.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.testing.dask import DaskCluster, start_dask_cluster

ROOT = Path(__file__).resolve().parents[2]
#: What each worker offers; tests ask for parts of it with ``resources=``.
WORKER_RESOURCES = {"CPU": 2.0, "MEMORY": 4e9}


def worker_pythonpath() -> str:
    """Repo root and ``tests/``, so workers import ``conveyor`` and test modules by name."""
    entries = [str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]
    return os.pathsep.join(entry for entry in entries if entry)


@pytest.fixture(scope="session")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    """Two single-threaded workers with ``WORKER_RESOURCES`` each."""
    with start_dask_cluster(
        tmp_path_factory.mktemp("dask"),
        workers=2,
        resources=WORKER_RESOURCES,
        env={"PYTHONPATH": worker_pythonpath()},
        cwd=ROOT,
    ) as cluster:
        yield cluster
