"""The Dask executor: tasks go to a Dask distributed cluster (``dask scheduler`` + workers).

Retries, timeouts and caching stay in the engine, so they behave as on the other
executors: Dask's own retries are off (``retries=0``), and a task whose worker dies is
reported as a lost worker (a retryable attempt) instead of being silently resubmitted.
The scheduler setting ``distributed.scheduler.allowed-failures`` (3 by default) lets Dask
re-run a lost worker's task by itself first; set it to 0 for every lost worker to count as
an attempt. Dask cannot stop a task running in a worker thread, so a step past its deadline is
cancelled and recorded as timed out while the thread may finish in the background.

Workers must be able to import the pipeline's code: a pipeline given as a file is sent to
every worker (``Client.upload_file``), packages must be installed there. Step resource
hints become Dask worker resources (``cpu`` → ``CPU``, ``memory`` → ``MEMORY`` in bytes,
``gpu`` → ``GPU``); start workers with ``--resources "CPU=4 MEMORY=16e9"`` to offer them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

from conveyor.errors import BackendUnavailable, InvalidInput
from conveyor.pipelines._tasks import StepTimeout, Task, WorkerLost, execute, failed
from conveyor.pipelines.executors.base import Completed, Executor, Shipping

#: Seconds to reach the scheduler before giving up with a clear error.
CONNECT_TIMEOUT = 10.0
#: Dask resource names for step resource hints.
RESOURCE_NAMES = {"cpu": "CPU", "memory": "MEMORY", "gpu": "GPU"}


class DaskExecutor(Executor):
    name = "dask"

    def __init__(self, address: str, connect_timeout: float = CONNECT_TIMEOUT) -> None:
        self._address = address
        self._connect_timeout = connect_timeout
        self._client: Any = None
        self._futures: dict[Any, tuple[Task, float, float | None]] = {}
        self._workers = 1

    @property
    def slots(self) -> int:
        return self._workers

    @property
    def address(self) -> str | None:
        return self._address

    def open(self, shipping: Shipping, resources_needed: Sequence[dict[str, float]]) -> None:
        """Connect, check that some worker offers each step's resources, and ship the code.

        Raises:
            InvalidInput: distributed is not installed, or no worker offers what a step needs.
            BackendUnavailable: the scheduler cannot be reached in time.
        """
        try:
            from distributed import Client
        except ImportError:
            raise InvalidInput(
                "The dask executor needs dask.distributed: pip install 'conveyor[dask]'"
            ) from None
        try:
            self._client = Client(self._address, timeout=self._connect_timeout, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise BackendUnavailable(
                f"Cannot reach the Dask scheduler at {self._address} within {self._connect_timeout:g} s "
                f"({type(exc).__name__}: {exc}); is `dask scheduler` running there?"
            ) from None
        info = self._client.scheduler_info()
        offers = [w.get("resources", {}) for w in info.get("workers", {}).values()]
        threads = sum(w.get("nthreads", 1) for w in info.get("workers", {}).values())
        self._workers = max(1, threads)
        _check_resources(self._address, offers, resources_needed)
        for path in shipping.files:
            self._client.upload_file(path)

    def submit(self, task: Task) -> None:
        resources = _dask_resources(task)
        future = self._client.submit(
            execute,
            task,
            key=f"conveyor-{task.node_id}-{task.units[0].index}-{task.attempt}-{time.monotonic_ns()}",
            pure=False,
            retries=0,
            resources=resources or None,
        )
        timeout = task.step.options.timeout
        started = time.monotonic()
        self._futures[future] = (
            task,
            started,
            None if timeout is None else started + timeout * len(task.units),
        )

    def wait(self, timeout: float | None) -> list[Completed]:
        from distributed import wait

        if not self._futures:
            if timeout:
                time.sleep(timeout)
            return []
        now = time.monotonic()
        deadlines = [d - now for (_, _, d) in self._futures.values() if d is not None]
        limit = min([x for x in [timeout, *deadlines] if x is not None], default=None)
        # A timeout only means nothing finished yet; deadlines are checked below.
        with contextlib.suppress(TimeoutError), self._client.as_current():
            wait(
                list(self._futures),
                timeout=None if limit is None else max(limit, 0.001),
                return_when="FIRST_COMPLETED",
            )
        completed = [self._result(f) for f in list(self._futures) if f.done()]
        completed += self._expired()
        return completed

    def cancel(self) -> list[Task]:
        dropped = [task for task, _, _ in self._futures.values()]
        if self._client is not None and self._futures:
            self._client.cancel(list(self._futures), force=True)
        self._futures.clear()
        return dropped

    def close(self) -> None:
        self.cancel()
        if self._client is not None:
            self._client.close()
            self._client = None

    def _result(self, future: Any) -> Completed:
        task, started, _ = self._futures.pop(future)
        started_ms = int(time.time() * 1000 - (time.monotonic() - started) * 1000)
        try:
            return Completed(task, future.result())
        except Exception as exc:
            if type(exc).__name__ == "KilledWorker":
                message = f"the Dask worker running this step died ({exc})"
                return Completed(
                    task, failed(task, WorkerLost(), retryable=True, started=started_ms, message=message)
                )
            message = f"Dask could not run the task: {type(exc).__name__}: {exc}"
            return Completed(task, failed(task, exc, retryable=False, started=started_ms, message=message))

    def _expired(self) -> list[Completed]:
        now = time.monotonic()
        done = []
        for future, (task, started, deadline) in list(self._futures.items()):
            if deadline is not None and now >= deadline:
                del self._futures[future]
                future.cancel()
                started_ms = int(time.time() * 1000 - (now - started) * 1000)
                message = (
                    f"StepTimeout: step {task.step.name!r} ran longer than its timeout of "
                    f"{task.step.options.timeout:g} s; the task was cancelled on the cluster"
                )
                done.append(
                    Completed(
                        task, failed(task, StepTimeout(), retryable=True, started=started_ms, message=message)
                    )
                )
        return done


def _dask_resources(task: Task) -> dict[str, float]:
    resources = task.step.options.resources
    asked = {"cpu": resources.cpu, "memory": resources.memory, "gpu": resources.gpu}
    return {RESOURCE_NAMES[k]: float(v) for k, v in asked.items() if v}


def _check_resources(
    address: str, offers: list[dict[str, float]], needed: Sequence[dict[str, float]]
) -> None:
    if not offers:
        raise BackendUnavailable(
            f"The Dask scheduler at {address} has no workers; start `dask worker {address}`"
        )
    for want in needed:
        dask_want = {RESOURCE_NAMES[k]: v for k, v in want.items() if v}
        if not dask_want:
            continue
        if not any(
            all(offer.get(name, 0) >= amount for name, amount in dask_want.items()) for offer in offers
        ):
            shown = ", ".join(f"{k}={v:g}" for k, v in dask_want.items())
            available = "; ".join(", ".join(f"{k}={v:g}" for k, v in o.items()) or "none" for o in offers)
            raise InvalidInput(
                f"No worker of the Dask cluster at {address} offers {shown} (workers offer: {available}); "
                "start workers with --resources or lower the step's resources"
            )
