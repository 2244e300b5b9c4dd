"""The process executor: a pool of worker processes on this machine.

Unlike ``concurrent.futures.ProcessPoolExecutor``, which breaks the whole pool when one
worker dies, each worker here is watched on its own: a worker that is killed (SIGKILL,
the out-of-memory killer) fails only the task it was running, as a retryable attempt, and
is replaced. Workers enforce a step's timeout themselves with ``SIGALRM``; a step stuck
where a signal cannot reach it (inside C code) is killed once the timeout plus a grace
period has passed.

Workers are started with ``spawn``: the engine's process holds database connections and
threads that a ``fork`` would copy in an unusable state.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

from conveyor.pipelines._tasks import StepTimeout, Task, WorkerLost, failed
from conveyor.pipelines.executors import _worker
from conveyor.pipelines.executors.base import Completed, Executor, Shipping

#: Seconds past a task's timeout before its worker is killed from outside.
GRACE_SECONDS = 2.0


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection
    task: Task | None = None
    started: float = 0.0
    deadline: float | None = None


class ProcessExecutor(Executor):
    name = "process"

    def __init__(self, workers: int | None = None) -> None:
        self._size = workers or os.cpu_count() or 1
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []
        self._queue: deque[Task] = deque()
        self._shipping = Shipping()

    @property
    def slots(self) -> int:
        return self._size

    def open(self, shipping: Shipping, resources_needed: Sequence[dict[str, float]]) -> None:
        self._shipping = shipping
        self._workers = [self._spawn() for _ in range(self._size)]

    def submit(self, task: Task) -> None:
        self._queue.append(task)
        self._dispatch()

    def wait(self, timeout: float | None) -> list[Completed]:
        self._dispatch()
        busy = [w for w in self._workers if w.task is not None]
        if not busy:
            if timeout:
                time.sleep(timeout)
            return []
        now = time.monotonic()
        deadlines = [w.deadline - now for w in busy if w.deadline is not None]
        limit = min([timeout, *deadlines]) if timeout is not None else min(deadlines, default=None)
        handles = [w.conn for w in busy] + [w.process.sentinel for w in busy]
        ready = set(wait(handles, timeout=None if limit is None else max(limit, 0)))
        done = [self._collect(w, ready) for w in busy]
        self._dispatch()
        return [c for c in done if c is not None]

    def cancel(self) -> list[Task]:
        dropped = list(self._queue)
        self._queue.clear()
        for worker in self._workers:
            if worker.task is not None:
                dropped.append(worker.task)
                self._replace(worker, respawn=False)
        return dropped

    def close(self) -> None:
        self._queue.clear()
        for worker in self._workers:
            if worker.process.is_alive() and worker.task is None:
                try:
                    worker.conn.send(None)
                except OSError:
                    worker.process.kill()
            else:
                worker.process.kill()
        for worker in self._workers:
            worker.process.join(5)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()
        self._workers = []

    # -- internals -------------------------------------------------------------------------

    def _spawn(self) -> _Worker:
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=_worker.serve,
            args=(child, list(self._shipping.sys_path)),
            name="conveyor-worker",
            daemon=True,
        )
        process.start()
        child.close()
        return _Worker(process, parent)

    def _dispatch(self) -> None:
        for worker in self._workers:
            if not self._queue:
                return
            if worker.task is None:
                task = self._queue.popleft()
                timeout = task.step.options.timeout
                worker.task, worker.started = task, time.monotonic()
                worker.deadline = (
                    None if timeout is None else worker.started + timeout * len(task.units) + GRACE_SECONDS
                )
                # A dead worker fails the send; its sentinel reports it on the next wait.
                with contextlib.suppress(OSError, EOFError):
                    worker.conn.send(task)

    def _collect(self, worker: _Worker, ready: set[object]) -> Completed | None:
        task = worker.task
        assert task is not None
        started_ms = int(time.time() * 1000 - (time.monotonic() - worker.started) * 1000)
        if worker.conn in ready:
            try:
                reply = worker.conn.recv()
            except (EOFError, OSError):
                reply = None
            if reply is not None:
                worker.task = worker.deadline = None
                return Completed(task, _worker.results_from(task, reply, started_ms))
        if worker.conn in ready or worker.process.sentinel in ready:
            worker.process.join(1)
            code = worker.process.exitcode
            self._replace(worker)
            message = f"the worker process running this step died (exit code {code}); it may have been killed"
            return Completed(
                task, failed(task, WorkerLost(), retryable=True, started=started_ms, message=message)
            )
        if worker.deadline is not None and time.monotonic() >= worker.deadline:
            self._replace(worker)
            limit = task.step.options.timeout
            message = (
                f"StepTimeout: step {task.step.name!r} ran longer than its timeout of {limit:g} s "
                "and was killed"
            )
            return Completed(
                task, failed(task, StepTimeout(), retryable=True, started=started_ms, message=message)
            )
        return None

    def _replace(self, worker: _Worker, *, respawn: bool = True) -> None:
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join()
        worker.conn.close()
        index = self._workers.index(worker)
        if respawn:
            self._workers[index] = self._spawn()
        else:
            worker.task = worker.deadline = None
            self._workers.pop(index)
