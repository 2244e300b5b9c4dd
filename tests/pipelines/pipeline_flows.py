"""Pipelines the engine tests run, importable by worker processes and Dask workers.

Steps that must fail, hang or die a given number of times count their attempts in files
under a folder the test passes as a parameter, so the count survives a killed process.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pandas as pd

import conveyor
from conveyor import pipeline, step


def attempt(folder: str, name: str) -> int:
    """This call's attempt number (1, 2, ...) for ``name``, counted on disk."""
    marker = Path(folder) / f"{name}.attempts"
    count = int(marker.read_text()) + 1 if marker.exists() else 1
    marker.write_text(str(count))
    return count


@step
def first() -> int:
    return 0


@step
def inc(x: int) -> int:
    return x + 1


@step
def total(xs: list[int]) -> int:
    print(f"summing {len(xs)} numbers")
    return sum(xs)


@step
def numbers(n: int) -> list[int]:
    return list(range(n))


@step
def pid_of(x: int) -> int:
    return os.getpid()


@pipeline
def chain(n: int = 5):
    x = first()
    for _ in range(n):
        x = inc(x)


@pipeline
def fan(n: int = 100):
    total(inc.map(numbers(n)))


@pipeline
def fan_const(n: int = 10):
    total(inc.map(list(range(n))))


@pipeline
def where_run(n: int = 4):
    pid_of.map(list(range(n)))


# -- data, tuples, scaling ------------------------------------------------------------------


@step
def make_frame(rows: int, scale: float = 1.0) -> pd.DataFrame:
    return pd.DataFrame({"x": np.arange(rows, dtype=float) * scale, "y": np.arange(rows) % 3})


@step
def split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    cut = len(frame) // 2
    return frame.iloc[:cut].reset_index(drop=True), frame.iloc[cut:].reset_index(drop=True)


@step
def column_sum(frame: pd.DataFrame, column: str = "x") -> float:
    return float(frame[column].sum())


@step
def log_and_return(value: float, label: str) -> dict:
    conveyor.log_param("label", label)
    conveyor.log_metric("value", value)
    return {"label": label, "value": value}


@pipeline
def frames(rows: int = 10, scale: float = 1.0):
    train, test = split(make_frame(rows, scale))
    log_and_return(column_sum(train), "train")
    log_and_return(column_sum(test), "test")


# -- failures ---------------------------------------------------------------------------------


@step
def explode(x: int, message: str = "boom") -> int:
    raise ValueError(message)


@step
def independent() -> int:
    return 42


@pipeline
def failing():
    inc(explode(first()))
    inc(independent())


@step(retries=2, backoff=0.01)
def flaky(folder: str, failures: int) -> int:
    count = attempt(folder, "flaky")
    if count <= failures:
        raise ConnectionError(f"attempt {count} failed")
    return count


@pipeline
def retrying(folder: str, failures: int = 2):
    flaky(folder, failures)


@step(retries=3, backoff=0.01, retry_on=ConnectionError)
def wrong_error(folder: str) -> int:
    attempt(folder, "wrong_error")
    raise KeyError("not retried")


@pipeline
def not_retried(folder: str):
    wrong_error(folder)


@step(timeout=0.5)
def hang(seconds: float) -> int:
    time.sleep(seconds)
    return 1


@pipeline
def hanging(seconds: float = 30.0):
    hang(seconds)


@step(timeout=0.5)
def hang_deaf(seconds: float) -> int:
    """Blocks SIGALRM, as a call stuck in C code would, so only a kill stops it."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(seconds)
    return 1


@pipeline
def hanging_deaf(seconds: float = 30.0):
    hang_deaf(seconds)


@step(retries=1, backoff=0.01)
def die_once(folder: str) -> int:
    if attempt(folder, "die_once") == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return os.getpid()


@pipeline
def dying(folder: str):
    die_once(folder)


@step
def die_always() -> int:
    os.kill(os.getpid(), signal.SIGKILL)
    return 0


@pipeline
def dying_always():
    die_always()


@step
def gate(folder: str, x: int) -> int:
    """Fails while ``folder/closed`` exists: the test "fixes" the failure by deleting it."""
    if (Path(folder) / "closed").exists():
        raise RuntimeError("gate closed")
    return x * 10


@pipeline
def resumable(folder: str):
    a = inc(first())
    b = gate(folder, a)
    inc(b)
    inc(independent())


@step
def wrong_type() -> int:
    return "not an int"  # type: ignore[return-value]


@pipeline
def mistyped():
    wrong_type()


class Opaque:
    """A value no typed serializer takes."""

    def __init__(self, value: int) -> None:
        self.value = value


@step
def opaque() -> Opaque:
    return Opaque(1)


@step(allow_pickle=True)
def opaque_pickled() -> Opaque:
    return Opaque(2)


@pipeline
def unserializable(opt_in: bool = False):
    if opt_in:
        opaque_pickled()
    else:
        opaque()


@step
def sleepy(seconds: float) -> int:
    time.sleep(seconds)
    return 1


@pipeline
def slow(seconds: float = 60.0):
    inc(sleepy(seconds))


@step(cache=False)
def uncached(x: int) -> int:
    return x + 1


@pipeline
def partly_cached():
    uncached(inc(first()))


@step(spark=True)
def spark_totals(frame: pd.DataFrame, spark) -> pd.DataFrame:
    """Data prep on Spark: the engine passes the session; the result comes back as pandas."""
    totals = spark.createDataFrame(frame).groupBy("y").sum("x").withColumnRenamed("sum(x)", "total")
    return totals.orderBy("y").toPandas()


@pipeline
def sparky(rows: int = 30):
    column_sum(spark_totals(make_frame(rows)), "total")


@step(resources={"cpu": 2, "memory": "1GiB"})
def heavy(x: int) -> int:
    return x * 2


@step(resources={"cpu": 64})
def huge(x: int) -> int:
    return x


@pipeline
def resourceful(greedy: bool = False):
    if greedy:
        huge(first())
    else:
        heavy(first())


@step
def base_list() -> list[int]:
    return [1, 2, 3]


@step
def mutate(xs: list[int]) -> int:
    xs.append(99)
    return len(xs)


@step
def length(xs: list[int]) -> int:
    return len(xs)


@pipeline
def shared():
    xs = base_list()
    mutate(xs)
    length(xs)
