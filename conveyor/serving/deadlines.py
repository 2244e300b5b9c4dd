"""Per-request timeouts that share one timer.

``asyncio.timeout`` arms an event-loop timer for every request and disarms it after: on
uvloop that is a libuv timer made and closed per request, about 8 % of a small model's
whole request under load. Here a request only notes its deadline in a queue (one queue
per timeout value, so deadlines arrive in order), and a single timer, armed for the
earliest deadline still pending, cancels the requests whose time is up, as
``asyncio.timeout`` would: the request's task is cancelled and the handler turns that
cancellation, and only that one, into a timeout.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque

__all__ = ["Deadline", "Deadlines"]


class Deadline:
    """One request's deadline; ``expired`` once its task has been cancelled for it."""

    __slots__ = ("at", "cancelling", "expired", "task")

    def __init__(self, task: asyncio.Task[object], at: float) -> None:
        self.task: asyncio.Task[object] | None = task
        self.at = at
        #: The task's pending cancellations when the deadline was set (see :meth:`Deadlines.timed_out`).
        self.cancelling = task.cancelling()
        self.expired = False


class Deadlines:
    """The deadlines of the requests of one event loop, and the one timer that enforces them."""

    def __init__(self) -> None:
        self._queues: dict[float, deque[Deadline]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def start(self, timeout_s: float) -> Deadline:
        """Give the running task ``timeout_s`` seconds from now; :meth:`finish` it after."""
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("Deadlines.start() must run in a task")
        loop = task.get_loop()
        deadline = Deadline(task, loop.time() + timeout_s)
        queue = self._queues.get(timeout_s)
        if queue is None:
            queue = self._queues[timeout_s] = deque()
        queue.append(deadline)
        if deadline.at < self._timer_at:
            self._arm(loop, deadline.at)
        return deadline

    def finish(self, deadline: Deadline, timeout_s: float) -> None:
        """The request is done: forget its deadline (and those done before it)."""
        deadline.task = None
        queue = self._queues.get(timeout_s)
        while queue and queue[0].task is None:
            queue.popleft()

    @staticmethod
    def timed_out(deadline: Deadline) -> bool:
        """Whether a ``CancelledError`` the request got is its deadline's, and only that.

        Call it on ``CancelledError``: True means answer with a timeout; False, let the
        cancellation go on (someone else cancelled the task too, e.g. a shutdown).
        """
        task = deadline.task
        if not deadline.expired or task is None:
            return False
        return task.uncancel() <= deadline.cancelling

    def _arm(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(at, self._fire, loop)
        self._timer_at = at

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer, self._timer_at = None, math.inf
        now = loop.time()
        earliest = math.inf
        for timeout_s, queue in list(self._queues.items()):
            while queue and (queue[0].task is None or queue[0].at <= now):
                deadline = queue.popleft()
                if deadline.task is not None and not deadline.task.done():
                    deadline.expired = True
                    deadline.task.cancel()
            if queue:
                earliest = min(earliest, queue[0].at)
            else:
                del self._queues[timeout_s]
        if earliest < math.inf:
            self._arm(loop, earliest)
