"""The engine: runs a built pipeline on an executor, with caching, retries and a full record.

The engine owns every decision; executors only run tasks. For each node whose inputs are
ready it builds the arguments, computes the cache key of each call, reuses verified cached
outputs, and submits the rest as tasks (mapped items in batches). It applies retries with
doubling backoff, fail-fast or continue-on-failure, and Ctrl-C; and it records everything
through :class:`~conveyor.store.sql.pipeline_records.PipelineRecords` in batched
transactions, so recording costs little per step and a crash leaves a consistent record.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from conveyor.artifacts.store import ArtifactStore
from conveyor.errors import ConveyorError
from conveyor.pipelines._graph import Const, NodeSpec, PipelineSpec, Ref
from conveyor.pipelines._tasks import (
    Arg,
    Many,
    Stored,
    Task,
    TrackingContext,
    Unit,
    UnitResult,
    Value,
    resolve,
)
from conveyor.pipelines._types import element_type
from conveyor.pipelines.cache import CacheKey, make_key, serializer_versions, value_digest
from conveyor.pipelines.executors import Completed, Executor
from conveyor.pipelines.fingerprint import CodeFingerprint, fingerprint
from conveyor.pipelines.serializers import ArtifactRef
from conveyor.pipelines.spec_json import short_value
from conveyor.store.sql.pipeline_records import (
    ArtifactRow,
    CacheEntry,
    PipelineRecords,
    RunState,
    StepChanges,
    StepRecord,
    StepState,
)

#: Seconds between record flushes while steps finish; the end of the run always flushes.
#: Each flush syncs the artifact file system and commits, which costs more than a trivial
#: step, so fast steps are recorded in batches; a crash loses at most this much record
#: (the steps then run again on resume).
FLUSH_INTERVAL = 1.0
#: Captured output kept per step in the record (mapped items share it).
MAX_STEP_LOG = 1 << 20


@dataclass(frozen=True)
class StepEvent:
    """A step changed state; the CLI's progress view is built from these."""

    node_id: str
    status: StepState
    attempt: int
    done: int
    total: int
    duration_ms: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class EngineConfig:
    run_id: str
    artifact_root: str
    storage_options: dict[str, Any] | None = None
    cache: bool = True
    fail_fast: bool = True
    tracking: TrackingContext | None = None
    spark_master: str | None = None
    spark_conf: dict[str, str] | None = None
    #: Steps of an earlier run to reuse as they are (``resume``): node id → its record.
    reuse: dict[str, StepRecord] = field(default_factory=dict)


@dataclass
class _Call:
    """One call of a node: the whole node, or one item of a mapped node."""

    index: int | None
    args: dict[str, Arg]
    key: CacheKey | None = None
    attempts: int = 0
    refs: list[ArtifactRef] | None = None
    values: list[Any] | None = None
    producer: str | None = None


@dataclass
class _Node:
    spec: NodeSpec
    position: int
    state: StepState = StepState.PENDING
    calls: dict[int | None, _Call] = field(default_factory=dict)
    waiting: set[int | None] = field(default_factory=set)
    inputs: dict[str, Any] = field(default_factory=dict)
    input_rows: list[tuple[str, ArtifactRef, str | None]] = field(default_factory=list)
    parts: dict[str, Any] | None = None
    started: int | None = None
    ended: int | None = None
    cached_from: str | None = None
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    error: str | None = None
    traceback: str | None = None
    workers: set[str] = field(default_factory=set)

    @property
    def mapped(self) -> bool:
        return self.spec.map_over is not None

    @property
    def attempts(self) -> int:
        return max((c.attempts for c in self.calls.values()), default=0)


class PipelineFailed(ConveyorError):
    """The run ended with failed steps; the message names them and their errors."""

    error_code = "PIPELINE_FAILED"
    http_status = 500
    headline = "Pipeline failed"


class Engine:
    """Runs one :class:`PipelineSpec` once; construct a new engine for each run."""

    def __init__(
        self,
        spec: PipelineSpec,
        config: EngineConfig,
        records: PipelineRecords,
        executor: Executor,
        on_event: Callable[[StepEvent], None] | None = None,
    ) -> None:
        self.spec = spec
        self.config = config
        self.records = records
        self.executor = executor
        self.on_event = on_event or (lambda _event: None)
        self.store = ArtifactStore(config.artifact_root, config.storage_options, durable=False)
        self.nodes = {
            node_id: _Node(spec.node(node_id), i) for i, node_id in enumerate(spec.topological_order())
        }
        self._changes = StepChanges()
        self._dirty: dict[str, _Node] = {}
        self._last_flush = time.monotonic()
        self._retries: list[tuple[float, int, _RetryToken]] = []
        self._sequence = 0
        self._in_flight = 0
        self._fingerprints: dict[int, CodeFingerprint] = {}
        self._versions = serializer_versions()
        self._stopping = False
        self._ready: deque[_Node] = deque()
        #: How many arguments read each node's output (an edge per reading argument).
        self._readers = {node_id: 0 for node_id in self.nodes}
        for edge in spec.edges:
            self._readers[edge.source] += 1
        #: Held while engine state changes; free while the executor waits (or runs a step).
        self._lock = threading.Lock()
        self._waiting_since: float | None = None

    # -- public ----------------------------------------------------------------------------

    def initial_records(self) -> list[StepRecord]:
        """The PENDING rows the run record starts with."""
        return [self._record(node) for node in self.nodes.values()]

    def run(self) -> RunState:
        """Run every node; return how the run ended. Ctrl-C cancels and re-raises."""
        flusher = _Flusher(self) if self.executor.runs_in_caller else None
        try:
            self._ready.extend(n for n in self.nodes.values() if not self.spec.upstream(n.spec.id))
            while True:
                with self._lock:
                    self._drain_ready()
                    if not (self._in_flight or self._retries):
                        break
                    self._release_retries()
                    timeout = self._next_wait()
                self._waiting_since = time.monotonic()
                completed = self.executor.wait(timeout)
                with self._lock:
                    self._waiting_since = None
                    for done in completed:
                        self._in_flight -= 1
                        self._finish_task(done)
                    self._maybe_flush()
        except BaseException:
            with self._lock:
                self._stop(StepState.CANCELLED)
                self.flush()
            raise
        finally:
            if flusher is not None:
                flusher.stop()
        with self._lock:
            self.flush()
        return self._outcome()

    def failures(self) -> list[tuple[str, str]]:
        """``(node id, error)`` for every failed node, in graph order."""
        return [(n.spec.id, n.error or "failed") for n in self.nodes.values() if n.state is StepState.FAILED]

    def flush(self) -> None:
        """Write every pending change of the record in one transaction."""
        for node in self._dirty.values():
            self._changes.steps.append(self._record(node))
        self._dirty.clear()
        changes, self._changes = self._changes, StepChanges()
        if changes.artifacts:
            self.store.sync()
        self.records.apply(changes)
        self._last_flush = time.monotonic()

    # -- starting a node -------------------------------------------------------------------

    def _drain_ready(self) -> None:
        """Start every ready node; a loop, not recursion, so long cached chains stay flat."""
        while self._ready:
            self._start(self._ready.popleft())

    def _start(self, node: _Node) -> None:
        if self._stopping:
            return
        if node.spec.id in self.config.reuse and self._reuse(node, self.config.reuse[node.spec.id]):
            return
        node.started = _now()
        node.state = StepState.RUNNING
        try:
            self._prepare(node)
        except Exception as exc:
            self._fail(node, f"{type(exc).__name__}: {exc}", None)
            return
        hits = self._cache_hits(node)
        node.waiting.update(index for index in node.calls if index not in hits)
        if not node.waiting:
            self._complete(node, StepState.CACHED if node.calls else StepState.SUCCEEDED)
            return
        self._touch(node)
        self._submit(node, [node.calls[i] for i in sorted(node.waiting, key=_order)])

    def _prepare(self, node: _Node) -> None:
        spec = node.spec
        args: dict[str, Arg] = {}
        for name, source in spec.inputs.items():
            args[name] = self._arg(node, name, source)
        if spec.map_over is None:
            node.calls[None] = _Call(None, args)
        else:
            items = self._items(node, spec.map_over.arg, spec.map_over.source)
            for index, item in enumerate(items):
                node.calls[index] = _Call(index, {**args, spec.map_over.arg: item})
            node.inputs[spec.map_over.arg] = {"items": len(items)}
        if spec.options.cache:
            self._make_keys(node)

    def _arg(self, node: _Node, name: str, source: Any) -> Arg:
        if isinstance(source, Const):
            node.inputs[name] = {"const": short_value(source.value)}
            return Value(source.value)
        if isinstance(source, Ref):
            arg = self._ref_arg(node, name, source)
            node.inputs[name] = _describe_arg(arg)
            return arg
        parts = tuple(self._gather_item(node, f"{name}[{i}]", item) for i, item in enumerate(source.items))
        node.inputs[name] = {"gather": [_describe_arg(p) for p in parts]}
        return Many(parts, source.kind)

    def _gather_item(self, node: _Node, label: str, item: Ref | Const) -> Arg:
        if isinstance(item, Const):
            return Value(item.value)
        return self._ref_arg(node, label, item)

    def _ref_arg(self, node: _Node, label: str, ref: Ref) -> Arg:
        producer = self.nodes[ref.node]
        if producer.mapped:
            calls = [producer.calls[i] for i in sorted(producer.calls, key=_order)]
            items = tuple(self._call_arg(node, f"{label}[{c.index}]", producer, c, 0) for c in calls)
            return Many(items, list)
        call = producer.calls[None]
        count = len(producer.spec.output_types)
        if ref.index is None and count > 1:
            parts = (self._call_arg(node, f"{label}.{i}", producer, call, i) for i in range(count))
            return Many(tuple(parts), tuple)
        return self._call_arg(node, label, producer, call, ref.index or 0)

    def _call_arg(self, node: _Node, label: str, producer: _Node, call: _Call, part: int) -> Arg:
        """The value itself when the in-process executor kept it and ``node`` is its only
        reader (a reader may mutate what it gets; others must see what was stored), else
        the stored artifact."""
        assert call.refs is not None
        ref = call.refs[part]
        node.input_rows.append((label, ref, call.producer))
        if call.values is not None and self._readers[producer.spec.id] == 1:
            return _Kept(call.values[part], ref)
        return Stored(ref)

    def _items(self, node: _Node, arg: str, source: Any) -> list[Arg]:
        if isinstance(source, Const):
            return [Value(item) for item in source.value]
        collection = self._arg(node, f"{arg}*", source)
        if isinstance(collection, Many):
            return list(collection.items)
        values = resolve(collection, self.store)
        return [Value(item) for item in values]

    # -- cache -----------------------------------------------------------------------------

    def _make_keys(self, node: _Node) -> None:
        code = self._fingerprint(node.spec.step)
        fixed = {n: a for n, a in next(iter(node.calls.values()), _Call(None, {})).args.items()}
        map_arg = node.spec.map_over.arg if node.spec.map_over else None
        params: dict[str, str] = {}
        inputs: dict[str, Any] = {}
        for name, arg in fixed.items():
            if name == map_arg:
                continue
            digest = _arg_digest(arg)
            if digest is None:
                node.parts = {"uncacheable": f"argument {name!r} has no stable hash"}
                return
            is_param = isinstance(arg, Value) and not isinstance(arg, _Kept)
            (params if is_param else inputs)[name] = digest
        for call in node.calls.values():
            item = None
            if map_arg is not None:
                item = _arg_digest(call.args[map_arg])
                if item is None:
                    node.parts = {"uncacheable": f"an item of {map_arg!r} has no stable hash"}
                    return
            call.key = make_key(code, params, inputs, self._versions, item)
        first = next(iter(node.calls.values()), None)
        if first is None or first.key is None:
            return
        node.parts = dict(first.key.parts)
        if map_arg is not None:
            node.parts["items"] = [c.key.key for c in node.calls.values() if c.key is not None]
            node.parts["item"] = None

    def _fingerprint(self, step: Any) -> CodeFingerprint:
        code = self._fingerprints.get(id(step.fn))
        if code is None:
            code = self._fingerprints[id(step.fn)] = fingerprint(step.fn)
        return code

    def _cache_hits(self, node: _Node) -> set[int | None]:
        keyed = {c.key.key: c for c in node.calls.values() if c.key is not None}
        if not keyed or not self.config.cache:
            return set()
        entries = self.records.cached(list(keyed))
        hits: set[int | None] = set()
        stale = []
        for key, entry in entries.items():
            refs = [ArtifactRef.from_dict(r) for r in entry.outputs]
            if not self._verified(refs):
                stale.append(key)
                continue
            call = keyed[key]
            call.refs, call.producer = refs, entry.run_id
            hits.add(call.index)
            node.cached_from = node.cached_from or entry.run_id
        if stale:
            self.records.forget_cache(stale)
        return hits

    def _verified(self, refs: Iterable[ArtifactRef]) -> bool:
        try:
            for ref in refs:
                self.store.verify(ref.path, ref.sha256, ref.size)
        except ConveyorError:
            return False
        return True

    def _reuse(self, node: _Node, old: StepRecord) -> bool:
        """Take a finished step of the resumed run as it is, if its outputs still verify."""
        outputs = old.outputs or {}
        if node.mapped:
            groups = {i: [ArtifactRef.from_dict(r)] for i, r in enumerate(outputs.get("items", []))}
        else:
            groups = {None: [ArtifactRef.from_dict(r) for r in outputs.get("parts", [])]}
        if not groups or not all(self._verified(refs) for refs in groups.values()):
            return False
        for index, refs in groups.items():
            node.calls[index] = _Call(index, {}, refs=refs, producer=old.cached_from or old.run_id)
        node.inputs, node.parts = old.inputs or {}, old.cache_parts
        node.started = _now()
        node.cached_from = old.cached_from or old.run_id
        self._complete(node, StepState.CACHED)
        return True

    # -- running ---------------------------------------------------------------------------

    def _submit(self, node: _Node, calls: list[_Call]) -> None:
        size = _batch_size(len(calls), self.executor.slots) if node.mapped else 1
        for start in range(0, len(calls), size):
            batch = calls[start : start + size]
            for call in batch:
                call.attempts += 1
            self._send(node, batch, attempt=batch[0].attempts)

    def _send(self, node: _Node, calls: list[_Call], attempt: int) -> None:
        spec = node.spec
        output_type = element_type(spec.output_type) if node.mapped else spec.output_type
        base = f"pipelines/{self.config.run_id}/{spec.id}"
        units = tuple(
            Unit(c.index, c.args, base + ("/out" if c.index is None else f"/items/{c.index:06d}"))
            for c in calls
        )
        task = Task(
            run_id=self.config.run_id,
            node_id=spec.id,
            step=spec.step,
            units=units,
            attempt=attempt,
            parts=1 if node.mapped else len(spec.output_types),
            output_type=output_type if output_type is not None else Any,
            artifact_root=self.config.artifact_root,
            storage_options=self.config.storage_options,
            tracking=self.config.tracking,
            keep_values=self.executor.keep_values,
            spark_master=self.config.spark_master,
            spark_conf=self.config.spark_conf,
        )
        self.executor.submit(task)
        self._in_flight += 1
        self._emit(node)

    def _finish_task(self, completed: Completed) -> None:
        node = self.nodes[completed.task.node_id]
        if node.state is not StepState.RUNNING:
            return
        retry: list[_Call] = []
        for result in completed.results:
            call = node.calls[result.index]
            self._collect_logs(node, result)
            if result.ok:
                call.refs, call.producer = result.outputs, self.config.run_id
                call.values = result.values
                node.waiting.discard(result.index)
                self._cache_entry(node, call)
            elif result.retryable and call.attempts <= node.spec.options.retries:
                retry.append(call)
            else:
                self._fail(node, _label(result) + (result.error or "failed"), result.traceback)
                return
        if retry:
            self._schedule_retry(node, retry)
        if not node.waiting:
            self._complete(node, StepState.SUCCEEDED)
        else:
            self._touch(node)

    def _schedule_retry(self, node: _Node, calls: list[_Call]) -> None:
        for call in calls:
            delay = node.spec.options.backoff * 2 ** (call.attempts - 1)
            self._sequence += 1
            heapq.heappush(self._retries, (time.monotonic() + delay, self._sequence, _RetryToken(node, call)))
        self._touch(node)

    def _release_retries(self) -> None:
        now = time.monotonic()
        while self._retries and self._retries[0][0] <= now:
            _, _, retry = heapq.heappop(self._retries)
            if retry.node.state is StepState.RUNNING and not self._stopping:
                retry.call.attempts += 1  # counted when it starts: a retry cancelled while waiting never ran
                self._send(retry.node, [retry.call], attempt=retry.call.attempts)

    def _next_wait(self) -> float | None:
        waits = [FLUSH_INTERVAL] if self._dirty or self._changes else []
        if self._retries:
            waits.append(max(0.0, self._retries[0][0] - time.monotonic()))
        return min(waits) if waits else None

    def _collect_logs(self, node: _Node, result: UnitResult) -> None:
        prefix = "" if result.index is None else f"[{result.index}] "
        for sink, text in ((node.stdout, result.stdout), (node.stderr, result.stderr)):
            if text:
                sink.append(text if not prefix else "".join(prefix + line for line in text.splitlines(True)))
        if result.worker:
            node.workers.add(result.worker)

    def _cache_entry(self, node: _Node, call: _Call) -> None:
        if call.key is None or call.refs is None:
            return
        self._changes.cache.append(
            CacheEntry(
                call.key.key, [r.to_dict() for r in call.refs], self.config.run_id, node.spec.id, _now()
            )
        )

    # -- finishing -------------------------------------------------------------------------

    def _complete(self, node: _Node, state: StepState) -> None:
        node.state, node.ended = state, _now()
        node.started = node.started or node.ended
        self._record_artifacts(node)
        self._touch(node)
        self._emit(node)
        self._release_values(node)
        for after in self.spec.downstream(node.spec.id):
            waiting = self.nodes[after]
            if waiting.state is StepState.PENDING and all(
                self.nodes[up].state.done for up in self.spec.upstream(after)
            ):
                self._ready.append(waiting)

    def _release_values(self, node: _Node) -> None:
        """Drop kept outputs once every reader has started: a long pipeline must not hold
        every intermediate DataFrame in memory until it ends."""
        for up in self.spec.upstream(node.spec.id):
            if all(self.nodes[d].state is not StepState.PENDING for d in self.spec.downstream(up)):
                for call in self.nodes[up].calls.values():
                    call.values = None

    def _fail(self, node: _Node, error: str, trace: str | None) -> None:
        node.state, node.ended = StepState.FAILED, _now()
        node.error, node.traceback = error, trace
        node.waiting.clear()
        self._touch(node)
        self._emit(node)
        if self.config.fail_fast:
            self._stop(StepState.CANCELLED)
            return
        for after in self.spec.downstream(node.spec.id, transitive=True):
            skipped = self.nodes[after]
            if skipped.state is StepState.PENDING:
                skipped.state = StepState.SKIPPED
                skipped.error = f"not run: step {node.spec.id!r} failed"
                self._touch(skipped)
                self._emit(skipped)

    def _stop(self, running_state: StepState) -> None:
        """Stop everything: running steps end as ``running_state``, pending ones are skipped."""
        self._stopping = True
        self.executor.cancel()
        self._in_flight = 0
        self._retries.clear()
        for node in self.nodes.values():
            if node.state is StepState.RUNNING:
                node.state, node.ended = running_state, _now()
            elif node.state is StepState.PENDING:
                node.state = StepState.SKIPPED
            else:
                continue
            self._touch(node)
            self._emit(node)

    def _outcome(self) -> RunState:
        states = {node.state for node in self.nodes.values()}
        if StepState.FAILED in states:
            return RunState.FAILED
        if states - {StepState.SUCCEEDED, StepState.CACHED}:
            return RunState.CANCELLED
        return RunState.SUCCEEDED

    # -- record ----------------------------------------------------------------------------

    def _record_artifacts(self, node: _Node) -> None:
        run_id, node_id = self.config.run_id, node.spec.id
        rows = self._changes.artifacts
        for label, ref, producer in node.input_rows:
            rows.append(_artifact_row(run_id, node_id, "input", label, ref, producer))
        for index in sorted(node.calls, key=_order):
            call = node.calls[index]
            for part, ref in enumerate(call.refs or []):
                name = (
                    f"[{index}]"
                    if index is not None
                    else ("return" if len(call.refs or []) == 1 else str(part))
                )
                rows.append(_artifact_row(run_id, node_id, "output", name, ref, call.producer))

    def _record(self, node: _Node) -> StepRecord:
        calls = [node.calls[i] for i in sorted(node.calls, key=_order)]
        outputs: dict[str, Any] | None = None
        if node.state.done:
            key = "items" if node.mapped else "parts"
            refs = [r for c in calls for r in (c.refs or [])]
            outputs = {key: [r.to_dict() for r in refs]}
        parts = node.parts
        key = None
        if parts is not None and "code" in parts:
            keys = [c.key.key for c in calls if c.key is not None]
            key = keys[0] if not node.mapped and keys else _combine(keys)
        return StepRecord(
            run_id=self.config.run_id,
            node_id=node.spec.id,
            step_name=node.spec.step_name,
            position=node.position,
            status=node.state,
            attempts=node.attempts,
            tasks=len(node.calls) or 1,
            start_time=node.started,
            end_time=node.ended,
            cache_key=key,
            cache_parts=parts,
            cached_from=node.cached_from if node.state is StepState.CACHED else None,
            inputs=node.inputs or None,
            outputs=outputs,
            stdout=_joined(node.stdout),
            stderr=_joined(node.stderr),
            error=node.error,
            traceback=node.traceback,
            worker=", ".join(sorted(node.workers))[:250] or None,
        )

    def _touch(self, node: _Node) -> None:
        self._dirty[node.spec.id] = node

    def _maybe_flush(self) -> None:
        if time.monotonic() - self._last_flush >= FLUSH_INTERVAL:
            self.flush()

    def _emit(self, node: _Node) -> None:
        done = sum(1 for c in node.calls.values() if c.refs is not None)
        duration = None if node.ended is None or node.started is None else node.ended - node.started
        self.on_event(
            StepEvent(
                node.spec.id, node.state, node.attempts, done, len(node.calls) or 1, duration, node.error
            )
        )


class _Flusher:
    """Records state changes while the in-process executor runs a step in the engine's thread.

    Without it, a long step would show as PENDING to anyone reading the record until it
    finished, because the engine only flushes between steps. It stays out of the way of
    short steps: it flushes only once one call has kept the engine waiting a whole interval.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="conveyor-record-flusher", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        engine = self.engine
        while not self.stopped.wait(FLUSH_INTERVAL):
            with engine._lock:
                since = engine._waiting_since
                stuck = since is not None and time.monotonic() - since >= FLUSH_INTERVAL
                if stuck and engine._dirty and not self.stopped.is_set():
                    try:
                        engine.flush()
                    except ConveyorError:
                        continue  # The database is down; the engine's own flush reports it.

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()


@dataclass(frozen=True)
class _Kept(Value):
    """An output the in-process executor kept: passed as a value, hashed as its artifact."""

    ref: ArtifactRef | None = None


@dataclass(frozen=True)
class _RetryToken:
    """A call waiting out its backoff; the heap orders by due time and sequence only."""

    node: _Node
    call: _Call


def _arg_digest(arg: Arg) -> Any:
    if isinstance(arg, _Kept) and arg.ref is not None:
        return arg.ref.sha256
    if isinstance(arg, Stored):
        return arg.ref.sha256
    if isinstance(arg, Value):
        return value_digest(arg.value)
    digests = [_arg_digest(item) for item in arg.items]
    return None if any(d is None for d in digests) else digests


def _describe_arg(arg: Arg) -> dict[str, Any]:
    if isinstance(arg, _Kept) and arg.ref is not None:
        return {"artifact": arg.ref.to_dict()}
    if isinstance(arg, Stored):
        return {"artifact": arg.ref.to_dict()}
    if isinstance(arg, Value):
        return {"const": short_value(arg.value)}
    return {"many": [_describe_arg(item) for item in arg.items]}


def _artifact_row(
    run_id: str, node_id: str, role: str, name: str, ref: ArtifactRef, producer: str | None
) -> ArtifactRow:
    return ArtifactRow(
        run_id, node_id, role, name[:250], ref.path, ref.sha256, ref.serializer, ref.size, producer
    )


def _batch_size(count: int, slots: int) -> int:
    """Enough batches to keep every slot busy with some left to balance, never more than 1000."""
    return max(1, min(1000, math.ceil(count / (slots * 4))))


def _combine(keys: list[str]) -> str | None:
    if not keys:
        return None
    return hashlib.sha256("\0".join(keys).encode()).hexdigest()


def _label(result: UnitResult) -> str:
    return "" if result.index is None else f"item {result.index}: "


def _joined(parts: list[str]) -> str | None:
    if not parts:
        return None
    text = "".join(parts)
    return text if len(text) <= MAX_STEP_LOG else text[:MAX_STEP_LOG] + "\n[conveyor: log cut]\n"


def _order(index: int | None) -> int:
    return -1 if index is None else index


def _now() -> int:
    return int(time.time() * 1000)


def new_run_id() -> str:
    return uuid.uuid4().hex


__all__ = ["Engine", "EngineConfig", "PipelineFailed", "StepEvent", "new_run_id"]
