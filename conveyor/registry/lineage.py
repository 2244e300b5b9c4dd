"""Lineage of registered models: which run, pipeline, data and code made a version, and back.

Pipeline lineage (:mod:`conveyor.pipelines.lineage`) links bytes to the steps that wrote
and read them. This module adds the registry's end of the chain::

    model version ──run_id──▶ source run ──▶ dataset inputs (full-content SHA-256), git commit
                                   │
                                   └─▶ pipeline run (its tracking run, or the parent of a
                                       step's child run) ──▶ steps ──▶ input artifacts …

* **upstream** from ``models:/<name>/<version>`` or ``models:/<name>@<alias>`` follows
  that chain;
* **downstream** from a dataset digest (or a unique prefix of 8+ hex characters) finds
  the runs that logged the dataset as an input, and the pipeline runs whose steps read
  it as an artifact (then every tracking run of those pipeline runs, steps' child runs
  included); then the versions registered from any of those runs, with the aliases that
  serve them.

Example::

    graph = upstream_of_model(registry, registry.store, "models:/churn@champion")
    print(graph.runs[0].git_commit, [d.digest for d in graph.runs[0].datasets])
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from conveyor.errors import InvalidInput, NotFound
from conveyor.models import parse_models_uri
from conveyor.pipelines.lineage import LineageGraph
from conveyor.pipelines.lineage import downstream as pipeline_downstream
from conveyor.pipelines.lineage import upstream as pipeline_upstream
from conveyor.store.entities import Run, ViewType
from conveyor.tracking.context import GIT_COMMIT_TAG, GIT_DIRTY_TAG

if TYPE_CHECKING:
    from conveyor.registry.service import RegistryService
    from conveyor.store.base import TrackingStore
    from conveyor.store.sql.registry_entities import ModelVersion

__all__ = [
    "DatasetRef",
    "ModelLineage",
    "RunNode",
    "VersionNode",
    "models_trained_on",
    "pipeline_origin",
    "upstream_of_model",
]

PIPELINE_RUN_TAG = "conveyor.pipeline.run_id"
PIPELINE_STEP_TAG = "conveyor.pipeline.step"
PARENT_RUN_TAG = "mlflow.parentRunId"
_CONTEXT_TAG = "mlflow.data.context"
_DIGEST = re.compile(r"^[0-9a-f]{8,64}$")
_PAGE = 1000


@dataclass(frozen=True, slots=True)
class VersionNode:
    name: str
    version: int
    model_digest: str | None
    run_id: str | None
    aliases: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DatasetRef:
    """A dataset input of a run; ``digest`` is the full-content SHA-256 Conveyor logged."""

    name: str
    digest: str
    source: str
    context: str | None


@dataclass(frozen=True, slots=True)
class RunNode:
    """A tracking run, with what it read, the code it ran, and the pipeline it belongs to."""

    run_id: str
    run_name: str
    git_commit: str | None
    git_dirty: bool | None
    pipeline_run_id: str | None
    #: The pipeline step whose child run this is; None for the pipeline's own run.
    pipeline_step: str | None
    datasets: tuple[DatasetRef, ...]


@dataclass(slots=True)
class ModelLineage:
    """Versions, runs and (upstream) the pipeline graph one query found."""

    direction: str
    #: ``models:/<name>/<version>`` or ``dataset:<sha256>``.
    root: str
    versions: list[VersionNode] = field(default_factory=list)
    runs: list[RunNode] = field(default_factory=list)
    #: Upstream: the pipeline run's steps and the artifacts they read and wrote;
    #: downstream: the steps that read the dataset as an artifact, and what they fed.
    pipeline: LineageGraph | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types, for ``--json``."""
        return {
            "direction": self.direction,
            "root": self.root,
            "versions": [asdict(v) for v in self.versions],
            "runs": [asdict(r) for r in self.runs],
            "pipeline": None if self.pipeline is None else self.pipeline.to_dict(),
        }


def upstream_of_model(registry: RegistryService, tracking_store: TrackingStore, uri: str) -> ModelLineage:
    """Where the version ``uri`` names came from: run, datasets, code, pipeline run and steps.

    Args:
        uri: ``models:/<name>/<version>`` or ``models:/<name>@<alias>``.

    Raises:
        InvalidInput: not a ``models:/`` URI.
        NotFound: no such model, version or alias.
    """
    version = _version(registry, uri)
    graph = ModelLineage("upstream", f"models:/{version.name}/{version.version}", [_version_node(version)])
    run = _run(tracking_store, version.run_id)
    if run is None:
        return graph
    node = _run_node(tracking_store, run)
    graph.runs.append(node)
    if node.pipeline_run_id is not None:
        graph.pipeline = _pipeline_graph(registry, node.pipeline_run_id)
    return graph


def models_trained_on(registry: RegistryService, tracking_store: TrackingStore, digest: str) -> ModelLineage:
    """What the dataset ``digest`` fed: runs, pipeline steps, and the versions made from them.

    Args:
        digest: the SHA-256 of the dataset's content, or a prefix of at least 8 hex
            characters that names one dataset.

    Raises:
        InvalidInput: not hex, shorter than 8 characters, or a prefix of several digests.
    """
    digest = digest.removeprefix("dataset:").lower()
    if not _DIGEST.match(digest):
        raise InvalidInput(
            f"Invalid dataset digest {digest!r}: expected its SHA-256, or a prefix of at least "
            "8 hex characters"
        )
    runs = _runs_with_input(tracking_store, digest)
    digest = _one_digest(digest, runs)
    graph = ModelLineage("downstream", f"dataset:{digest}")
    graph.pipeline = _pipeline_readers(registry, digest)
    if graph.pipeline is not None:
        runs += _pipeline_tracking_runs(tracking_store, graph.pipeline)
    seen: set[str] = set()
    for run in runs:
        if run.info.run_id in seen:
            continue
        seen.add(run.info.run_id)
        graph.runs.append(_run_node(tracking_store, run))
        found = registry.search_versions(f"run_id = '{run.info.run_id}'").items
        graph.versions.extend(_version_node(v) for v in found)
    graph.versions.sort(key=lambda v: (v.name, v.version))
    return graph


def pipeline_origin(store: TrackingStore, run: Run) -> tuple[str | None, str | None]:
    """``(pipeline run id, step)`` of a pipeline's tracking run or of a step's child run.

    A pipeline's own run carries ``conveyor.pipeline.run_id``; a step's child run carries
    ``conveyor.pipeline.step`` and names the pipeline's run as its parent.
    """
    step = run.tags.get(PIPELINE_STEP_TAG)
    if PIPELINE_RUN_TAG in run.tags:
        return run.tags[PIPELINE_RUN_TAG], step
    if step and (parent := _run(store, run.tags.get(PARENT_RUN_TAG))):
        return parent.tags.get(PIPELINE_RUN_TAG), step
    return None, None


def _version(registry: RegistryService, uri: str) -> ModelVersion:
    name, version, alias = parse_models_uri(uri)
    if version is not None:
        return registry.get_version(name, version)
    return registry.get_version_by_alias(name, alias or "")


def _version_node(version: ModelVersion) -> VersionNode:
    return VersionNode(version.name, version.version, version.model_digest, version.run_id, version.aliases)


def _run(store: TrackingStore, run_id: str | None) -> Run | None:
    if run_id is None:
        return None
    try:
        return store.get_run(run_id)
    except NotFound:
        return None


def _run_node(store: TrackingStore, run: Run) -> RunNode:
    pipeline_run_id, step = pipeline_origin(store, run)
    dirty = run.tags.get(GIT_DIRTY_TAG)
    datasets = tuple(
        DatasetRef(i.dataset.name, i.dataset.digest, i.dataset.source, i.tags.get(_CONTEXT_TAG))
        for i in run.inputs
    )
    return RunNode(
        run_id=run.info.run_id,
        run_name=run.info.run_name,
        git_commit=run.tags.get(GIT_COMMIT_TAG),
        git_dirty=None if dirty is None else dirty == "true",
        pipeline_run_id=pipeline_run_id,
        pipeline_step=step,
        datasets=datasets,
    )


def _pipeline_graph(registry: RegistryService, pipeline_run_id: str) -> LineageGraph | None:
    """The pipeline run's upstream graph, or None when its record is gone."""
    try:
        return pipeline_upstream(registry.store, f"run:{pipeline_run_id}")
    except NotFound:
        return None


def _runs_with_input(store: TrackingStore, digest: str) -> list[Run]:
    """Every run, deleted ones included, that logged a dataset whose digest starts so."""
    experiments = _experiment_ids(store)
    if not experiments:
        return []
    query = f"dataset.digest = '{digest}'" if len(digest) == 64 else f"dataset.digest LIKE '{digest}%'"
    return _all_pages(store.search_runs, experiments, query, ViewType.ALL)


def _experiment_ids(store: TrackingStore) -> list[str]:
    return [e.experiment_id for e in _all_pages(store.search_experiments, ViewType.ALL)]


def _one_digest(digest: str, runs: list[Run]) -> str:
    """The full digest a prefix names among the runs' inputs (the prefix itself if none)."""
    found = {i.dataset.digest for r in runs for i in r.inputs if i.dataset.digest.startswith(digest)}
    if len(found) > 1:
        raise InvalidInput(
            f"Dataset digest prefix {digest!r} matches several datasets: {', '.join(sorted(found))}"
        )
    return found.pop() if found else digest


def _pipeline_readers(registry: RegistryService, digest: str) -> LineageGraph | None:
    """Pipeline steps downstream of the artifact with this content, or None if none read it."""
    try:
        return pipeline_downstream(registry.store, digest)
    except NotFound:
        return None


def _pipeline_tracking_runs(store: TrackingStore, graph: LineageGraph) -> list[Run]:
    """The tracking runs of the graph's pipeline runs, and their steps' child runs."""
    parents = [r for run in graph.runs.values() if (r := _run(store, run.tracking_run_id)) is not None]
    if not parents:
        return parents
    ids = ", ".join(f"'{r.info.run_id}'" for r in parents)
    children = _all_pages(
        store.search_runs, _experiment_ids(store), f"tags.`{PARENT_RUN_TAG}` IN ({ids})", ViewType.ALL
    )
    return parents + children


def _all_pages(search: Any, *args: Any) -> list[Any]:
    items: list[Any] = []
    token = None
    while True:
        page = search(*args, max_results=_PAGE, page_token=token)
        items.extend(page.items)
        token = page.next_page_token
        if not token:
            return items
