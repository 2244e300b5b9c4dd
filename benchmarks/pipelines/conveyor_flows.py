"""Conveyor's side of the pipeline benchmark: the same three graphs as the competitors'.

Run by ``run.py`` through the CLI, one fresh process per run and executor::

    python -m conveyor pipeline run benchmarks/pipelines/conveyor_flows.py:chain --param n=200

The steps do no work on purpose: whatever a run costs beyond ``one`` (the startup
baseline, a single step) is the engine's own cost per step: building the graph, hashing
inputs for the cache key, recording step runs, serializing outputs, dispatching tasks.
"""

from conveyor import pipeline, step


@step
def first() -> int:
    return 0


@step
def inc(x: int) -> int:
    return x + 1


@step
def numbers(n: int) -> list[int]:
    return list(range(n))


@step
def total(xs: list[int]) -> int:
    return sum(xs)


@pipeline
def one() -> None:
    """The startup baseline: interpreter, import, store and one step."""
    first()


@pipeline
def chain(n: int = 200) -> None:
    """``n`` steps in a line, each waiting for the previous one's output."""
    x = first()
    for _ in range(n):
        x = inc(x)


@pipeline
def fanout(n: int = 1000) -> None:
    """``n`` tasks of one mapped step, then one step that collects them.

    The items come from a step rather than a literal ``range`` so that the fan-out is
    sized at run time, as Prefect's ``.map`` over a task's result and Metaflow's
    ``foreach`` over an artifact are.
    """
    total(inc.map(numbers(n)))
