"""The tracking store contract every back end fulfils.

Public methods validate their input and then call one ``_method`` that a back end
implements, so the SQL store and the REST client reject the same bad input with the same
error. Single-item writes (``log_metric``, ``log_param``, ``set_tag``) are sugar over the
one batch primitive ``log_batch``.

The conformance suite in :mod:`conveyor.testing.store_checks` turns each sentence of the
docstrings below into a check, and runs over every registered back end.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence

from conveyor.errors import InvalidInput
from conveyor.store import validation as v
from conveyor.store.entities import (
    ArtifactRecord,
    DatasetInput,
    Experiment,
    Metric,
    Page,
    Param,
    Run,
    RunInfo,
    RunStatus,
    Tag,
    ViewType,
)

DEFAULT_EXPERIMENT_ID = "0"
DEFAULT_EXPERIMENT_NAME = "Default"
#: Where runs put artifacts when their experiment has no explicit location. MLflow clients
#: treat this scheme as "upload through the tracking server", which is what lets Conveyor
#: hash and index every file they log.
MANAGED_ARTIFACT_SCHEME = "mlflow-artifacts:"


def now_ms() -> int:
    return int(time.time() * 1000)


class TrackingStore(ABC):
    """Experiments, runs and their params, metrics, tags, dataset inputs and artifact index.

    Errors: an unknown experiment raises ``ExperimentNotFound``, an unknown run
    ``RunNotFound``; a taken experiment name ``AlreadyExists``; writing to a deleted or
    terminated run, or changing a logged param, ``InvalidState``/``InvalidInput`` with
    nothing written.
    """

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:  # noqa: B027 - optional hook, most back ends hold nothing
        """Release connections; the store must not be used afterwards."""

    # -- experiments -----------------------------------------------------------------------

    def create_experiment(
        self, name: str, artifact_location: str | None = None, tags: dict[str, str] | None = None
    ) -> str:
        """Create an active experiment and return its id; names are unique across all stages."""
        v.check_experiment_name(name)
        checked = self._check_experiment_tags(tags or {})
        return self._create_experiment(name, artifact_location, checked)

    def get_experiment(self, experiment_id: str) -> Experiment:
        """Return the experiment, deleted ones included."""
        return self._get_experiment(v.check_experiment_id(experiment_id))

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        """Return the experiment with this exact name, or ``None``."""
        return self._get_experiment_by_name(v.check_experiment_name(name))

    def search_experiments(
        self,
        view_type: ViewType = ViewType.ACTIVE_ONLY,
        filter_string: str | None = None,
        order_by: Sequence[str] | None = None,
        max_results: int = 1000,
        page_token: str | None = None,
    ) -> Page[Experiment]:
        """Experiments matching the filter (``name``, times and ``tags.*``), newest first by default."""
        v.check_max_results(max_results, v.MAX_SEARCH_RESULTS)
        return self._search_experiments(
            ViewType(view_type), filter_string or "", list(order_by or []), max_results, page_token
        )

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        """Rename an active experiment; the new name must be free."""
        self._rename_experiment(v.check_experiment_id(experiment_id), v.check_experiment_name(new_name))

    def delete_experiment(self, experiment_id: str) -> None:
        """Soft-delete the experiment and all its runs; the default experiment stays."""
        self._delete_experiment(v.check_experiment_id(experiment_id))

    def restore_experiment(self, experiment_id: str) -> None:
        """Bring a soft-deleted experiment and the runs deleted with it back."""
        self._restore_experiment(v.check_experiment_id(experiment_id))

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        tag = self._check_experiment_tags({key: value})
        self._set_experiment_tag(v.check_experiment_id(experiment_id), key, tag[key])

    def delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        """Remove a tag; an absent key raises ``NotFound``."""
        self._delete_experiment_tag(v.check_experiment_id(experiment_id), v.check_key(key, "tag"))

    # -- runs ------------------------------------------------------------------------------

    def create_run(
        self,
        experiment_id: str,
        user_id: str = "",
        start_time: int | None = None,
        tags: dict[str, str] | None = None,
        run_name: str | None = None,
    ) -> Run:
        """Start a RUNNING run in an active experiment; a missing name gets a generated one."""
        checked_tags = [v.check_tag(Tag(k, val)) for k, val in (tags or {}).items()]
        started = now_ms() if start_time is None else v.check_timestamp(start_time, "start_time")
        if run_name is not None and not isinstance(run_name, str):
            raise InvalidInput(f"Invalid value {run_name!r} for parameter 'run_name': must be a string")
        return self._create_run(
            v.check_experiment_id(experiment_id),
            str(user_id or ""),
            started,
            checked_tags,
            run_name,
        )

    def get_run(self, run_id: str) -> Run:
        """Return the run with its params, latest metrics, tags and inputs, deleted ones included."""
        return self._get_run(v.check_run_id(run_id))

    def update_run_info(
        self,
        run_id: str,
        status: RunStatus | str | None = None,
        end_time: int | None = None,
        run_name: str | None = None,
    ) -> RunInfo:
        """Change status, end time or name of an active run and return the new info."""
        try:
            new_status = None if status is None else RunStatus(status)
        except ValueError:
            allowed = ", ".join(s.value for s in RunStatus)
            raise InvalidInput(f"Invalid run status {status!r}: must be one of {allowed}") from None
        if end_time is not None:
            v.check_timestamp(end_time, "end_time")
        return self._update_run_info(v.check_run_id(run_id), new_status, end_time, run_name)

    def delete_run(self, run_id: str) -> None:
        """Soft-delete: the run disappears from ACTIVE_ONLY searches until restored or collected."""
        self._delete_run(v.check_run_id(run_id))

    def restore_run(self, run_id: str) -> None:
        self._restore_run(v.check_run_id(run_id))

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[Tag] = (),
    ) -> None:
        """Write metrics, params and tags of an active, non-terminated run atomically.

        Either the whole batch is stored or nothing is. Re-logging a param with the same
        value is a no-op; with a different value it raises ``InvalidInput`` and nothing
        of the batch is stored. A metric point that is already stored (same key, step,
        timestamp and value) is not duplicated, so a retried batch is harmless.
        """
        v.check_batch(metrics, params, tags)
        checked_metrics = v.check_metrics(metrics)
        checked_params = [v.check_param(p) for p in params]
        checked_tags = [v.check_tag(t) for t in tags]
        self._log_batch(v.check_run_id(run_id), checked_metrics, checked_params, checked_tags)

    def log_metrics(self, run_id: str, metrics: Sequence[Metric]) -> None:
        """Log many metric points at once, beyond MLflow's 1,000 per batch; atomic like ``log_batch``."""
        if len(metrics) > v.MAX_BULK_METRICS:
            raise InvalidInput(f"At most {v.MAX_BULK_METRICS} metric points per call, got {len(metrics)}")
        checked = v.check_metrics(metrics)
        self._log_batch(v.check_run_id(run_id), checked, [], [])

    def log_metric(self, run_id: str, metric: Metric) -> None:
        self.log_batch(run_id, metrics=[metric])

    def log_param(self, run_id: str, param: Param) -> None:
        self.log_batch(run_id, params=[param])

    def set_tag(self, run_id: str, tag: Tag) -> None:
        self.log_batch(run_id, tags=[tag])

    def delete_tag(self, run_id: str, key: str) -> None:
        """Remove a run tag; an absent key raises ``NotFound``."""
        self._delete_tag(v.check_run_id(run_id), v.check_key(key, "tag"))

    def log_inputs(self, run_id: str, inputs: Sequence[DatasetInput]) -> None:
        """Record datasets the run consumed; logging the same dataset twice keeps one entry."""
        for item in inputs:
            self._check_dataset_input(item)
        self._log_inputs(v.check_run_id(run_id), list(inputs))

    def get_metric_history(
        self,
        run_id: str,
        key: str,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> Page[Metric]:
        """All points of one metric ordered by step then timestamp; unpaged when ``max_results`` is None."""
        if max_results is not None:
            v.check_max_results(max_results, 10**9)
        return self._get_metric_history(
            v.check_run_id(run_id), v.check_key(key, "metric"), max_results, page_token
        )

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str | None = None,
        run_view_type: ViewType = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> Page[Run]:
        """Runs of the experiments matching the filter, ordered by ``order_by`` then
        ``start_time DESC, run_id``; see :mod:`conveyor.store.search` for the grammar."""
        ids = [v.check_experiment_id(e) for e in experiment_ids]
        v.check_max_results(max_results, v.MAX_SEARCH_RESULTS)
        return self._search_runs(
            ids,
            filter_string or "",
            ViewType(run_view_type),
            max_results,
            list(order_by or []),
            page_token,
        )

    def count_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str | None = None,
        run_view_type: ViewType = ViewType.ACTIVE_ONLY,
    ) -> int:
        """How many runs ``search_runs`` would return over all pages, without loading them."""
        ids = [v.check_experiment_id(e) for e in experiment_ids]
        return self._count_runs(ids, filter_string or "", ViewType(run_view_type))

    # -- artifact index --------------------------------------------------------------------

    def record_artifact(self, record: ArtifactRecord) -> None:
        """Insert or replace the index entry for ``record.path`` (a re-upload replaces it)."""
        if record.run_id is not None:
            v.check_run_id(record.run_id)
        if record.size < 0 or len(record.sha256) != 64:
            raise InvalidInput(f"Invalid artifact record for {record.path!r}: size or sha256 malformed")
        self._record_artifact(record)

    def get_artifact_record(self, path: str) -> ArtifactRecord | None:
        """The index entry for a path relative to the artifact root, or ``None``."""
        return self._get_artifact_record(path)

    def list_artifact_records(self, prefix: str) -> list[ArtifactRecord]:
        """Entries whose path starts with ``prefix`` (a folder, ending in ``/``), sorted by path."""
        return self._list_artifact_records(prefix)

    def delete_artifact_records(self, prefix: str) -> int:
        """Drop entries under ``prefix`` (a file or a folder) and say how many went."""
        return self._delete_artifact_records(prefix)

    # -- garbage collection ----------------------------------------------------------------

    def deleted_run_ids(self, older_than_ms: int | None = None) -> list[str]:
        """Soft-deleted runs (deleted before ``older_than_ms`` when given), for ``conveyor gc``."""
        return self._deleted_run_ids(older_than_ms)

    def hard_delete_run(self, run_id: str) -> None:
        """Remove a soft-deleted run and everything it owns from the store for good."""
        self._hard_delete_run(v.check_run_id(run_id))

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _check_experiment_tags(tags: dict[str, str]) -> dict[str, str]:
        for key, value in tags.items():
            v.check_key(key, "experiment tag")
            v.check_value(value, "experiment tag", key, v.MAX_EXPERIMENT_TAG_VALUE_LENGTH)
        return dict(tags)

    @staticmethod
    def _check_dataset_input(item: DatasetInput) -> None:
        ds = item.dataset
        for value, field, limit in (
            (ds.name, "dataset name", v.MAX_DATASET_NAME_LENGTH),
            (ds.digest, "dataset digest", v.MAX_DATASET_DIGEST_LENGTH),
            (ds.source_type, "dataset source_type", 36),
            (ds.source, "dataset source", v.MAX_DATASET_SOURCE_LENGTH),
        ):
            if not isinstance(value, str) or not value:
                raise InvalidInput(f"Missing value for required parameter '{field}'")
            if len(value) > limit:
                raise InvalidInput(f"{field} is {len(value)} characters long, at most {limit} are allowed")
        for value, field, limit in (
            (ds.schema, "dataset schema", v.MAX_DATASET_SCHEMA_LENGTH),
            (ds.profile, "dataset profile", v.MAX_DATASET_PROFILE_LENGTH),
        ):
            if value is not None and len(value) > limit:
                raise InvalidInput(f"{field} is {len(value)} characters long, at most {limit} are allowed")
        for key, value in item.tags.items():
            if len(key) > v.MAX_INPUT_TAG_KEY_LENGTH or len(value) > v.MAX_INPUT_TAG_VALUE_LENGTH:
                raise InvalidInput(f"Dataset input tag {key[:40]!r} is too long")

    # -- back-end primitives ---------------------------------------------------------------

    @abstractmethod
    def _create_experiment(self, name: str, artifact_location: str | None, tags: dict[str, str]) -> str: ...

    @abstractmethod
    def _get_experiment(self, experiment_id: str) -> Experiment: ...

    @abstractmethod
    def _get_experiment_by_name(self, name: str) -> Experiment | None: ...

    @abstractmethod
    def _search_experiments(
        self,
        view_type: ViewType,
        filter_string: str,
        order_by: list[str],
        max_results: int,
        page_token: str | None,
    ) -> Page[Experiment]: ...

    @abstractmethod
    def _rename_experiment(self, experiment_id: str, new_name: str) -> None: ...

    @abstractmethod
    def _delete_experiment(self, experiment_id: str) -> None: ...

    @abstractmethod
    def _restore_experiment(self, experiment_id: str) -> None: ...

    @abstractmethod
    def _set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None: ...

    @abstractmethod
    def _delete_experiment_tag(self, experiment_id: str, key: str) -> None: ...

    @abstractmethod
    def _create_run(
        self,
        experiment_id: str,
        user_id: str,
        start_time: int,
        tags: list[Tag],
        run_name: str | None,
    ) -> Run: ...

    @abstractmethod
    def _get_run(self, run_id: str) -> Run: ...

    @abstractmethod
    def _update_run_info(
        self, run_id: str, status: RunStatus | None, end_time: int | None, run_name: str | None
    ) -> RunInfo: ...

    @abstractmethod
    def _delete_run(self, run_id: str) -> None: ...

    @abstractmethod
    def _restore_run(self, run_id: str) -> None: ...

    @abstractmethod
    def _log_batch(
        self, run_id: str, metrics: list[Metric], params: list[Param], tags: list[Tag]
    ) -> None: ...

    @abstractmethod
    def _delete_tag(self, run_id: str, key: str) -> None: ...

    @abstractmethod
    def _log_inputs(self, run_id: str, inputs: list[DatasetInput]) -> None: ...

    @abstractmethod
    def _get_metric_history(
        self, run_id: str, key: str, max_results: int | None, page_token: str | None
    ) -> Page[Metric]: ...

    @abstractmethod
    def _search_runs(
        self,
        experiment_ids: list[str],
        filter_string: str,
        view_type: ViewType,
        max_results: int,
        order_by: list[str],
        page_token: str | None,
    ) -> Page[Run]: ...

    @abstractmethod
    def _count_runs(self, experiment_ids: list[str], filter_string: str, view_type: ViewType) -> int: ...

    @abstractmethod
    def _record_artifact(self, record: ArtifactRecord) -> None: ...

    @abstractmethod
    def _get_artifact_record(self, path: str) -> ArtifactRecord | None: ...

    @abstractmethod
    def _list_artifact_records(self, prefix: str) -> list[ArtifactRecord]: ...

    @abstractmethod
    def _delete_artifact_records(self, prefix: str) -> int: ...

    @abstractmethod
    def _deleted_run_ids(self, older_than_ms: int | None) -> list[str]: ...

    @abstractmethod
    def _hard_delete_run(self, run_id: str) -> None: ...
