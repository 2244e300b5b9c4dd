"""The rows that pipeline lineage is walked over: who wrote and who read which bytes.

Every artifact a pipeline step read or wrote is a row of ``pipeline_artifacts``, keyed by
its content hash, so "where did these bytes come from" and "what did they feed" are joins
on ``sha256``. This class only fetches rows; the graph walk and its meaning (which writer
counts as the producer, how deep to go) belong to :mod:`conveyor.pipelines.lineage`.

Every query takes a batch (hashes, step keys, run ids) and runs as ``IN (...)`` lists in
slices, so a walk costs a few queries per level of the graph, not one per node: a step
mapped over a thousand items is one level, whatever the item count.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import TypeVar

from sqlalchemy import ColumnElement, Connection, RowMapping, Select, and_, func, select, tuple_

from conveyor.errors import ArtifactNotFound, ConveyorError, InvalidInput, NotFound
from conveyor.store.sql import schema as s
from conveyor.store.sql import scope
from conveyor.store.sql.rows import IN_CHUNK
from conveyor.store.sql.store import SqlStore

#: ``(run_id, node_id)``: one step execution, the primary key of ``pipeline_steps``.
StepKey = tuple[str, str]

#: The shortest SHA-256 prefix accepted as an artifact reference.
MIN_SHA_PREFIX = 8
#: How many candidates an ambiguous reference lists.
MAX_CANDIDATES = 10

_HEX = re.compile(r"[0-9a-fA-F]+")
_T = TypeVar("_T")


class ArtifactRole(StrEnum):
    """Whether a step read the artifact or wrote it."""

    INPUT = "input"
    OUTPUT = "output"


@dataclass(frozen=True, slots=True)
class ArtifactUse:
    """One ``pipeline_artifacts`` row: a step execution read or wrote these bytes.

    ``producer_run_id`` is the run that first wrote the bytes: for a cache hit's outputs
    and for inputs it is usually an earlier run, not ``run_id``.
    """

    run_id: str
    node_id: str
    role: ArtifactRole
    #: The parameter an input went to, or the output's name (``return``, ``0``, ``[i]``…).
    name: str
    path: str
    sha256: str
    serializer: str
    size: int
    producer_run_id: str | None

    @property
    def step(self) -> StepKey:
        return (self.run_id, self.node_id)


@dataclass(frozen=True, slots=True)
class StepExecution:
    """The lineage-relevant columns of a ``pipeline_steps`` row (no logs, no tracebacks)."""

    run_id: str
    node_id: str
    step_name: str
    position: int
    status: str
    start_time: int | None
    end_time: int | None
    cache_key: str | None
    #: JSON text: what the cache key was computed from (``{"code": {"digest": …}, …}``).
    cache_parts: str | None
    cached_from: str | None
    error: str | None
    traceback: str | None

    @property
    def key(self) -> StepKey:
        return (self.run_id, self.node_id)


@dataclass(frozen=True, slots=True)
class PipelineRunSummary:
    """Who ran a pipeline, on what code and environment, and how it ended."""

    run_id: str
    pipeline: str
    status: str
    start_time: int
    end_time: int | None
    user: str
    host: str
    git_commit: str | None
    git_dirty: bool | None
    python_version: str
    packages_hash: str
    tracking_run_id: str | None
    error: str | None


# The records' fields are named after their columns, so the selects follow the dataclasses.
_STEP_COLUMNS = [s.pipeline_steps.c[f.name] for f in fields(StepExecution)]
_RUN_COLUMNS = [
    s.pipeline_runs.c.id.label("run_id"),
    *(s.pipeline_runs.c[f.name] for f in fields(PipelineRunSummary) if f.name != "run_id"),
]


class LineageStore:
    """Read-only lineage queries on the ``pipeline_*`` tables of a SQL store."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store

    # -- resolving references ----------------------------------------------------------------

    def artifact(self, ref: str) -> ArtifactUse:
        """The artifact a user means by ``ref``: an exact path, else a SHA-256 or unique prefix.

        The path is tried first because a path is always exact, while a hash prefix may
        match several artifacts. The row returned is the earliest recorded for the hash.

        Raises:
            InvalidInput: the path or prefix matches several different artifacts (the
                message lists them), or a hex prefix is shorter than 8 characters.
            ArtifactNotFound: nothing matches.
        """
        table, runs = s.pipeline_artifacts, s.pipeline_runs
        visible = scope.owned_by(table.c.run_id, runs.c.id, runs.c.workspace)
        with self.store._read() as conn:
            found = _first_use_per_hash(conn, and_(table.c.path == ref, *visible))
            if not found and _HEX.fullmatch(ref) and len(ref) >= MIN_SHA_PREFIX:
                found = _first_use_per_hash(conn, and_(_has_prefix(ref.lower()), *visible))
        if len(found) != 1:
            raise _no_single_match(ref, found)
        return found[0]

    def run(self, run_id: str) -> PipelineRunSummary:
        """One pipeline run; an unknown id raises :class:`~conveyor.errors.NotFound`."""
        found = self.runs([run_id])
        if run_id not in found:
            raise NotFound(f"No pipeline run with id {run_id!r}.")
        return found[run_id]

    def runs(self, run_ids: Collection[str]) -> dict[str, PipelineRunSummary]:
        """The pipeline runs among ``run_ids`` that exist, by id (unknown ids are left out)."""
        table = s.pipeline_runs
        visible = scope.workspace_is(table.c.workspace)
        rows = self._fetch(
            list(run_ids), lambda part: select(*_RUN_COLUMNS).where(table.c.id.in_(part), *visible)
        )
        return {r["run_id"]: PipelineRunSummary(**r) for r in rows}

    # -- steps ---------------------------------------------------------------------------------

    def steps(self, keys: Collection[StepKey]) -> dict[StepKey, StepExecution]:
        """The step executions among ``keys`` that exist, by key."""
        table = s.pipeline_steps
        rows = self._fetch(
            list(keys),
            lambda part: select(*_STEP_COLUMNS).where(tuple_(table.c.run_id, table.c.node_id).in_(part)),
            size=IN_CHUNK // 2,
        )
        steps = (StepExecution(**r) for r in rows)
        return {step.key: step for step in steps}

    def steps_of_run(self, run_id: str) -> list[StepExecution]:
        """Every step of a run, in the run's topological order."""
        table = s.pipeline_steps
        query = select(*_STEP_COLUMNS).where(table.c.run_id == run_id).order_by(table.c.position)
        with self.store._read() as conn:
            return [StepExecution(**r) for r in conn.execute(query).mappings()]

    # -- artifact uses -------------------------------------------------------------------------

    def producers(self, hashes: Collection[str]) -> list[ArtifactUse]:
        """Every ``output`` row with one of these hashes: each step execution that wrote them.

        Cache hits are included (their ``producer_run_id`` names the run that really wrote
        the bytes); telling them apart is the caller's choice.
        """
        return self._uses_of_hashes(hashes, ArtifactRole.OUTPUT)

    def consumers(self, hashes: Collection[str]) -> list[ArtifactUse]:
        """Every ``input`` row with one of these hashes: each step execution that read them."""
        return self._uses_of_hashes(hashes, ArtifactRole.INPUT)

    def uses_of_steps(self, keys: Collection[StepKey], role: ArtifactRole | None = None) -> list[ArtifactUse]:
        """What these step executions read and wrote (only ``role`` when given), in insertion order."""
        table = s.pipeline_artifacts

        def query(part: Sequence[StepKey]) -> Select[tuple[object, ...]]:
            found = _uses_query().where(tuple_(table.c.run_id, table.c.node_id).in_(part))
            return found if role is None else found.where(table.c.role == role.value)

        return [_use(r) for r in self._fetch(list(keys), query, size=IN_CHUNK // 2)]

    def uses_of_run(self, run_id: str) -> list[ArtifactUse]:
        """Everything the steps of one run read and wrote, in insertion order."""
        query = _uses_query().where(s.pipeline_artifacts.c.run_id == run_id)
        with self.store._read() as conn:
            return [_use(r) for r in conn.execute(query).mappings()]

    # -- helpers -------------------------------------------------------------------------------

    def _uses_of_hashes(self, hashes: Collection[str], role: ArtifactRole) -> list[ArtifactUse]:
        table = s.pipeline_artifacts
        rows = self._fetch(
            list(hashes),
            lambda part: _uses_query().where(table.c.sha256.in_(part), table.c.role == role.value),
        )
        return [_use(r) for r in rows]

    def _fetch(
        self,
        items: list[_T],
        query: Callable[[Sequence[_T]], Select[tuple[object, ...]]],
        size: int = IN_CHUNK,
    ) -> list[RowMapping]:
        """The rows of ``query`` over ``items``, run in slices that keep every ``IN`` list bounded."""
        found: list[RowMapping] = []
        with self.store._read() as conn:
            for part in _slices(items, size):
                found.extend(conn.execute(query(part)).mappings())
        return found


def _no_single_match(ref: str, found: list[ArtifactUse]) -> ConveyorError:
    """The error for a reference that matched several artifacts or none."""
    if found:
        listed = "\n".join(f"  {u.sha256}  {u.path}" for u in found[:MAX_CANDIDATES])
        more = " (and more)" if len(found) > MAX_CANDIDATES else ""
        return InvalidInput(
            f"{ref!r} matches several artifacts{more}; name one by its SHA-256 or a longer prefix:\n{listed}"
        )
    if _HEX.fullmatch(ref) and len(ref) < MIN_SHA_PREFIX:
        return InvalidInput(
            f"No artifact has the path {ref!r}, and a SHA-256 prefix needs at least "
            f"{MIN_SHA_PREFIX} hex characters."
        )
    return ArtifactNotFound(f"No pipeline step read or wrote an artifact with path or SHA-256 {ref!r}.")


def _slices(items: list[_T], size: int) -> Iterator[list[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _uses_query() -> Select[tuple[object, ...]]:
    table = s.pipeline_artifacts
    return select(*(table.c[f.name] for f in fields(ArtifactUse))).order_by(table.c.id)


def _use(row: RowMapping) -> ArtifactUse:
    return ArtifactUse(**{**row, "role": ArtifactRole(row["role"])})


def _has_prefix(prefix: str) -> ColumnElement[bool]:
    """Hashes starting with ``prefix``, as a range so the ``sha256`` index serves it.

    Lowercase hex digits all sort below ``g``, so ``prefix <= sha < prefix + "g"`` holds
    exactly for the hashes that start with ``prefix``; ``LIKE 'abc%'`` would scan the
    table on SQLite, whose ``LIKE`` is case-insensitive and so cannot use the index.
    """
    column = s.pipeline_artifacts.c.sha256
    return (column >= prefix) & (column < prefix + "g")


def _first_use_per_hash(conn: Connection, condition: ColumnElement[bool]) -> list[ArtifactUse]:
    """The earliest row of each distinct hash matching ``condition``; at most one past the listing limit."""
    table = s.pipeline_artifacts
    firsts = select(func.min(table.c.id)).where(condition).group_by(table.c.sha256)
    query = (_uses_query().where(table.c.id.in_(firsts)).order_by(None).order_by(table.c.sha256)).limit(
        MAX_CANDIDATES + 1
    )
    return [_use(r) for r in conn.execute(query).mappings()]
