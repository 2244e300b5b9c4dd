"""Running pipelines from Python and the CLI: run, resume, inspect, explain a re-run.

::

    from conveyor.pipelines import run_pipeline

    result = run_pipeline("churn.py", {"C": 0.5}, executor="process")
    result.raise_for_status()
    model = result.output("train")

Every run is recorded in the metadata store (``conveyor pipeline runs``) and owns a
tracking run in the experiment named after the pipeline, into which steps log with the
usual ``conveyor.log_metric`` calls (each step that logs gets a child run).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.config import Settings
from conveyor.errors import InvalidInput, InvalidState, NotFound
from conveyor.pipelines import serializers
from conveyor.pipelines._environment import describe_environment
from conveyor.pipelines._tasks import TrackingContext
from conveyor.pipelines.cache import explain
from conveyor.pipelines.definition import Pipeline, PipelineSpec
from conveyor.pipelines.engine import Engine, EngineConfig, PipelineFailed, StepEvent, new_run_id
from conveyor.pipelines.executors import make_executor
from conveyor.pipelines.executors.base import Executor, Shipping
from conveyor.pipelines.loading import Loaded, load_target
from conveyor.pipelines.serializers import ArtifactRef
from conveyor.pipelines.spec_json import spec_to_json
from conveyor.store.base import TrackingStore
from conveyor.store.entities import RunStatus
from conveyor.store.sql.pipeline_records import (
    PipelineRecords,
    PipelineRun,
    RunState,
    StepRecord,
    StepState,
)
from conveyor.store.sql.store import SqlStore

_TRACKING_END = {
    RunState.SUCCEEDED: RunStatus.FINISHED,
    RunState.FAILED: RunStatus.FAILED,
    RunState.CANCELLED: RunStatus.KILLED,
}


@dataclass(frozen=True)
class RunResult:
    """A finished pipeline run: its record, its steps, and access to its outputs."""

    run: PipelineRun
    steps: list[StepRecord]
    settings: Settings

    @property
    def ok(self) -> bool:
        return self.run.status is RunState.SUCCEEDED

    def step(self, node_id: str) -> StepRecord:
        for step in self.steps:
            if step.node_id == node_id:
                return step
        known = ", ".join(s.node_id for s in self.steps)
        raise InvalidInput(f"Run {self.run.id} has no step {node_id!r}; its steps: {known}")

    def output(self, node_id: str) -> Any:
        """The value a step returned, loaded from the artifact store and verified."""
        return load_output(self.step(node_id), self.settings)

    def raise_for_status(self) -> None:
        """Raise :class:`PipelineFailed` unless the run succeeded."""
        if self.ok:
            return
        failed = [f"{s.node_id}: {s.error}" for s in self.steps if s.status is StepState.FAILED]
        detail = "; ".join(failed) or self.run.error or self.run.status.value.lower()
        raise PipelineFailed(f"Pipeline run {self.run.id} {self.run.status.value.lower()}: {detail}")


def load_output(step: StepRecord, settings: Settings) -> Any:
    """Load a recorded step's return value (a list for a mapped step, a tuple for parts)."""
    from conveyor.artifacts.store import ArtifactStore

    if not step.status.done or not step.outputs:
        raise InvalidState(f"Step {step.node_id!r} has no outputs: it is {step.status.value}")
    store = ArtifactStore(settings.resolved_artifact_root(), settings.artifact_storage_options)
    if "items" in step.outputs:
        return [serializers.load_ref(store, ArtifactRef.from_dict(r)) for r in step.outputs["items"]]
    parts = [serializers.load_ref(store, ArtifactRef.from_dict(r)) for r in step.outputs["parts"]]
    return parts[0] if len(parts) == 1 else tuple(parts)


def open_records(settings: Settings) -> PipelineRecords:
    """The pipeline record of the settings' database (pipelines need the database itself).

    Raises:
        InvalidInput: the configured store is not a SQL database.
    """
    from conveyor.store import open_store

    store = open_store(settings.resolved_database_url(), upgrade=settings.auto_upgrade)
    if not isinstance(store, SqlStore):
        raise InvalidInput(
            "Pipeline runs are recorded in the metadata database: set CONVEYOR_DATABASE_URL "
            "(a tracking server URL is not enough)"
        )
    return PipelineRecords(store)


def run_pipeline(
    pipeline: Pipeline | str,
    params: Mapping[str, Any] | None = None,
    *,
    executor: str = "local",
    address: str | None = None,
    workers: int | None = None,
    cache: bool = True,
    fail_fast: bool = True,
    settings: Settings | None = None,
    on_event: Callable[[StepEvent], None] | None = None,
    schedule_id: str | None = None,
    on_start: Callable[[PipelineRun], None] | None = None,
) -> RunResult:
    """Build ``pipeline`` with ``params`` and run it; the result says how it ended.

    Args:
        pipeline: A :class:`Pipeline`, or a target such as ``"churn.py"``,
            ``"churn.py:churn"`` or ``"pkg.module:churn"``.
        params: Typed parameter values (text from a command line goes through
            :meth:`Pipeline.parse_params` first); missing ones take their defaults.
        executor: ``local``, ``process`` or ``dask`` (with ``address``).
        cache: Reuse cached outputs (``False``: run every step, still recording keys).
        fail_fast: Stop at the first failed step; ``False`` runs every step that does not
            depend on a failed one.

    Raises:
        PipelineParameterError, PipelineDefinitionError: before anything runs.
        InvalidInput: an unknown executor or target.
        BackendUnavailable: the database, or the Dask scheduler, is unreachable.
    """
    settings = settings or Settings()
    loaded = _loaded(pipeline)
    spec = loaded.pipeline.build(**dict(params or {}))
    return _execute(
        loaded,
        spec,
        _Options(executor, address, workers, cache, fail_fast, schedule_id, None),
        settings,
        on_event,
        on_start,
    )


def resume(
    run_id: str,
    *,
    executor: str | None = None,
    address: str | None = None,
    workers: int | None = None,
    settings: Settings | None = None,
    on_event: Callable[[StepEvent], None] | None = None,
    on_start: Callable[[PipelineRun], None] | None = None,
) -> RunResult:
    """Run again what failed, was skipped or cancelled in ``run_id``; reuse what finished.

    The pipeline is loaded again from the recorded target and built with the recorded
    parameters. Finished steps are reused as they are (their outputs verified), whatever
    their code now is; the others run, with the cache on.

    Raises:
        InvalidState: the run succeeded (nothing to resume) or is still running.
    """
    settings = settings or Settings()
    records = open_records(settings)
    old = records.get_run(run_id)
    if old.status is RunState.SUCCEEDED:
        raise InvalidState(f"Pipeline run {old.id} succeeded; there is nothing to resume")
    loaded = load_target(old.target)
    params = {name: value for name, value in old.params.items()}
    spec = loaded.pipeline.build(**loaded.pipeline.parse_params(_as_text(params, loaded.pipeline)))
    reuse = {s.node_id: s for s in records.steps(old.id) if s.status.done}
    options = _Options(
        executor or old.executor,
        address if address is not None else old.executor_address,
        workers,
        True,
        old.mode == "fail_fast",
        None,
        old.id,
        reuse,
    )
    return _execute(loaded, spec, options, settings, on_event, on_start)


def why_rerun(run_id: str, node_id: str, settings: Settings | None = None) -> list[str]:
    """Why ``node_id`` ran in ``run_id`` instead of reusing an earlier output: one line each.

    Compares the step's cache key parts with those of its latest earlier execution in a
    run of the same pipeline.
    """
    records = open_records(settings or Settings())
    run = records.get_run(run_id)
    step = records.step(run.id, node_id)
    if step.status is StepState.CACHED:
        return [f"{node_id} did not run: its outputs were reused from run {step.cached_from}"]
    parts = step.cache_parts or {}
    if "uncacheable" in parts:
        return [f"{node_id} cannot be cached: {parts['uncacheable']}"]
    if not step.cache_parts:
        return [f"{node_id} has cache=False: it runs every time"]
    if not run.spec.get("cache", True):
        return [f"{node_id} ran because the run had the cache off (--no-cache)"]
    previous = records.previous_step(run.pipeline, node_id, run.start_time, run.id)
    if previous is None:
        return [f"{node_id} had not run before in pipeline {run.pipeline!r}: no earlier output to reuse"]
    where = f"compared with run {previous.run_id}"
    lines = explain(previous.cache_parts or {}, parts)
    if not lines:
        return [
            f"{node_id}: its cache key is unchanged ({where}), but no stored output could be reused: "
            "the earlier execution did not succeed, or its outputs were deleted or failed verification"
        ]
    return [f"{line} ({where})" for line in lines]


# -- internals ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Options:
    executor: str
    address: str | None
    workers: int | None
    cache: bool
    fail_fast: bool
    schedule_id: str | None
    resumed_from: str | None
    reuse: dict[str, StepRecord] | None = None


def _loaded(pipeline: Pipeline | str) -> Loaded:
    if isinstance(pipeline, str):
        return load_target(pipeline)
    if not isinstance(pipeline, Pipeline):
        raise InvalidInput(
            f"run_pipeline() takes a @pipeline or a target string, got {type(pipeline).__name__}"
        )
    module = pipeline.fn.__module__
    file = getattr(sys.modules.get(module), "__file__", None)
    if file and "." not in module:
        # A top-level module (a script, or a file imported from its folder) is found again
        # by its path; a module inside a package by its dotted name.
        path = Path(file).resolve()
        return Loaded(pipeline, f"{path}:{pipeline.name}", (str(path.parent),), str(path))
    return Loaded(pipeline, f"{module}:{pipeline.name}", (str(Path.cwd()),), None)


def _execute(
    loaded: Loaded,
    spec: PipelineSpec,
    options: _Options,
    settings: Settings,
    on_event: Callable[[StepEvent], None] | None,
    on_start: Callable[[PipelineRun], None] | None,
) -> RunResult:
    executor = make_executor(options.executor, address=options.address, workers=options.workers)
    records = open_records(settings)
    store = records.store
    run_id = new_run_id()
    tracker = _tracking_store(settings, store)
    folder = Path(loaded.file).parent if loaded.file else None
    tracking_run_id, experiment_id, tracking_tags = _start_tracking(tracker, spec, run_id, folder)
    tracking = TrackingContext(
        settings.tracking_uri or settings.resolved_database_url(), tracking_run_id, experiment_id
    )
    config = EngineConfig(
        run_id=run_id,
        artifact_root=settings.resolved_artifact_root(),
        storage_options=dict(settings.artifact_storage_options) or None,
        cache=options.cache,
        fail_fast=options.fail_fast,
        tracking=tracking,
        spark_master=getattr(settings, "spark_master", None),
        spark_conf=dict(getattr(settings, "spark_conf", {}) or {}) or None,
        reuse=options.reuse or {},
    )
    engine = Engine(spec, config, records, executor, on_event)
    try:
        _open_executor(executor, loaded, spec)
    except BaseException:
        tracker.update_run_info(tracking_run_id, status=RunStatus.FAILED, end_time=_now())
        if tracker is not store:
            tracker.close()
        raise
    record = _run_record(loaded, spec, options, executor, run_id, tracking_run_id, tracking_tags)
    records.create_run(record, engine.initial_records())
    if options.schedule_id is not None:
        _record_scheduled_run(store, options.schedule_id, run_id)
    if on_start is not None:
        on_start(record)
    state, error = RunState.FAILED, None
    try:
        state = engine.run()
    except KeyboardInterrupt:
        state, error = RunState.CANCELLED, "cancelled (Ctrl-C)"
        raise
    except BaseException as exc:
        error = f"engine error: {type(exc).__name__}: {exc}"
        raise
    finally:
        executor.close()
        if error is None and state is RunState.FAILED:
            error = "; ".join(f"{n}: {e}" for n, e in engine.failures())[:4000]
        records.finish_run(run_id, state, _now(), error)
        tracker.update_run_info(tracking_run_id, status=_TRACKING_END[state], end_time=_now())
        if tracker is not store:
            tracker.close()
    return RunResult(records.get_run(run_id), records.steps(run_id), settings)


def _record_scheduled_run(store: SqlStore, schedule_id: str, run_id: str) -> None:
    from conveyor.store.sql.schedules import ScheduleStore

    with contextlib.suppress(NotFound):  # the schedule was deleted meanwhile
        ScheduleStore(store).record_run(schedule_id, run_id)


def _open_executor(executor: Executor, loaded: Loaded, spec: PipelineSpec) -> None:
    wanted = []
    for node in spec.nodes:
        resources = node.options.resources
        asked = {"cpu": resources.cpu, "memory": resources.memory, "gpu": resources.gpu}
        wanted.append({k: float(v) for k, v in asked.items() if v is not None})
    paths = tuple(dict.fromkeys([*loaded.sys_path, *sys.path]))
    executor.open(Shipping(paths, (loaded.file,) if loaded.file else ()), wanted)


def _tracking_store(settings: Settings, records_store: SqlStore) -> TrackingStore:
    """Where the pipeline's tracking run lives: the tracking server when one is configured
    (steps log there too), else the database that holds the pipeline record."""
    if not settings.tracking_uri:
        return records_store
    from conveyor.store import open_store

    return open_store(
        settings.tracking_uri, upgrade=settings.auto_upgrade, token=settings.resolved_tracking_token()
    )


def _start_tracking(
    store: TrackingStore, spec: PipelineSpec, run_id: str, folder: Path | None
) -> tuple[str, str, dict[str, str]]:
    from conveyor.store.entities import Param
    from conveyor.tracking.context import source_tags

    experiment = store.get_experiment_by_name(spec.name)
    experiment_id = experiment.experiment_id if experiment else store.create_experiment(spec.name)
    tags = {**source_tags(folder), "conveyor.pipeline": spec.name, "conveyor.pipeline.run_id": run_id}
    run = store.create_run(
        experiment_id, user_id=tags["mlflow.user"], tags=tags, run_name=f"{spec.name}-{run_id[:8]}"
    )
    params = [Param(k, str(v)[:6000]) for k, v in spec.params.items()]
    for start in range(0, len(params), 100):
        store.log_batch(run.info.run_id, params=params[start : start + 100])
    return run.info.run_id, experiment_id, tags


def _run_record(
    loaded: Loaded,
    spec: PipelineSpec,
    options: _Options,
    executor: Executor,
    run_id: str,
    tracking: str,
    tracking_tags: dict[str, str],
) -> PipelineRun:
    env = describe_environment(tracking_tags)
    return PipelineRun(
        id=run_id,
        pipeline=spec.name,
        target=loaded.target,
        status=RunState.RUNNING,
        params={k: _jsonable(v) for k, v in spec.params.items()},
        spec={**spec_to_json(spec), "cache": options.cache},
        executor=executor.name,
        executor_address=executor.address,
        mode="fail_fast" if options.fail_fast else "continue",
        host=env.host,
        user=env.user,
        python_version=env.python_version,
        packages_hash=env.packages_hash,
        start_time=_now(),
        tracking_run_id=tracking,
        resumed_from=options.resumed_from,
        schedule_id=options.schedule_id,
        git_commit=env.git_commit,
        git_dirty=env.git_dirty,
    )


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(getattr(value, "value", value))


def _as_text(params: Mapping[str, Any], pipeline: Pipeline) -> dict[str, Any]:
    """Recorded JSON values back to what :meth:`Pipeline.parse_params` reads."""
    import orjson

    known = {p.name for p in pipeline.parameters}
    text: dict[str, Any] = {}
    for name, value in params.items():
        if name not in known:
            continue
        text[name] = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text


def _now() -> int:
    return int(time.time() * 1000)
