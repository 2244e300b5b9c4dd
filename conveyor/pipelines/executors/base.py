"""The executor interface the engine drives."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

from conveyor.pipelines._tasks import Task, UnitResult


@dataclass(frozen=True)
class Completed:
    """A task that finished, one way or another, with a result per unit."""

    task: Task
    results: list[UnitResult]


@dataclass(frozen=True)
class Shipping:
    """What workers need to import the pipeline's code.

    ``sys_path`` entries come first on the worker's ``sys.path``; ``files`` are single
    module files a remote cluster must be sent (a pipeline given as ``churn.py``).
    """

    sys_path: Sequence[str] = ()
    files: Sequence[str] = field(default_factory=tuple)


class Executor(ABC):
    """Runs tasks; the engine submits what is ready and collects what finished.

    The engine calls :meth:`open` once, then :meth:`submit` and :meth:`wait` in a loop,
    then :meth:`close` (also after an error). Tasks must not be lost: every submitted task
    comes back from :meth:`wait` exactly once, unless :meth:`cancel` dropped it.
    """

    #: As ``--executor`` names it.
    name: str
    #: Whether results carry the returned values (consumers in the same process skip a load).
    keep_values: bool = False
    #: Whether :meth:`wait` runs steps in the caller's thread (the engine then records
    #: progress from another thread while a step runs).
    runs_in_caller: bool = False

    @property
    @abstractmethod
    def slots(self) -> int:
        """Tasks that can run at once; the engine batches mapped items to fill them."""

    @property
    def address(self) -> str | None:
        """Where the tasks run, for the run record (the Dask scheduler's address)."""
        return None

    @abstractmethod
    def open(self, shipping: Shipping, resources_needed: Sequence[dict[str, float]]) -> None:
        """Start workers or connect; fail here, clearly, if tasks could never run."""

    @abstractmethod
    def submit(self, task: Task) -> None:
        """Queue ``task``; never blocks on the task itself."""

    @abstractmethod
    def wait(self, timeout: float | None) -> list[Completed]:
        """Block until at least one task finished or ``timeout`` seconds passed."""

    @abstractmethod
    def cancel(self) -> list[Task]:
        """Stop everything queued or running (fail-fast, Ctrl-C); return the dropped tasks."""

    @abstractmethod
    def close(self) -> None:
        """Release workers and connections; safe to call twice."""
