"""The lower-level tracking client: explicit ids, no active run.

It works on a local store (no server needed) or against a server URL; the choice is the
tracking URI — argument, then ``CONVEYOR_TRACKING_URI``, then the local store under
``CONVEYOR_HOME``. Metric points go through a background buffer; call :meth:`flush`
(the fluent API does on run end) to be sure they are stored.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from conveyor.config import Settings
from conveyor.errors import ExperimentNotFound
from conveyor.store.base import TrackingStore
from conveyor.store.entities import (
    DatasetInput,
    Experiment,
    Metric,
    Param,
    Run,
    RunInfo,
    RunStatus,
    Tag,
    ViewType,
)
from conveyor.store.validation import check_key, check_metric_fields
from conveyor.tracking.artifact_repo import (
    ArtifactRepository,
    LocalArtifactRepository,
    RemoteArtifactRepository,
)
from conveyor.tracking.buffer import MetricBuffer
from conveyor.tracking.context import USER_TAG, source_tags
from conveyor.tracking.reproducibility import GRADE_TAG
from conveyor.tracking.service import FileInfo, TrackingService

CONTEXT_TAG = "mlflow.data.context"


def _open(tracking_uri: str | None, settings: Settings) -> tuple[TrackingStore, ArtifactRepository]:
    uri = tracking_uri or settings.tracking_uri
    if uri and uri.startswith(("http://", "https://")):
        from conveyor.store.rest import RestStore

        rest = RestStore(uri, token=settings.resolved_tracking_token())
        return rest, RemoteArtifactRepository(rest)
    if uri:
        settings = settings.model_copy(update={"database_url": SecretStr(uri)})
    service = TrackingService.from_settings(settings)
    return service.store, LocalArtifactRepository(service)


class Client:
    """Tracking operations by id, for scripts, services and the fluent API underneath."""

    def __init__(self, tracking_uri: str | None = None, settings: Settings | None = None) -> None:
        #: What this client was opened on (``None``: the settings' local store).
        self.uri = tracking_uri
        self.store, self.artifacts = _open(tracking_uri, settings or Settings())
        self._buffer = MetricBuffer(self.store.log_metrics)
        self._good_keys: set[str] = set()

    def close(self) -> None:
        self._buffer.close()
        self.store.close()

    def flush(self) -> None:
        """Block until every buffered metric point is stored; raise if any could not be."""
        self._buffer.flush()

    # -- experiments -----------------------------------------------------------------------

    def create_experiment(self, name: str, tags: dict[str, str] | None = None) -> str:
        return self.store.create_experiment(name, tags=tags)

    def get_experiment(self, experiment_id: str) -> Experiment:
        return self.store.get_experiment(experiment_id)

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        return self.store.get_experiment_by_name(name)

    def get_or_create_experiment(self, name: str) -> str:
        experiment = self.store.get_experiment_by_name(name)
        if experiment is None:
            return self.store.create_experiment(name)
        if experiment.lifecycle_stage != "active":
            raise ExperimentNotFound(f"Experiment {name!r} is deleted; restore it or choose another name")
        return experiment.experiment_id

    def search_experiments(
        self, filter_string: str | None = None, view_type: ViewType = ViewType.ACTIVE_ONLY
    ) -> list[Experiment]:
        found: list[Experiment] = []
        token = None
        while True:
            page = self.store.search_experiments(view_type, filter_string, page_token=token)
            found.extend(page.items)
            if not (token := page.next_page_token):
                return found

    def delete_experiment(self, experiment_id: str) -> None:
        self.store.delete_experiment(experiment_id)

    # -- runs ------------------------------------------------------------------------------

    def create_run(
        self,
        experiment_id: str,
        run_name: str | None = None,
        tags: dict[str, str] | None = None,
        user_id: str = "",
    ) -> Run:
        """Start a run with this process's source tags and reproducibility record.

        Tags given win over the captured ones; a caller that captured the record already
        (the fluent API) is not charged the git calls twice.
        """
        tags = dict(tags or {})
        if GRADE_TAG not in tags:
            tags = {**source_tags(), **tags}
        return self.store.create_run(
            experiment_id, user_id=user_id or tags.get(USER_TAG, ""), tags=tags, run_name=run_name
        )

    def get_run(self, run_id: str) -> Run:
        return self.store.get_run(run_id)

    def set_terminated(self, run_id: str, status: RunStatus = RunStatus.FINISHED) -> RunInfo:
        """End a run after storing its buffered metrics, so a finished run is a complete run."""
        self.flush()
        return self.store.update_run_info(run_id, status=status, end_time=_now())

    def delete_run(self, run_id: str) -> None:
        self.store.delete_run(run_id)

    def restore_run(self, run_id: str) -> None:
        self.store.restore_run(run_id)

    # -- logging ---------------------------------------------------------------------------

    def log_param(self, run_id: str, key: str, value: Any) -> None:
        self.store.log_param(run_id, Param(key, str(value)))

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        items = [Param(k, str(v)) for k, v in params.items()]
        for start in range(0, len(items), 100):
            self.store.log_batch(run_id, params=items[start : start + 100])

    def log_metric(
        self, run_id: str, key: str, value: float, step: int = 0, timestamp: int | None = None
    ) -> None:
        """Check one point here, where a mistake can be reported, then queue it for the buffer."""
        self._buffer.add(run_id, self._checked(Metric(key, value, timestamp or _now(), step)))

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
        stamp = _now()
        for key, value in metrics.items():
            self._buffer.add(run_id, self._checked(Metric(key, value, stamp, step)))

    def _checked(self, metric: Metric) -> Metric:
        """A bad key or value raises at the call site, not later in the background sender.

        Keys repeat thousands of times in a training loop, so each is checked once.
        """
        if metric.key not in self._good_keys:
            check_key(metric.key, "metric")
            self._good_keys.add(metric.key)
        return check_metric_fields(metric)

    def set_tag(self, run_id: str, key: str, value: Any) -> None:
        self.store.set_tag(run_id, Tag(key, str(value)))

    def set_tags(self, run_id: str, tags: dict[str, Any]) -> None:
        items = [Tag(k, str(v)) for k, v in tags.items()]
        for start in range(0, len(items), 100):
            self.store.log_batch(run_id, tags=items[start : start + 100])

    def delete_tag(self, run_id: str, key: str) -> None:
        self.store.delete_tag(run_id, key)

    def log_input(
        self,
        run_id: str,
        data: Any,
        name: str = "dataset",
        source: str = "in-memory",
        context: str | None = None,
    ) -> DatasetInput:
        """Record a DataFrame or array the run consumed, fingerprinted by SHA-256 over all of it."""
        from conveyor.tracking.datasets import dataset_from  # pandas: only when logging data

        item = DatasetInput(dataset_from(data, name, source), {CONTEXT_TAG: context} if context else {})
        self.store.log_inputs(run_id, [item])
        return item

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        self.flush()
        return self.store.get_metric_history(run_id, key).items

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str | None = None,
        order_by: Sequence[str] | None = None,
        max_results: int | None = None,
        view_type: ViewType = ViewType.ACTIVE_ONLY,
    ) -> list[Run]:
        """All matching runs (or the first ``max_results``), following pages as needed."""
        self.flush()
        found: list[Run] = []
        token = None
        while max_results is None or len(found) < max_results:
            page_size = 1000 if max_results is None else min(1000, max_results - len(found))
            page = self.store.search_runs(
                experiment_ids, filter_string, view_type, page_size, order_by, token
            )
            found.extend(page.items)
            if not (token := page.next_page_token):
                break
        return found

    # -- artifacts -------------------------------------------------------------------------

    def log_artifact(self, run_id: str, local_path: str | Path, artifact_path: str | None = None) -> None:
        path = Path(local_path)
        target = f"{artifact_path.strip('/')}/{path.name}" if artifact_path else path.name
        self.artifacts.upload(run_id, target, path)

    def log_artifacts(self, run_id: str, local_dir: str | Path, artifact_path: str | None = None) -> None:
        root = Path(local_dir)
        for file in _files_under(root):
            relative = file.relative_to(root).as_posix()
            self.artifacts.upload(
                run_id, f"{artifact_path.strip('/')}/{relative}" if artifact_path else relative, file
            )

    def list_artifacts(self, run_id: str, path: str = "") -> list[FileInfo]:
        return self.artifacts.list(run_id, path)

    def download_artifacts(self, run_id: str, path: str, dst: str | Path) -> Path:
        """Download a file or folder into ``dst``, every file verified against its recorded hash."""
        target = Path(dst)
        entries = self.artifacts.list(run_id, path)
        if not entries and path:
            target.mkdir(parents=True, exist_ok=True)
            local = target / Path(path).name
            self.artifacts.download(run_id, path, local)
            return local
        for entry in entries:
            child = f"{path.strip('/')}/{entry.path}" if path else entry.path
            if entry.is_dir:
                self.download_artifacts(run_id, child, target / entry.path)
            else:
                target.mkdir(parents=True, exist_ok=True)
                self.artifacts.download(run_id, child, target / entry.path)
        return target


def _files_under(root: Path) -> Iterable[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _now() -> int:
    return int(time.time() * 1000)
