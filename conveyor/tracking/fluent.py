"""The fluent tracking API: ``with cv.start_run(): cv.log_metric(...)``.

One process-wide client, created on first use from the environment, and a stack of
active runs per context (thread or asyncio task). Leaving the ``with`` block stores every
buffered metric and ends the run: FINISHED, FAILED on an exception, KILLED on Ctrl-C.
An interpreter exit with a run still open flushes and ends it too, so a crash never
loses what was logged.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from conveyor.errors import InvalidInput
from conveyor.store.base import DEFAULT_EXPERIMENT_ID
from conveyor.store.entities import DatasetInput, Run, RunStatus
from conveyor.tracking.client import Client
from conveyor.tracking.context import source_tags
from conveyor.tracking.reproducibility import record_from_tags, record_seed, record_tags, with_seeds

if TYPE_CHECKING:
    import pandas as pd

_client: Client | None = None
_client_lock = threading.Lock()
_experiment_id: str | None = None
_active: contextvars.ContextVar[tuple[ActiveRun, ...]] = contextvars.ContextVar("conveyor_runs", default=())
_on_demand: contextvars.ContextVar[_OnDemand | None] = contextvars.ContextVar(
    "conveyor_on_demand", default=None
)


def get_client() -> Client:
    """The shared client, built from ``CONVEYOR_TRACKING_URI`` / ``CONVEYOR_HOME`` on first use."""
    global _client
    with _client_lock:
        if _client is None:
            _client = Client()
            atexit.register(_end_open_runs)
        return _client


def set_tracking_uri(uri: str | None) -> None:
    """Point the fluent API somewhere else; open runs must be ended first."""
    global _client, _experiment_id
    if _active.get():
        raise InvalidInput("End the active run before changing the tracking URI")
    with _client_lock:
        if _client is not None:
            _client.close()
        _client = Client(uri) if uri else None
        _experiment_id = None


def set_experiment(name: str) -> str:
    """Make ``name`` the experiment for new runs, creating it if needed; returns its id."""
    global _experiment_id
    _experiment_id = get_client().get_or_create_experiment(name)
    return _experiment_id


class ActiveRun:
    """A run being logged to; a context manager that ends the run on exit."""

    def __init__(self, run: Run) -> None:
        self.run = run

    @property
    def run_id(self) -> str:
        return self.run.info.run_id

    @property
    def info(self) -> Any:
        return self.run.info

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            status = RunStatus.FINISHED
        elif issubclass(exc_type, KeyboardInterrupt):
            status = RunStatus.KILLED
        else:
            status = RunStatus.FAILED
        end_run(status, run=self)


def start_run(
    run_name: str | None = None,
    *,
    experiment: str | None = None,
    tags: dict[str, Any] | None = None,
    run_id: str | None = None,
    nested: bool = False,
) -> ActiveRun:
    """Start (or, with ``run_id``, resume) a run and make it the active one."""
    stack = _active.get()
    if stack and not nested:
        raise InvalidInput(
            f"Run {stack[-1].run_id} is already active. End it first, or pass nested=True for a child run."
        )
    client = get_client()
    if run_id is not None:
        client.store.update_run_info(run_id, status=RunStatus.RUNNING)
        run = client.get_run(run_id)
    else:
        experiment_id = (
            set_experiment(experiment) if experiment else (_experiment_id or DEFAULT_EXPERIMENT_ID)
        )
        all_tags = {**source_tags(), **{k: str(v) for k, v in (tags or {}).items()}}
        if stack:
            all_tags["mlflow.parentRunId"] = stack[-1].run_id
        run = client.create_run(experiment_id, run_name, all_tags, user_id=all_tags["mlflow.user"])
    active = ActiveRun(run)
    _active.set((*stack, active))
    return active


def active_run() -> ActiveRun | None:
    stack = _active.get()
    return stack[-1] if stack else None


def _require_run() -> str:
    """The active run's id, starting the on-demand run if one is pending.

    Call it before :func:`get_client`: starting a run on demand may open the client.
    """
    run = active_run()
    if run is None:
        demand = _on_demand.get()
        if demand is None:
            raise InvalidInput("No active run: call conveyor.start_run() first")
        run = demand.start()
    return run.run_id


class _OnDemand:
    """A run to start when something is first logged: see :func:`run_on_demand`."""

    def __init__(self, uri: str, experiment_id: str, name: str, tags: dict[str, str]) -> None:
        self.uri, self.experiment_id, self.name, self.tags = uri, experiment_id, name, tags
        self.run: ActiveRun | None = None

    def start(self) -> ActiveRun:
        global _client
        with _client_lock:
            if _client is None or _client.uri != self.uri:
                if _client is not None:
                    _client.close()
                _client = Client(self.uri)
                atexit.register(_end_open_runs)
            client = _client
        tags = {**source_tags(), **self.tags}
        run = client.create_run(self.experiment_id, self.name, tags, user_id=tags["mlflow.user"])
        self.run = ActiveRun(run)
        _active.set((*_active.get(), self.run))
        return self.run


@contextlib.contextmanager
def run_on_demand(uri: str, experiment_id: str, name: str, tags: dict[str, str]) -> Iterator[None]:
    """Inside the block, the first logging call without an active run starts one.

    Pipeline steps log into a child run of their pipeline's run, but most steps log
    nothing, and creating a run for each of 10,000 mapped items would cost more than the
    items. The run, if one was started, ends with the block: FINISHED, or FAILED when the
    block raised.
    """
    demand = _OnDemand(uri, experiment_id, name, tags)
    token = _on_demand.set(demand)
    status = RunStatus.FAILED
    try:
        yield
        status = RunStatus.FINISHED
    finally:
        _on_demand.reset(token)
        if demand.run is not None:
            end_run(status, run=demand.run)


def end_run(status: RunStatus | str = RunStatus.FINISHED, *, run: ActiveRun | None = None) -> None:
    """Store buffered metrics and end the active run (or the given one)."""
    stack = _active.get()
    target = run or (stack[-1] if stack else None)
    if target is None:
        return
    _active.set(tuple(r for r in stack if r is not target))
    get_client().set_terminated(target.run_id, RunStatus(status))


def _end_open_runs() -> None:
    for run in reversed(_active.get()):
        end_run(RunStatus.FAILED, run=run)
    if _client is not None:
        _client.flush()


def log_param(key: str, value: Any) -> None:
    run_id = _require_run()
    get_client().log_param(run_id, key, value)


def log_params(params: dict[str, Any]) -> None:
    run_id = _require_run()
    get_client().log_params(run_id, params)


def log_metric(key: str, value: float, step: int = 0, timestamp: int | None = None) -> None:
    run_id = _require_run()
    get_client().log_metric(run_id, key, value, step, timestamp)


def log_metrics(metrics: dict[str, float], step: int = 0) -> None:
    run_id = _require_run()
    get_client().log_metrics(run_id, metrics, step)


def set_tag(key: str, value: Any) -> None:
    run_id = _require_run()
    get_client().set_tag(run_id, key, value)


def set_tags(tags: dict[str, Any]) -> None:
    run_id = _require_run()
    get_client().set_tags(run_id, tags)


def set_seed(seed: int) -> dict[str, int]:
    """Seed ``random``, NumPy and (if imported) PyTorch, and record the seeds.

    A run without recorded seeds cannot get the reproducibility grade A. Runs started
    afterwards carry the seeds; so does the active run, if any, whose grade is updated.
    Returns the seeds recorded, by what they seeded.
    """
    import random
    import sys

    import numpy

    random.seed(seed)
    numpy.random.seed(seed)
    record_seed("random", seed)
    seeds = record_seed("numpy", seed)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)
        seeds = record_seed("torch", seed)
    if (run := active_run()) is not None:
        _regrade(run.run_id, seeds)
    return seeds


def _regrade(run_id: str, seeds: dict[str, int]) -> None:
    """Store ``seeds`` in the run's reproducibility record, and the grade that follows."""
    client = get_client()
    record = record_from_tags(client.get_run(run_id).tags)
    if record is not None:
        client.set_tags(run_id, record_tags(with_seeds(record, seeds)))


def log_artifact(local_path: str | Path, artifact_path: str | None = None) -> None:
    run_id = _require_run()
    get_client().log_artifact(run_id, local_path, artifact_path)


def log_artifacts(local_dir: str | Path, artifact_path: str | None = None) -> None:
    run_id = _require_run()
    get_client().log_artifacts(run_id, local_dir, artifact_path)


def log_input(
    data: Any, name: str = "dataset", source: str = "in-memory", context: str | None = None
) -> DatasetInput:
    run_id = _require_run()
    return get_client().log_input(run_id, data, name, source, context)


def search_runs(
    filter_string: str | None = None,
    order_by: Sequence[str] | None = None,
    experiment_names: Sequence[str] | None = None,
    experiment_ids: Sequence[str] | None = None,
    max_results: int | None = None,
) -> pd.DataFrame:
    """Matching runs as a DataFrame: one row per run, ``params.*``, ``metrics.*`` and ``tags.*`` columns."""
    client = get_client()
    ids = list(experiment_ids or [])
    for name in experiment_names or []:
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            ids.append(experiment.experiment_id)
    if not ids and not experiment_names:
        ids = [_experiment_id or DEFAULT_EXPERIMENT_ID]
    runs = client.search_runs(ids, filter_string, order_by, max_results) if ids else []
    return runs_to_frame(runs)


def runs_to_frame(runs: Sequence[Run]) -> pd.DataFrame:
    import pandas as pd

    rows = []
    for run in runs:
        info = run.info
        row: dict[str, Any] = {
            "run_id": info.run_id,
            "experiment_id": info.experiment_id,
            "run_name": info.run_name,
            "status": info.status.value,
            "artifact_uri": info.artifact_uri,
            "start_time": pd.to_datetime(info.start_time, unit="ms", utc=True),
            "end_time": pd.to_datetime(info.end_time, unit="ms", utc=True) if info.end_time else pd.NaT,
        }
        row.update({f"metrics.{k}": m.value for k, m in run.metrics.items()})
        row.update({f"params.{k}": v for k, v in run.params.items()})
        row.update({f"tags.{k}": v for k, v in run.tags.items()})
        rows.append(row)
    return pd.DataFrame(rows)
