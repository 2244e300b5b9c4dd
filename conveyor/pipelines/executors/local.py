"""The in-process executor: one task at a time in the calling thread, for debugging.

A breakpoint in a step stops in the engine's own process, and nothing is pickled. Timeouts
use ``SIGALRM`` (see ``_tasks._alarm``), so they hold in the main thread on POSIX only.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence

from conveyor.pipelines._tasks import Task, execute
from conveyor.pipelines.executors.base import Completed, Executor, Shipping


class LocalExecutor(Executor):
    name = "local"
    keep_values = True
    runs_in_caller = True

    def __init__(self) -> None:
        self._queue: deque[Task] = deque()

    @property
    def slots(self) -> int:
        return 1

    def open(self, shipping: Shipping, resources_needed: Sequence[dict[str, float]]) -> None:
        """Nothing to start: resources are not enforced in-process."""

    def submit(self, task: Task) -> None:
        self._queue.append(task)

    def wait(self, timeout: float | None) -> list[Completed]:
        if not self._queue:
            if timeout:
                time.sleep(timeout)
            return []
        task = self._queue.popleft()
        return [Completed(task, execute(task))]

    def cancel(self) -> list[Task]:
        dropped = list(self._queue)
        self._queue.clear()
        return dropped

    def close(self) -> None:
        self._queue.clear()
