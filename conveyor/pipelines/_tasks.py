"""Running a step's task where an executor puts it: in-process, in a worker process, on Dask.

A :class:`Task` is everything a worker needs and nothing it must look up: the step (which
pickles as ``module:qualname``), each call's arguments (values, or references to stored
artifacts that the worker loads and verifies), where to write outputs, and the tracking
context. :func:`execute` runs it and returns one :class:`UnitResult` per call; it never
raises for a failing step, so every executor reports failures the same way.

A task holds several *units* when an executor batches the items of a mapped step, so
that 10,000 tiny items do not cost 10,000 round trips.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import os
import signal
import socket
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from conveyor.artifacts.store import ArtifactStore
from conveyor.pipelines import serializers
from conveyor.pipelines._types import describe, value_matches
from conveyor.pipelines.serializers import ArtifactRef, type_name

#: Captured stdout/stderr kept per call; the rest is cut with a note.
MAX_CAPTURE = 1 << 20


class StepTimeout(Exception):
    """An attempt ran past the step's ``timeout`` and was stopped by the engine."""


class WorkerLost(Exception):
    """The process running an attempt died (killed, out of memory) before it answered."""


@dataclass(frozen=True)
class Value:
    """An argument passed as an in-memory value: a literal, or an output kept in-process."""

    value: Any


@dataclass(frozen=True)
class Stored:
    """An argument read from the artifact store, verified against its hash."""

    ref: ArtifactRef


@dataclass(frozen=True)
class Many:
    """A list or tuple assembled from several arguments (fan-in, mapped outputs, tuple parts)."""

    items: tuple[Arg, ...]
    kind: type = list


Arg = Value | Stored | Many


@dataclass(frozen=True)
class Unit:
    """One call of the step function."""

    #: Item number for a mapped step; ``None`` otherwise.
    index: int | None
    args: Mapping[str, Arg]
    #: Output path without extension; tuple parts get ``.0``, ``.1``… appended.
    output_base: str


@dataclass(frozen=True)
class TrackingContext:
    """Where a step's ``conveyor.log_metric`` calls go: a child run of the pipeline's run."""

    uri: str
    parent_run_id: str
    experiment_id: str


@dataclass(frozen=True)
class Task:
    run_id: str
    node_id: str
    step: Any
    units: tuple[Unit, ...]
    attempt: int
    #: Number of declared outputs: a step annotated ``-> tuple[A, B]`` stores each part.
    parts: int
    #: Declared type of the whole return value, checked at run time.
    output_type: Any
    artifact_root: str
    storage_options: Mapping[str, Any] | None = None
    tracking: TrackingContext | None = None
    #: Keep returned values in the result (in-process executor: consumers skip a load).
    keep_values: bool = False
    spark_master: str | None = None
    spark_conf: Mapping[str, str] | None = None


@dataclass
class UnitResult:
    index: int | None
    ok: bool
    started: int
    ended: int
    outputs: list[ArtifactRef] = field(default_factory=list)
    values: list[Any] | None = None
    stdout: str = ""
    stderr: str = ""
    error: str | None = None
    error_type: str | None = None
    traceback: str | None = None
    #: Whether the step's ``retry_on`` covers the error (lost workers and timeouts always are).
    retryable: bool = False
    worker: str = ""


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def execute(task: Task) -> list[UnitResult]:
    """Run every unit of ``task`` here; failures become results, never exceptions."""
    store = _artifact_store(task.artifact_root, task.storage_options)
    return [_run_unit(task, unit, store) for unit in task.units]


def failed(
    task: Task, error: BaseException, *, retryable: bool, started: int, message: str
) -> list[UnitResult]:
    """Results for every unit of a task that died as a whole (lost worker, hard timeout)."""
    now = int(time.time() * 1000)
    return [
        UnitResult(
            index=unit.index,
            ok=False,
            started=started,
            ended=now,
            error=message,
            error_type=type_name(error),
            retryable=retryable,
        )
        for unit in task.units
    ]


def _run_unit(task: Task, unit: Unit, store: ArtifactStore) -> UnitResult:
    started = int(time.time() * 1000)
    result = UnitResult(index=unit.index, ok=False, started=started, ended=started, worker=worker_name())
    out, err = _Capture(), _Capture()
    step = task.step
    try:
        kwargs = {name: resolve(arg, store) for name, arg in unit.args.items()}
        with _captured(out, err), _tracking(task, unit), _alarm(step.options.timeout, step.name):
            value = _call(task, kwargs)
        _check_type(task, value)
        result.outputs = _store_outputs(task, unit, store, value, err)
        if task.keep_values:
            result.values = _parts(task, value)
        result.ok = True
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        result.error_type = type_name(type(exc))
        result.traceback = traceback.format_exc()
        result.retryable = isinstance(exc, (StepTimeout, *step.options.retry_on))
    finally:
        result.ended = int(time.time() * 1000)
        result.stdout, result.stderr = out.text(), err.text()
    return result


def _call(task: Task, kwargs: dict[str, Any]) -> Any:
    step = task.step
    if step.options.spark:
        from conveyor.pipelines.spark import inject_spark

        kwargs = inject_spark(kwargs, inspect.signature(step.fn), task.spark_master, task.spark_conf)
    return step.fn(**kwargs)


def _check_type(task: Task, value: Any) -> None:
    if not value_matches(value, task.output_type):
        raise TypeError(
            f"step {task.step.name!r} is annotated to return {describe(task.output_type)} "
            f"but returned {type_name(value)}"
        )
    if task.parts > 1 and (not isinstance(value, tuple) or len(value) != task.parts):
        raise TypeError(
            f"step {task.step.name!r} is annotated to return a tuple of {task.parts} values "
            f"but returned {type_name(value)}"
        )


def _parts(task: Task, value: Any) -> list[Any]:
    return list(value) if task.parts > 1 else [value]


def _store_outputs(
    task: Task, unit: Unit, store: ArtifactStore, value: Any, err: _Capture
) -> list[ArtifactRef]:
    allow_pickle = task.step.options.allow_pickle
    refs = []
    parts = _parts(task, value)
    for number, part in enumerate(parts):
        base = unit.output_base if len(parts) == 1 else f"{unit.output_base}.{number}"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", serializers.PickleFallbackWarning)
            serializer = serializers.for_value(part, allow_pickle=allow_pickle)
        for warning in caught:
            err.write(f"warning: {warning.message}\n")
        refs.append(serializer.save(store, base + serializer.extension, part))
    return refs


def resolve(arg: Arg, store: ArtifactStore) -> Any:
    """The value an argument stands for, loading (and verifying) stored artifacts."""
    if isinstance(arg, Value):
        return arg.value
    if isinstance(arg, Stored):
        return serializers.load_ref(store, arg.ref)
    return arg.kind(resolve(item, store) for item in arg.items)


_stores: dict[tuple[str, str], ArtifactStore] = {}


def _artifact_store(root: str, options: Mapping[str, Any] | None) -> ArtifactStore:
    """One store per root and process, so a worker opens its file system once.

    Writes skip the per-file fsync: the engine syncs the file system once before it
    records a batch of finished steps, which is when their outputs count as stored.
    """
    key = (root, repr(sorted((options or {}).items())))
    store = _stores.get(key)
    if store is None:
        store = _stores[key] = ArtifactStore(root, options, durable=False)
    return store


# -- capture --------------------------------------------------------------------------------


class _Capture(io.TextIOBase):
    """A bounded text sink: a step that prints gigabytes cannot exhaust the engine's memory."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._size = 0
        self._dropped = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        room = MAX_CAPTURE - self._size
        kept = text[:room] if room > 0 else ""
        if kept:
            self._parts.append(kept)
            self._size += len(kept)
        self._dropped += len(text) - len(kept)
        return len(text)

    def text(self) -> str:
        body = "".join(self._parts)
        if self._dropped:
            body += f"\n[conveyor: {self._dropped} more characters not kept]\n"
        return body


class _ThreadRouter(io.TextIOBase):
    """``sys.stdout`` replacement that sends each thread's writes to that thread's sink.

    Dask runs several tasks in threads of one process, and the in-process executor's
    progress display writes from another thread: a plain ``redirect_stdout`` would mix
    them up.
    """

    def __init__(self, fallback: Any) -> None:
        self.fallback = fallback
        self.sinks: dict[int, _Capture] = {}

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        sink = self.sinks.get(threading.get_ident())
        return (sink or self.fallback).write(text)

    def flush(self) -> None:
        if threading.get_ident() not in self.sinks:
            self.fallback.flush()


_router_lock = threading.Lock()


@contextlib.contextmanager
def _captured(out: _Capture, err: _Capture) -> Iterator[None]:
    with _router_lock:
        routers = []
        for name in ("stdout", "stderr"):
            current = getattr(sys, name)
            if not isinstance(current, _ThreadRouter):
                current = _ThreadRouter(current)
                setattr(sys, name, current)
            routers.append(current)
    me = threading.get_ident()
    routers[0].sinks[me], routers[1].sinks[me] = out, err
    try:
        yield
    finally:
        routers[0].sinks.pop(me, None)
        routers[1].sinks.pop(me, None)


# -- timeouts and tracking ------------------------------------------------------------------


@contextlib.contextmanager
def _alarm(seconds: float | None, step_name: str) -> Iterator[None]:
    """Interrupt the call after ``seconds`` where a signal can: the main thread on POSIX.

    Elsewhere (Dask worker threads) the executor enforces the deadline from outside.
    """
    usable = (
        seconds is not None
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return

    def expire(_signum: int, _frame: object) -> None:
        raise StepTimeout(f"step {step_name!r} ran longer than its timeout of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def _tracking(task: Task, unit: Unit) -> Iterator[None]:
    if task.tracking is None:
        yield
        return
    from conveyor.tracking import fluent

    name = task.node_id if unit.index is None else f"{task.node_id}[{unit.index}]"
    context = task.tracking
    with fluent.run_on_demand(
        context.uri,
        context.experiment_id,
        name,
        {"mlflow.parentRunId": context.parent_run_id, "conveyor.pipeline.step": task.node_id},
    ):
        yield
