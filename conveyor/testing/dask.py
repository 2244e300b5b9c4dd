"""Start a real Dask cluster (a scheduler and worker processes) for executor tests.

Why separate processes rather than an in-process ``LocalCluster``: executor tests must
prove that a task ran somewhere else and that a worker killed with SIGKILL mid-task (what
the kernel's OOM killer does) surfaces as a failed attempt. That needs workers with
their own pids that a test can kill.

Two choices make the cluster behave the way the engine expects:

* **Nannies, as in production.** ``dask worker`` runs each worker under a nanny unless
  told otherwise. When the worker process dies, the scheduler drops it at once and the
  nanny starts a fresh one (new pid, new address, same name) about a second later, so a
  session-wide cluster heals after a kill test. With ``nanny=False`` a killed worker stays
  dead and the cluster shrinks.
* **No silent Dask retries** (``allowed_failures=0``). Dask normally reruns a task whose
  worker died, up to three times, so the engine would never see the attempt fail. At 0
  the task's future raises :class:`distributed.KilledWorker` at once and the engine's own
  retry policy (``@step(retries=...)``) decides what happens next.

Example (a session fixture)::

    with start_dask_cluster(tmp_path_factory.mktemp("dask"), resources={"CPU": 2}) as cluster:
        yield cluster
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.testing.processes import free_port, log_tail, stop_process

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["DaskCluster", "DaskClusterError", "start_dask_cluster"]

_START_TIMEOUT_S = 60.0
_CLIENT_TIMEOUT_S = 10.0
#: Workers that lose the scheduler (say, the test session crashed) exit after this long.
_DEATH_TIMEOUT_S = 60


class DaskClusterError(RuntimeError):
    """The cluster did not come up, or a worker did not go away; the message has the logs."""


@dataclass
class DaskCluster:
    """A scheduler and its workers on 127.0.0.1; a context manager that stops them all."""

    #: The ``dask scheduler`` process.
    scheduler: subprocess.Popen[bytes]
    #: One ``dask worker`` process per worker, in name order: the nannies when the
    #: cluster runs them, else the workers themselves. Task pids are in ``worker_pids``.
    workers: list[subprocess.Popen[bytes]]
    port: int
    #: Holds ``scheduler.log``, ``worker-<i>.log`` and each worker's local directory.
    workdir: Path

    @property
    def address(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    @property
    def worker_pids(self) -> list[int]:
        """Pids of the processes that run tasks, in worker-name order, asked of the scheduler.

        Asked rather than remembered because a nanny replaces a killed worker with a new
        process; index ``i`` is the ``i``-th worker the scheduler knows now.
        """
        with self.client() as client:
            return [pid for _, pid in _live_workers(client)]

    def client(self) -> Client:
        """A new client of this cluster; close it (``with cluster.client() as client:``)."""
        from distributed import Client

        return Client(self.address, timeout=_CLIENT_TIMEOUT_S, set_as_default=False)

    def kill_worker(self, index: int) -> int:
        """SIGKILL the ``index``-th worker process and wait until the scheduler drops it.

        Waiting makes the effect deterministic for the caller: once this returns, tasks
        that were running there have been rescheduled or failed with ``KilledWorker``.
        ``index`` counts as in :attr:`worker_pids`; to kill the worker that runs a given
        task, have the task report its pid and pass ``worker_pids.index(pid)``.

        Returns:
            The pid that was killed.
        """
        with self.client() as client:
            address, pid = _live_workers(client)[index]
            os.kill(pid, signal.SIGKILL)
            self._reap(pid)
            gone = _poll(
                lambda: address not in client.scheduler_info(n_workers=-1)["workers"],
                deadline=time.monotonic() + _START_TIMEOUT_S,
            )
        if not gone:
            raise DaskClusterError(f"the scheduler still lists worker {address} (pid {pid}) after SIGKILL")
        return pid

    def stop(self) -> None:
        """Stop the workers, then the scheduler; a nanny takes its worker down with it.

        Workers go first because one whose scheduler has already gone keeps trying to say
        goodbye to it for seconds before it exits.
        """
        for process in [*self.workers, self.scheduler]:
            stop_process(process)

    def logs(self) -> str:
        """The end of every process's log, for error messages."""
        paths = [self.workdir / "scheduler.log"]
        paths += [_worker_log(self.workdir, index) for index in range(len(self.workers))]
        return "\n".join(f"--- {path.name} ---\n{log_tail(path)}" for path in paths)

    def _reap(self, pid: int) -> None:
        # Without nannies the killed worker is our child; wait() keeps it from lingering
        # as a zombie. With nannies the nanny reaps it.
        for process in self.workers:
            if process.pid == pid:
                process.wait()

    def __enter__(self) -> DaskCluster:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_dask_cluster(
    workdir: Path,
    *,
    workers: int = 2,
    resources: Mapping[str, float] | None = None,
    nthreads: int = 1,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    nanny: bool = True,
    allowed_failures: int = 0,
) -> DaskCluster:
    """Start ``dask scheduler`` and ``workers`` ``dask worker`` processes on free local ports.

    Args:
        workdir: Folder for logs and worker scratch space; use a fresh temporary folder.
        workers: How many worker processes.
        resources: Abstract resources each worker offers (``{"CPU": 2, "MEMORY": 4e9}``),
            which tasks submitted with ``resources=`` consume.
        nthreads: Threads per worker, i.e. tasks one worker runs at a time.
        env: Extra environment for every process, e.g. ``PYTHONPATH`` so that workers can
            import the functions tests submit.
        cwd: Working directory of every process; default: this process's.
        nanny: Run each worker under a nanny, which restarts it when it dies.
        allowed_failures: Worker deaths a task survives before it fails with
            ``KilledWorker`` (Dask's default is 3; see the module docstring).

    Returns:
        A cluster whose scheduler already lists all ``workers``.

    Raises:
        DaskClusterError: a process exited, or the workers did not register within 60 s;
            the message carries the end of every log.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    process_env = {**os.environ, **(env or {})}
    scheduler_env = {**process_env, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": str(allowed_failures)}
    scheduler = _launch(_scheduler_command(port), workdir / "scheduler.log", scheduler_env, cwd)
    cluster = DaskCluster(scheduler=scheduler, workers=[], port=port, workdir=workdir)
    try:
        for index in range(workers):
            command = _worker_command(cluster.address, workdir, index, nthreads, resources, nanny)
            cluster.workers.append(_launch(command, _worker_log(workdir, index), process_env, cwd))
        _wait_until_ready(cluster)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _scheduler_command(port: int) -> list[str]:
    return [
        sys.executable, "-m", "distributed.cli.dask_scheduler",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--no-dashboard",
        "--no-show",
    ]  # fmt: skip


def _worker_command(
    address: str,
    workdir: Path,
    index: int,
    nthreads: int,
    resources: Mapping[str, float] | None,
    nanny: bool,
) -> list[str]:
    command = [
        sys.executable, "-m", "distributed.cli.dask_worker", address,
        "--host", "127.0.0.1",
        "--name", f"worker-{index}",
        "--nthreads", str(nthreads),
        "--no-dashboard",
        "--nanny" if nanny else "--no-nanny",
        "--local-directory", str(workdir / f"worker-{index}"),
        "--death-timeout", str(_DEATH_TIMEOUT_S),
    ]  # fmt: skip
    if resources:
        command += ["--resources", " ".join(f"{name}={amount}" for name, amount in resources.items())]
    return command


def _worker_log(workdir: Path, index: int) -> Path:
    return workdir / f"worker-{index}.log"


def _launch(
    command: list[str], log_path: Path, env: dict[str, str], cwd: Path | None
) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd)


def _live_workers(client: Client) -> list[tuple[str, int]]:
    """(address, pid) of each worker, in name order; pids come from the workers themselves."""
    pids: dict[str, int] = client.run(os.getpid, on_error="ignore")
    workers = client.scheduler_info(n_workers=-1)["workers"]
    names = {address: str(info["name"]) for address, info in workers.items()}
    return sorted(pids.items(), key=lambda item: names.get(item[0], item[0]))


def _wait_until_ready(cluster: DaskCluster) -> None:
    """Return once the scheduler lists every worker; fail fast if a process exits."""
    deadline = time.monotonic() + _START_TIMEOUT_S

    def listening() -> bool:
        _raise_if_exited(cluster)
        return _accepts_connections(cluster.port)

    if _poll(listening, deadline):
        expected = len(cluster.workers)
        with cluster.client() as client:

            def registered() -> bool:
                _raise_if_exited(cluster)
                return len(client.scheduler_info(n_workers=-1)["workers"]) >= expected

            if _poll(registered, deadline):
                return
    raise DaskClusterError(
        f"the cluster at {cluster.address} did not list {len(cluster.workers)} worker(s) "
        f"within {_START_TIMEOUT_S:.0f}s.\n{cluster.logs()}"
    )


def _raise_if_exited(cluster: DaskCluster) -> None:
    for process in [cluster.scheduler, *cluster.workers]:
        if process.poll() is not None:
            raise DaskClusterError(
                f"`{' '.join(map(str, process.args))}` exited with code {process.returncode} "
                f"while the cluster was starting.\n{cluster.logs()}"
            )


def _poll(condition: Callable[[], bool], deadline: float) -> bool:
    """Whether ``condition`` came true before ``deadline`` (a ``time.monotonic()`` value)."""
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
