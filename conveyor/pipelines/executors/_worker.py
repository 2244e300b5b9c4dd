"""The loop a process-executor worker runs: receive a task, execute it, send the results."""

from __future__ import annotations

import signal
import sys
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

from conveyor.pipelines._tasks import Task, UnitResult, execute, failed


def serve(conn: Connection, sys_path: list[str]) -> None:
    """Run tasks until the engine sends ``None`` or goes away.

    Ctrl-C reaches every process of the terminal's group; the engine decides what it
    means (cancel the run), so workers ignore it rather than die mid-write.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.path[:0] = [entry for entry in sys_path if entry not in sys.path]
    while True:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):
            return
        reply = _handle(message)
        if reply is None:
            return
        conn.send(reply)


def _handle(message: bytes) -> Any:
    import pickle

    try:
        task = pickle.loads(message)
    except Exception:
        return ("unloadable", traceback.format_exc())
    if task is None:
        return None
    return ("done", execute(task))


def results_from(task: Task, reply: Any, started_ms: int) -> list[UnitResult]:
    """The engine's side of :func:`_handle`: results, or failures if the task did not load."""
    kind, payload = reply
    if kind == "done":
        return payload
    last = payload.strip().splitlines()[-1] if payload.strip() else "unknown error"
    results = failed(
        task,
        ImportError(),
        retryable=False,
        started=started_ms,
        message=f"the worker could not load the step ({last}); is its module importable there?",
    )
    for result in results:
        result.traceback = payload
        result.ended = int(time.time() * 1000)
    return results
