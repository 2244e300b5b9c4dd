"""Background batching of metric points, so a training loop never waits on the network or disk.

``log_metric`` only appends to an in-memory list (about a microsecond); a daemon thread
sends what has accumulated every ``interval`` seconds or as soon as ``max_points`` are
waiting. ``flush`` blocks until everything appended so far is stored and re-raises the
first error the thread met, so a failure is never silent. Points that failed for a
passing reason (server unreachable) stay queued and are sent again on the next flush;
points the store refused (their run was deleted meanwhile) are dropped with the error,
so one bad run cannot block the others forever.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from conveyor.errors import BackendUnavailable, ConveyorError
from conveyor.store.entities import Metric

Sender = Callable[[str, Sequence[Metric]], None]


class MetricBuffer:
    def __init__(self, send: Sender, *, interval: float = 0.5, max_points: int = 20_000) -> None:
        self.send = send
        self.interval = interval
        self.max_points = max_points
        self._pending: dict[str, list[Metric]] = {}
        self._count = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._sending = threading.Lock()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    def add(self, run_id: str, metric: Metric) -> None:
        with self._lock:
            self._pending.setdefault(run_id, []).append(metric)
            self._count += 1
            full = self._count >= self.max_points
        if self._thread is None:
            self._start()
        if full:
            self._wake.set()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="conveyor-metrics", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while not self._closed:
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                self._send_pending()
                self._error = None
            except Exception as exc:
                # Kept for flush() to raise; the points stay queued for the next attempt.
                self._error = exc

    def _take(self) -> dict[str, list[Metric]]:
        with self._lock:
            taken, self._pending, self._count = self._pending, {}, 0
        return taken

    def _send_pending(self) -> None:
        """Send everything queued. A transient failure (server or database unreachable)
        puts the unsent points back and stops; a refusal (the run was deleted or ended)
        drops that run's points, which can never be stored, and the others still go."""
        refused: ConveyorError | None = None
        with self._sending:
            taken = self._take()
            for run_id in list(taken):
                points = taken[run_id]
                for start in range(0, len(points), self.max_points):
                    try:
                        self.send(run_id, points[start : start + self.max_points])
                    except BackendUnavailable:
                        self._requeue(run_id, points[start:], taken)
                        raise
                    except ConveyorError as exc:
                        refused = refused or exc
                        break
                del taken[run_id]
        if refused is not None:
            raise refused

    def _requeue(self, failed_run: str, rest: list[Metric], taken: dict[str, list[Metric]]) -> None:
        with self._lock:
            unsent = [(failed_run, rest), *((r, p) for r, p in taken.items() if r != failed_run)]
            for run_id, points in unsent:
                self._pending[run_id] = points + self._pending.get(run_id, [])
                self._count += len(points)

    def flush(self) -> None:
        """Store every point added so far, or raise why not."""
        error, self._error = self._error, None
        self._send_pending()
        if error is not None:
            raise error

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._closed = True
            self._wake.set()
