"""Adaptive batching: concurrent requests for one model version merged into one ``predict``.

Each :class:`Batcher` serves one loaded model version. Requests wait in a queue; one
task on the event loop takes what is queued (whole requests, up to ``max_batch_size``
rows; a larger request runs alone, never split), optionally waits ``max_wait_s`` for
more, concatenates the columns, runs ``predict``, and hands every request exactly its
own rows back.

``predict`` runs in a worker thread, so that the event loop keeps serving, unless the
model's cost (timed at warm-up) says it will take less than ``inline_max_s``: then it
runs on the event loop, because handing it to a thread and back would cost more than
the prediction (and a scikit-learn model holds the GIL while it predicts anyway).

No wait is needed for batches to form: while one batch predicts, the requests that
arrive queue up and become the next batch, so the batch size follows the load on its
own and a lone request pays no delay.

Requests are validated before they are queued, so a bad request never spoils a batch.
If ``predict`` still fails on a merged batch (a value the model cannot handle), each of
its requests is run alone, so that only the request that causes the failure fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from conveyor.serving.served import Outputs
from conveyor.serving.validation import Columns, MatrixColumns

__all__ = ["BatchStats", "Batcher"]

#: ``predict(columns, proba=...)``, called in a worker thread (or inline, when quick).
PredictFn = Callable[..., Outputs]
#: Told each batch's size and each request's queue time (for the metrics).
BatchObserver = Callable[["BatchStats"], None]
#: Seconds ``predict`` is expected to take on so many rows; None: unknown.
CostFn = Callable[[int], "float | None"]


@dataclass(frozen=True, slots=True)
class BatchStats:
    rows: int
    requests: int
    #: Seconds each request waited between submission and the start of its batch.
    queue_seconds: tuple[float, ...]


@dataclass(slots=True)
class _Pending:
    columns: Columns
    rows: int
    proba: bool
    future: asyncio.Future[Outputs]
    queued_at: float = field(default_factory=time.perf_counter)


class Batcher:
    """Merges the requests of one model version; see the module docstring.

    Args:
        predict: Runs the model on checked columns (in a worker thread).
        executor: The threads ``predict`` runs in.
        merge: False runs each request on its own (models that do not vectorize).
        max_batch_size: Most rows in one merged call.
        max_wait_s: How long a forming batch waits for more requests.
        observe: Called after each batch with its :class:`BatchStats`.
        cost: The expected duration of ``predict`` on n rows (measured at warm-up).
        inline_max_s: Run ``predict`` on the event loop itself, not in a worker thread,
            when ``cost`` expects it to take less than this: a tiny model's prediction
            costs less than the two thread hand-offs (0: always in a thread).
    """

    def __init__(
        self,
        predict: PredictFn,
        executor: Executor,
        *,
        merge: bool = True,
        max_batch_size: int = 256,
        max_wait_s: float = 0.0,
        observe: BatchObserver | None = None,
        cost: CostFn | None = None,
        inline_max_s: float = 0.0,
    ) -> None:
        self.predict = predict
        self.executor = executor
        self.merge = merge
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.observe = observe
        self.cost = cost
        self.inline_max_s = inline_max_s
        self._queue: deque[_Pending] = deque()
        self._arrived: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        """Start the batching task on the running event loop."""
        if self.merge and self._task is None:
            self._arrived = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def submit(self, columns: Columns, rows: int, *, proba: bool = False) -> Outputs:
        """The outputs for these rows, once their batch has run.

        Raises:
            RuntimeError: the batcher is closed.
            Exception: what ``predict`` raised for these rows.
        """
        if self._closing:
            raise RuntimeError("This model version has been retired")
        if not self.merge:
            started = time.perf_counter()
            outputs = await self._run_predict(columns, rows, proba)
            self._observe(rows, (time.perf_counter() - started,))
            return outputs
        if self._task is None or self._arrived is None:
            raise RuntimeError("Batcher.start() was not called")
        pending = _Pending(columns, rows, proba, asyncio.get_running_loop().create_future())
        self._queue.append(pending)
        self._arrived.set()
        return await pending.future

    async def close(self) -> None:
        """Run what is queued, then stop."""
        self._closing = True
        if self._task is not None and self._arrived is not None:
            self._arrived.set()
            await self._task

    # -- the batching task -----------------------------------------------------------------

    async def _run(self) -> None:
        assert self._arrived is not None
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            while self._queue:
                batch = await self._take()
                if batch:
                    await self._predict(batch)
            if self._closing and not self._queue:
                return

    async def _take(self) -> list[_Pending]:
        """The next batch: whole queued requests up to the row limit, after the optional wait."""
        batch = self._take_queued([])
        if self.max_wait_s > 0 and batch and sum(p.rows for p in batch) < self.max_batch_size:
            deadline = batch[0].queued_at + self.max_wait_s
            while sum(p.rows for p in batch) < self.max_batch_size and not self._closing:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                assert self._arrived is not None
                self._arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                batch = self._take_queued(batch)
        return batch

    def _take_queued(self, batch: list[_Pending]) -> list[_Pending]:
        rows = sum(p.rows for p in batch)
        while self._queue:
            head = self._queue[0]
            if head.future.done():  # the caller gave up (timeout, disconnect)
                self._queue.popleft()
                continue
            if batch and rows + head.rows > self.max_batch_size:
                break
            batch.append(self._queue.popleft())
            rows += head.rows
        return batch

    async def _predict(self, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        live = [p for p in batch if not p.future.done()]
        if not live:
            return
        proba = any(p.proba for p in live)
        rows = sum(p.rows for p in live)
        try:
            merged = _concat([p.columns for p in live]) if len(live) > 1 else live[0].columns
            outputs = await self._run_predict(merged, rows, proba)
        except Exception as exc:
            if len(live) == 1:
                _settle(live[0].future, exc)
            else:
                await self._one_by_one(live)
        else:
            start = 0
            for p in live:
                _settle(p.future, {k: v[start : start + p.rows] for k, v in outputs.items()})
                start += p.rows
        self._observe(rows, tuple(started - p.queued_at for p in live))

    async def _one_by_one(self, batch: list[_Pending]) -> None:
        """After a merged batch failed: each request alone, so only the culprit fails."""
        for p in batch:
            try:
                outputs = await self._run_predict(p.columns, p.rows, p.proba)
            except Exception as exc:
                _settle(p.future, exc)
            else:
                _settle(p.future, outputs)

    async def _run_predict(self, columns: Columns, rows: int, proba: bool) -> Outputs:
        """``predict`` inline when it is expected to be quick, else in a worker thread."""
        if self.inline_max_s > 0 and self.cost is not None:
            expected = self.cost(rows)
            if expected is not None and expected * (2 if proba else 1) <= self.inline_max_s:
                return self.predict(columns, proba=proba)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self._call, columns, proba)

    def _call(self, columns: Columns, proba: bool) -> Outputs:
        return self.predict(columns, proba=proba)

    def _observe(self, rows: int, waits: tuple[float, ...]) -> None:
        if self.observe is not None:
            self.observe(BatchStats(rows, len(waits), waits))


def _concat(parts: list[Columns]) -> Columns:
    merged = MatrixColumns.concat(parts)
    if merged is not None:
        return merged
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def _settle(future: asyncio.Future[Outputs], result: Outputs | BaseException) -> None:
    """Set a future's result unless its caller has gone (cancelled by a timeout)."""
    if future.done():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
