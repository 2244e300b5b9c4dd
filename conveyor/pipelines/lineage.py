"""Lineage of pipeline artifacts and runs: where bytes came from, what they fed.

Artifacts are identified by content (SHA-256), so lineage crosses runs by itself: a run
that reads bytes an earlier run wrote links to that run, and a cache hit's outputs link
to the run that computed them. A walk alternates artifacts and step executions, one
level at a time:

* **upstream**, an artifact's producers are the executions that first wrote its bytes
  (cache hits are passed over: their ``producer_run_id`` names the run that did the
  work), then each producer's inputs, and so on;
* **downstream**, an artifact's consumers are every execution that read it, cache hits
  included (that run did use the data), then each consumer's outputs, and so on.

Starting from a pipeline run puts all its steps in the graph with everything they read
and wrote. Upstream then goes on from all of those artifacts; downstream only from the
outputs the run computed itself, since cached outputs were computed, and fed other
steps, elsewhere.

:func:`openlineage_events` describes one pipeline run as OpenLineage run events, so that
tools speaking OpenLineage (Marquez, DataHub, …) can show Conveyor's lineage.

Example::

    from conveyor.pipelines.lineage import upstream
    from conveyor.store import open_store

    graph = upstream(open_store("sqlite:///.conveyor/conveyor.db"), "3f1c9a2b")
    for step in graph.steps.values():
        print(step.run_id, step.node_id, step.status, step.code_digest)
"""

from __future__ import annotations

import json
import re
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from conveyor._version import __version__
from conveyor.errors import InvalidInput
from conveyor.store.sql.lineage import (
    ArtifactRole,
    ArtifactUse,
    LineageStore,
    PipelineRunSummary,
    StepExecution,
)
from conveyor.store.sql.pipeline_records import PipelineRecords
from conveyor.store.sql.store import SqlStore

if TYPE_CHECKING:
    from conveyor.store.base import TrackingStore

__all__ = [
    "ArtifactNode",
    "Direction",
    "LineageEdge",
    "LineageGraph",
    "StepNode",
    "downstream",
    "openlineage_events",
    "step_key",
    "upstream",
]


class Direction(StrEnum):
    """Which way a walk goes: towards what produced the start, or towards what it fed."""

    UPSTREAM = "upstream"
    DOWNSTREAM = "downstream"


@dataclass(frozen=True, slots=True)
class ArtifactNode:
    """Bytes some step read or wrote, identified by their SHA-256."""

    sha256: str
    #: Relative to the artifact root.
    path: str
    serializer: str
    size: int
    #: The run that first wrote the bytes, when recorded.
    producer_run_id: str | None

    @property
    def key(self) -> str:
        return f"artifact:{self.sha256}"


@dataclass(frozen=True, slots=True)
class StepNode:
    """One execution of a pipeline node (a mapped node counts once, whatever its item count)."""

    run_id: str
    node_id: str
    step_name: str
    #: Index in the run's topological order.
    position: int
    status: str
    #: Fingerprint of the step's code and the project code it reaches, from the cache key.
    code_digest: str | None
    cache_key: str | None
    #: For a cache hit: the run whose outputs it reused.
    cached_from: str | None
    start_time: int | None
    end_time: int | None

    @property
    def key(self) -> str:
        return step_key(self.run_id, self.node_id)


@dataclass(frozen=True, slots=True, order=True)
class LineageEdge:
    """``input``: artifact → step, named by the parameter; ``output``: step → artifact, by output name."""

    source: str
    target: str
    role: str
    name: str


@dataclass(slots=True)
class LineageGraph:
    """Artifacts, step executions and the edges between them, as found by one walk.

    Nodes are keyed ``artifact:<sha256>`` and ``step:<run id>/<node id>``; both ends of
    every edge are nodes of the graph. ``runs`` holds the pipeline run of every step.
    """

    direction: Direction
    #: Where the walk started: ``artifact:<sha256>`` or ``run:<run id>``.
    root: str
    max_depth: int | None
    artifacts: dict[str, ArtifactNode] = field(default_factory=dict)
    steps: dict[str, StepNode] = field(default_factory=dict)
    runs: dict[str, PipelineRunSummary] = field(default_factory=dict)
    edges: set[LineageEdge] = field(default_factory=set)

    def next_nodes(self) -> dict[str, dict[str, list[str]]]:
        """For each node, the nodes one level further in the walk's direction, with the edges' names.

        Upstream, those are an artifact's producers and a step's inputs; downstream, an
        artifact's consumers and a step's outputs.
        """
        found: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        for edge in sorted(self.edges, key=lambda e: (_natural(e.name), e)):
            near, far = edge.target, edge.source
            if self.direction is Direction.DOWNSTREAM:
                near, far = far, near
            found[near][far].append(edge.name)
        return found

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types, every list in a stable order, for ``--json`` and other tools."""
        runs = sorted(self.runs.values(), key=lambda r: (r.start_time, r.run_id))
        order = {run.run_id: i for i, run in enumerate(runs)}
        steps = sorted(self.steps.values(), key=lambda s: (order.get(s.run_id, -1), s.run_id, s.position))
        return {
            "direction": self.direction.value,
            "root": self.root,
            "max_depth": self.max_depth,
            "runs": [asdict(run) for run in runs],
            "steps": [{"key": step.key, **asdict(step)} for step in steps],
            "artifacts": [{"key": key, **asdict(self.artifacts[key])} for key in sorted(self.artifacts)],
            "edges": [asdict(edge) for edge in sorted(self.edges)],
        }


def _natural(name: str) -> tuple[tuple[int, str], ...]:
    """Sort key putting ``models[2]`` before ``models[10]``."""
    return tuple((int(part), "") if part.isdigit() else (-1, part) for part in re.split(r"(\d+)", name))


def step_key(run_id: str, node_id: str) -> str:
    """A step execution's node key in a :class:`LineageGraph`."""
    return f"step:{run_id}/{node_id}"


def upstream(store: TrackingStore, ref: str, *, max_depth: int | None = None) -> LineageGraph:
    """Where an artifact or a pipeline run's data came from: producing steps, their inputs, and so on.

    Args:
        store: The SQL store (``open_store("sqlite:///…")``); a server URL's store cannot
            answer lineage queries.
        ref: An artifact's path, SHA-256 or unique SHA-256 prefix (8+ hex characters), or
            a pipeline run id: ``run:<id>``, or the bare 32-hex id when a run has it.
        max_depth: Follow at most this many levels of steps (``None``: all of them; 0: only
            the starting point).

    Raises:
        InvalidInput: an ambiguous reference, a negative depth, or a store other than the SQL store.
        NotFound: no artifact or pipeline run matches ``ref``.
    """
    return _trace(store, ref, Direction.UPSTREAM, max_depth)


def downstream(store: TrackingStore, ref: str, *, max_depth: int | None = None) -> LineageGraph:
    """What an artifact or a pipeline run's outputs fed: consuming steps, their outputs, and so on.

    Arguments and errors as for :func:`upstream`.
    """
    return _trace(store, ref, Direction.DOWNSTREAM, max_depth)


# -- the walk ----------------------------------------------------------------------------------


def _trace(store: TrackingStore, ref: str, direction: Direction, max_depth: int | None) -> LineageGraph:
    if max_depth is not None and max_depth < 0:
        raise InvalidInput(f"Invalid lineage depth {max_depth}: use 0 or more, or no limit.")
    lineage = _lineage_store(store)
    run = _run_ref(lineage, ref)
    if run is not None:
        graph = LineageGraph(direction, f"run:{run.run_id}", max_depth, runs={run.run_id: run})
        frontier = _seed_run(lineage, graph, run.run_id)
    else:
        use = lineage.artifact(ref)
        graph = LineageGraph(direction, f"artifact:{use.sha256}", max_depth)
        _add_artifact(graph, use)
        frontier = {use.sha256}
    _walk(lineage, graph, frontier)
    return graph


def _seed_run(lineage: LineageStore, graph: LineageGraph, run_id: str) -> set[str]:
    """Put a run's steps and their artifacts in the graph; return the hashes to walk on from."""
    _add_steps(lineage, graph, lineage.steps_of_run(run_id))
    uses = lineage.uses_of_run(run_id)
    _add_uses(graph, uses)
    if graph.direction is Direction.UPSTREAM:
        return {u.sha256 for u in uses}
    return {u.sha256 for u in uses if u.role is ArtifactRole.OUTPUT and _first_write(u)}


def _walk(lineage: LineageStore, graph: LineageGraph, frontier: set[str]) -> None:
    """Grow the graph a level at a time: the frontier's linked steps, then what those steps used.

    Each hash is expanded once, which also ends the walk should identical bytes ever
    lead back to themselves (a step that returns its input unchanged).
    """
    up = graph.direction is Direction.UPSTREAM
    onward = ArtifactRole.INPUT if up else ArtifactRole.OUTPUT
    visited = {(s.run_id, s.node_id) for s in graph.steps.values()}
    expanded: set[str] = set()
    depth = 0
    while frontier and (graph.max_depth is None or depth < graph.max_depth):
        depth += 1
        expanded |= frontier
        links = _first_writers(lineage.producers(frontier)) if up else lineage.consumers(frontier)
        new_steps = {u.step for u in links} - visited
        visited |= new_steps
        _add_steps(lineage, graph, lineage.steps(new_steps).values())
        _add_uses(graph, links)
        further = lineage.uses_of_steps(new_steps, onward)
        _add_uses(graph, further)
        frontier = {u.sha256 for u in further} - expanded


def _first_writers(uses: list[ArtifactUse]) -> list[ArtifactUse]:
    """The rows of executions that first wrote their bytes.

    Should none be left for a hash (its first run was deleted), every writer of it
    stays, so the trail continues through the cache hits that remain.
    """
    by_hash: dict[str, list[ArtifactUse]] = defaultdict(list)
    for use in uses:
        by_hash[use.sha256].append(use)
    chosen: list[ArtifactUse] = []
    for group in by_hash.values():
        chosen.extend([u for u in group if _first_write(u)] or group)
    return chosen


def _first_write(use: ArtifactUse) -> bool:
    return use.producer_run_id in (None, use.run_id)


def _add_steps(lineage: LineageStore, graph: LineageGraph, steps: Iterable[StepExecution]) -> None:
    steps = list(steps)
    for step in steps:
        node = _step_node(step)
        graph.steps[node.key] = node
    graph.runs.update(lineage.runs({s.run_id for s in steps} - graph.runs.keys()))


def _add_uses(graph: LineageGraph, uses: Iterable[ArtifactUse]) -> None:
    """Artifacts and edges for these rows; rows of a step without a ``pipeline_steps`` row are left out."""
    for use in uses:
        step = step_key(use.run_id, use.node_id)
        if step not in graph.steps:
            continue
        artifact = _add_artifact(graph, use)
        if use.role is ArtifactRole.INPUT:
            graph.edges.add(LineageEdge(artifact, step, use.role.value, use.name))
        else:
            graph.edges.add(LineageEdge(step, artifact, use.role.value, use.name))


def _add_artifact(graph: LineageGraph, use: ArtifactUse) -> str:
    node = ArtifactNode(use.sha256, use.path, use.serializer, use.size, use.producer_run_id)
    graph.artifacts.setdefault(node.key, node)
    return node.key


def _step_node(step: StepExecution) -> StepNode:
    return StepNode(
        run_id=step.run_id,
        node_id=step.node_id,
        step_name=step.step_name,
        position=step.position,
        status=step.status,
        code_digest=_code_digest(step.cache_parts),
        cache_key=step.cache_key,
        cached_from=step.cached_from,
        start_time=step.start_time,
        end_time=step.end_time,
    )


def _code_digest(cache_parts: str | None) -> str | None:
    """``cache_parts["code"]["digest"]``, when the step recorded one."""
    parts = json.loads(cache_parts) if cache_parts else None
    code = parts.get("code") if isinstance(parts, dict) else None
    digest = code.get("digest") if isinstance(code, dict) else None
    return digest if isinstance(digest, str) else None


# -- references --------------------------------------------------------------------------------


def _lineage_store(store: TrackingStore) -> LineageStore:
    if not isinstance(store, SqlStore):
        raise InvalidInput(
            f"Lineage queries read the metadata database, which a {type(store).__name__} cannot reach: "
            "open the store with the database URL (sqlite:///… or postgresql+psycopg://…), "
            "not a server URL."
        )
    return LineageStore(store)


def _run_ref(lineage: LineageStore, ref: str) -> PipelineRunSummary | None:
    """The pipeline run ``ref`` names, or None when it names an artifact.

    ``run:<id>`` always means a run. A bare id means a run only when one has it: 32 hex
    characters are also a valid SHA-256 prefix.
    """
    if ref.startswith("run:"):
        text = ref.removeprefix("run:")
        if 0 < len(text) < 32 and all(c in "0123456789abcdef" for c in text):
            # A prefix, as the other pipeline commands accept: resolve it like they do.
            return lineage.run(PipelineRecords(lineage.store).get_run(text).id)
        return lineage.run(_run_id(ref))
    try:
        run_id = _run_id(ref)
    except InvalidInput:
        return None
    return lineage.runs([run_id]).get(run_id)


def _run_id(ref: str) -> str:
    """The 32-hex run id in ``run:<id>``, a bare id, or its dashed UUID form."""
    text = ref.removeprefix("run:")
    try:
        return uuid.UUID(text).hex
    except ValueError:
        raise InvalidInput(
            f"Invalid pipeline run id {text!r}: expected 32 hex characters (or the dashed UUID form)."
        ) from None


# -- OpenLineage -------------------------------------------------------------------------------

#: The OpenLineage spec version the events follow.
OPENLINEAGE_SPEC = "https://openlineage.io/spec/2-0-2/OpenLineage.json"
#: Names the emitter of every event and facet, as OpenLineage asks (a URI with the version).
PRODUCER = f"https://github.com/conveyor-ml/conveyor/tree/v{__version__}"
#: The namespace of every Conveyor pipeline and step job.
JOB_NAMESPACE = "conveyor"

_PARENT_FACET = "https://openlineage.io/spec/facets/1-1-0/ParentRunFacet.json#/$defs/ParentRunFacet"
_ERROR_FACET = (
    "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet"
)
#: Where the schemas of Conveyor's own facets (``conveyor_*``) are documented.
_CUSTOM_FACETS = "https://github.com/conveyor-ml/conveyor/blob/main/docs/openlineage.md"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: Run or step status → the event that ends its OpenLineage run; others are still going.
_END_EVENTS = {
    "SUCCEEDED": "COMPLETE",
    "CACHED": "COMPLETE",
    "FAILED": "FAIL",
    "CANCELLED": "ABORT",
    "SKIPPED": "ABORT",
}


def openlineage_events(store: TrackingStore, run_ref: str, *, artifact_root: str) -> list[dict[str, Any]]:
    """One pipeline run as OpenLineage run events (spec 2-0-2), so lineage tools can import it.

    The pipeline is the job ``conveyor``/``<pipeline>``; each step that started is a job
    ``<pipeline>.<node id>`` whose run has a ``parent`` facet naming the pipeline run.
    Each run gets a START event and, once it ended, a COMPLETE, FAIL or ABORT event
    (steps in the run's topological order, between the pipeline's two). Datasets are
    artifacts: namespace ``artifact_root``, name the artifact's path, and a
    ``conveyor_artifact`` facet with its SHA-256, serializer and size. The pipeline's own
    events see the run as one box: its inputs are the artifacts no step of the run wrote,
    its outputs those no step of it read.

    OpenLineage wants UUIDs: the pipeline run's is its id in dashed form, a step's the
    UUID5 of the node id in that namespace, so exporting a run again gives the same ids.

    Args:
        store: The SQL store.
        run_ref: The pipeline run: ``run:<id>``, its 32-hex id or the dashed UUID.
        artifact_root: URI of the artifact root (``file:///…``, ``az://…``), the datasets' namespace.

    Raises:
        InvalidInput: ``run_ref`` is not a run id, or the store is not the SQL store.
        NotFound: no such pipeline run.
    """
    lineage = _lineage_store(store)
    run = lineage.run(_run_id(run_ref))
    uses = lineage.uses_of_run(run.run_id)
    by_step: dict[str, list[ArtifactUse]] = defaultdict(list)
    for use in uses:
        by_step[use.node_id].append(use)
    steps = [
        _step_run(run, step, by_step[step.node_id], artifact_root)
        for step in lineage.steps_of_run(run.run_id)
    ]
    pipeline = _events(_pipeline_run(run, uses, artifact_root))
    return [pipeline[0], *(event for step in steps if step for event in _events(step)), *pipeline[1:]]


@dataclass(frozen=True, slots=True)
class _OpenLineageRun:
    """What the START and end events of one OpenLineage run are made of."""

    run_id: str
    job: str
    status: str
    start_time: int
    end_time: int | None
    facets: dict[str, Any]
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    error: str | None = None
    traceback: str | None = None


def _pipeline_run(run: PipelineRunSummary, uses: list[ArtifactUse], namespace: str) -> _OpenLineageRun:
    inputs, outputs = _split(uses)
    read, written = {u.sha256 for u in inputs}, {u.sha256 for u in outputs}
    facet = {
        "status": run.status,
        "user": run.user,
        "host": run.host,
        "gitCommit": run.git_commit,
        "gitDirty": run.git_dirty,
        "pythonVersion": run.python_version,
        "packagesHash": run.packages_hash,
        "trackingRunId": run.tracking_run_id,
    }
    return _OpenLineageRun(
        run_id=str(uuid.UUID(run.run_id)),
        job=run.pipeline,
        status=run.status,
        start_time=run.start_time,
        end_time=run.end_time,
        facets={"conveyor_pipelineRun": _custom_facet("ConveyorPipelineRunFacet", facet)},
        inputs=_datasets([u for u in inputs if u.sha256 not in written], namespace),
        outputs=_datasets([u for u in outputs if u.sha256 not in read], namespace),
        error=run.error,
    )


def _step_run(
    run: PipelineRunSummary, step: StepExecution, uses: list[ArtifactUse], namespace: str
) -> _OpenLineageRun | None:
    """The step's OpenLineage run; None for a step that never started, which has no events."""
    if step.start_time is None:
        return None
    inputs, outputs = _split(uses)
    facet = {
        "nodeId": step.node_id,
        "stepName": step.step_name,
        "status": step.status,
        "codeDigest": _code_digest(step.cache_parts),
        "cacheKey": step.cache_key,
        "cachedFrom": step.cached_from,
    }
    parent = {
        "run": {"runId": str(uuid.UUID(run.run_id))},
        "job": {"namespace": JOB_NAMESPACE, "name": run.pipeline},
    }
    return _OpenLineageRun(
        run_id=str(uuid.uuid5(uuid.UUID(run.run_id), step.node_id)),
        job=f"{run.pipeline}.{step.node_id}",
        status=step.status,
        start_time=step.start_time,
        end_time=step.end_time,
        facets={
            "parent": _facet(_PARENT_FACET, parent),
            "conveyor_step": _custom_facet("ConveyorStepRunFacet", facet),
        },
        inputs=_datasets(inputs, namespace),
        outputs=_datasets(outputs, namespace),
        error=step.error,
        traceback=step.traceback,
    )


def _events(run: _OpenLineageRun) -> list[dict[str, Any]]:
    """START, and the end event when the run has ended; only the end event lists outputs."""
    events = [_event(run, "START", run.start_time, run.facets, [])]
    end_type = _END_EVENTS.get(run.status)
    if end_type is None:
        return events
    facets = run.facets
    if end_type == "FAIL" and run.error:
        error = {"message": run.error, "programmingLanguage": "python", "stackTrace": run.traceback}
        facets = {**facets, "errorMessage": _facet(_ERROR_FACET, error)}
    events.append(_event(run, end_type, run.end_time or run.start_time, facets, run.outputs))
    return events


def _event(
    run: _OpenLineageRun, kind: str, time_ms: int, facets: dict[str, Any], outputs: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "eventType": kind,
        "eventTime": (_EPOCH + timedelta(milliseconds=time_ms)).isoformat(timespec="milliseconds"),
        "producer": PRODUCER,
        "schemaURL": f"{OPENLINEAGE_SPEC}#/$defs/RunEvent",
        "run": {"runId": run.run_id, "facets": facets},
        "job": {"namespace": JOB_NAMESPACE, "name": run.job},
        "inputs": run.inputs,
        "outputs": outputs,
    }


def _datasets(uses: list[ArtifactUse], namespace: str) -> list[dict[str, Any]]:
    """One dataset per distinct artifact (a mapped step may read the same bytes once per item)."""
    unique = {(u.path, u.sha256): u for u in uses}
    return [
        {
            "namespace": namespace,
            "name": u.path,
            "facets": {
                "conveyor_artifact": _custom_facet(
                    "ConveyorArtifactDatasetFacet",
                    {
                        "sha256": u.sha256,
                        "serializer": u.serializer,
                        "size": u.size,
                        "producerRunId": u.producer_run_id,
                    },
                )
            },
        }
        for u in unique.values()
    ]


def _split(uses: list[ArtifactUse]) -> tuple[list[ArtifactUse], list[ArtifactUse]]:
    """Inputs and outputs."""
    return (
        [u for u in uses if u.role is ArtifactRole.INPUT],
        [u for u in uses if u.role is ArtifactRole.OUTPUT],
    )


def _facet(schema_url: str, fields: dict[str, Any]) -> dict[str, Any]:
    """A facet: its fields (unset ones left out) plus the two every facet carries."""
    return {
        "_producer": PRODUCER,
        "_schemaURL": schema_url,
        **{k: v for k, v in fields.items() if v is not None},
    }


def _custom_facet(name: str, fields: dict[str, Any]) -> dict[str, Any]:
    return _facet(f"{_CUSTOM_FACETS}#{name.lower()}", fields)
