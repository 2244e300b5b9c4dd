"""The tracking data model as plain, immutable values.

Every back end (the SQL store, the REST client) returns these, so callers never see an
ORM object or a wire dict. Times are integer milliseconds since the epoch, as in MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, NamedTuple, TypeVar

T = TypeVar("T")


class LifecycleStage(StrEnum):
    ACTIVE = "active"
    DELETED = "deleted"


class RunStatus(StrEnum):
    RUNNING = "RUNNING"
    SCHEDULED = "SCHEDULED"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"

    @property
    def is_terminal(self) -> bool:
        return self in (RunStatus.FINISHED, RunStatus.FAILED, RunStatus.KILLED)


class ViewType(StrEnum):
    """Which lifecycle stages a search returns; names as on MLflow's wire."""

    ACTIVE_ONLY = "ACTIVE_ONLY"
    DELETED_ONLY = "DELETED_ONLY"
    ALL = "ALL"

    def stages(self) -> tuple[LifecycleStage, ...]:
        if self is ViewType.ACTIVE_ONLY:
            return (LifecycleStage.ACTIVE,)
        if self is ViewType.DELETED_ONLY:
            return (LifecycleStage.DELETED,)
        return (LifecycleStage.ACTIVE, LifecycleStage.DELETED)


@dataclass(frozen=True, slots=True)
class Experiment:
    experiment_id: str
    name: str
    artifact_location: str
    lifecycle_stage: LifecycleStage
    creation_time: int
    last_update_time: int
    tags: dict[str, str] = field(default_factory=dict)


class Metric(NamedTuple):
    """One point of a metric's time series; ``value`` may be NaN or ±inf.

    A named tuple rather than a frozen dataclass: metrics come by the hundred thousand,
    and a tuple is built several times faster, which training loops and history reads feel.
    """

    key: str
    value: float
    timestamp: int
    step: int = 0


@dataclass(frozen=True, slots=True)
class Param:
    key: str
    value: str


@dataclass(frozen=True, slots=True)
class Tag:
    key: str
    value: str


@dataclass(frozen=True, slots=True)
class Dataset:
    """A dataset a run consumed; ``digest`` is a full-content SHA-256 when Conveyor computed it."""

    name: str
    digest: str
    source_type: str
    source: str
    schema: str | None = None
    profile: str | None = None


@dataclass(frozen=True, slots=True)
class DatasetInput:
    dataset: Dataset
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RunInfo:
    run_id: str
    experiment_id: str
    run_name: str
    user_id: str
    status: RunStatus
    start_time: int
    end_time: int | None
    artifact_uri: str
    lifecycle_stage: LifecycleStage


@dataclass(frozen=True, slots=True)
class Run:
    info: RunInfo
    params: dict[str, str] = field(default_factory=dict)
    #: Latest point of each metric (highest step, then timestamp, then value).
    metrics: dict[str, Metric] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    inputs: list[DatasetInput] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ArtifactRecord:
    """Index entry for one stored file: where it is, how big, and what its bytes hash to.

    ``path`` is relative to the artifact root (``<experiment>/<run>/artifacts/<file>``),
    so the same record stays valid when the root moves from a folder to a blob container.
    """

    path: str
    size: int
    sha256: str
    run_id: str | None = None
    created_time: int = 0


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_page_token: str | None = None
