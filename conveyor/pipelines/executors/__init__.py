"""Executors: where a pipeline's tasks run. The engine decides what runs; an executor runs it.

``local`` runs tasks one by one in the engine's own thread (breakpoints work), ``process``
in a pool of worker processes, ``dask`` on a Dask distributed cluster. All three run the
same :func:`conveyor.pipelines._tasks.execute`, so caching, retries, timeouts and the
record behave the same; they differ in where the call happens and in how a stuck or dead
worker is detected.
"""

from __future__ import annotations

from conveyor.errors import InvalidInput
from conveyor.pipelines.executors.base import Completed, Executor

__all__ = ["EXECUTORS", "Completed", "Executor", "make_executor"]

#: Executor names, as ``--executor`` takes them.
EXECUTORS = ("local", "process", "dask")


def make_executor(name: str, *, address: str | None = None, workers: int | None = None) -> Executor:
    """The executor called ``name``.

    Raises:
        InvalidInput: an unknown name, an address for an executor that takes none, or a
            ``dask`` executor without one.
    """
    if name not in EXECUTORS:
        raise InvalidInput(f"Unknown executor {name!r}: use one of {', '.join(EXECUTORS)}")
    if address is not None and name != "dask":
        raise InvalidInput(f"--address is for the dask executor; the {name} executor runs on this machine")
    if workers is not None and (isinstance(workers, bool) or workers < 1):
        raise InvalidInput(f"workers must be at least 1, got {workers!r}")
    if name == "local":
        from conveyor.pipelines.executors.local import LocalExecutor

        return LocalExecutor()
    if name == "process":
        from conveyor.pipelines.executors.process import ProcessExecutor

        return ProcessExecutor(workers)
    if address is None:
        raise InvalidInput("The dask executor needs the scheduler's address: --address tcp://host:8786")
    from conveyor.pipelines.executors.dask import DaskExecutor

    return DaskExecutor(address)
