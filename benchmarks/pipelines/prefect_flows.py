"""Prefect 3's side of the pipeline benchmark, run by ``run.py`` in the competitors' venv.

    .bench-venv-pipelines/bin/python benchmarks/pipelines/prefect_flows.py chain 200

One flow per process, as a user would start it: ``run.py`` times the whole process,
so Prefect's import and its ephemeral API server (started on first use, stopped at exit)
are in the figure, as they are in every ``python my_flow.py`` a Prefect user runs
without a server of their own.

Every task caches on its inputs and its source (``INPUTS + TASK_SOURCE``), so that
re-running ``chain`` in the same ``PREFECT_HOME`` is Prefect's fully cached re-run, and
a cache policy makes Prefect persist each result, as Conveyor records every step's
output. ``INPUTS`` alone would leave ``first`` uncached: Prefect gives a task without
arguments no ``INPUTS`` key, and a task without a key is not cached. The source part
also matches Conveyor's cache key, which covers the step's code. The flow's result is
printed as ``RESULT <value>``, which ``run.py`` checks.
"""

import sys

from prefect import flow, task
from prefect.cache_policies import INPUTS, TASK_SOURCE

CACHE = INPUTS + TASK_SOURCE


@task(cache_policy=CACHE)
def first() -> int:
    return 0


@task(cache_policy=CACHE)
def inc(x: int) -> int:
    return x + 1


@task(cache_policy=CACHE)
def numbers(n: int) -> list[int]:
    return list(range(n))


@task(cache_policy=CACHE)
def total(xs: list[int]) -> int:
    return sum(xs)


@flow
def one() -> int:
    return first()


@flow
def chain(n: int) -> int:
    x = first()
    for _ in range(n):
        x = inc(x)
    return x


@flow
def fanout(n: int) -> int:
    # .map submits every task to the flow's task runner (threads by default); passing
    # the futures to a task makes Prefect wait for all of them before ``total`` runs.
    return total(inc.map(numbers(n)))


FLOWS = {"one": one, "chain": chain, "fanout": fanout}

if __name__ == "__main__":
    name, *size = sys.argv[1:]
    print("RESULT", FLOWS[name](*map(int, size)))
