"""Adaptive batching: merged by rows, every request gets exactly its own rows back."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from conveyor import models
from conveyor.serving.batching import Batcher, BatchStats
from conveyor.serving.served import Outputs
from conveyor.serving.validation import Columns


class Recorder:
    """A model double: doubles ``x``, remembers every call's size, fails on a negative value."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[int] = []
        self.delay = delay
        self.lock = threading.Lock()

    def __call__(self, columns: Columns, *, proba: bool = False) -> Outputs:
        with self.lock:
            self.calls.append(len(columns["x"]))
        time.sleep(self.delay)
        if (columns["x"] < 0).any():
            raise ValueError("negative")
        return {"predict": columns["x"] * 2}


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


async def submit_all(batcher: Batcher, sizes: list[int], *, offset: int = 0) -> list[Any]:
    async def one(i: int, n: int) -> Any:
        x = np.arange(n, dtype=float) + 1000 * (i + offset)
        try:
            return await batcher.submit({"x": x}, n)
        except Exception as exc:
            return exc

    return await asyncio.gather(*(one(i, n) for i, n in enumerate(sizes)))


def test_concurrent_requests_merge_and_split_back() -> None:
    model = Recorder(delay=0.01)
    stats: list[BatchStats] = []
    sizes = [random.Random(1).randint(1, 37) for _ in range(50)]

    async def scenario() -> list[Any]:
        with ThreadPoolExecutor(2) as pool:
            batcher = Batcher(model, pool, max_batch_size=64, observe=stats.append)
            batcher.start()
            answers = await submit_all(batcher, sizes)
            await batcher.close()
            return answers

    answers = run(scenario())
    for i, (n, answer) in enumerate(zip(sizes, answers, strict=True)):
        np.testing.assert_array_equal(answer["predict"], (np.arange(n) + 1000 * i) * 2)
    assert sum(model.calls) == sum(sizes)
    assert len(model.calls) < len(sizes)  # merged
    assert max(model.calls) <= 64
    assert sum(s.requests for s in stats) == len(sizes)


def test_a_request_larger_than_the_limit_runs_alone() -> None:
    model = Recorder()

    async def scenario() -> list[Any]:
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher(model, pool, max_batch_size=10)
            batcher.start()
            answers = await submit_all(batcher, [25, 3, 4])
            await batcher.close()
            return answers

    answers = run(scenario())
    assert [len(a["predict"]) for a in answers] == [25, 3, 4]
    assert 25 in model.calls and max(c for c in model.calls if c != 25) <= 10


def test_only_the_failing_request_fails() -> None:
    model = Recorder(delay=0.005)

    async def scenario() -> list[Any]:
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher(model, pool, max_batch_size=1000)
            batcher.start()

            async def one(values: list[float]) -> Any:
                try:
                    return await batcher.submit({"x": np.array(values)}, len(values))
                except Exception as exc:
                    return exc

            answers = await asyncio.gather(*(one([i, i + 1]) for i in range(5)), one([-1.0]))
            await batcher.close()
            return answers

    *good, bad = run(scenario())
    assert isinstance(bad, ValueError)
    for i, answer in enumerate(good):
        np.testing.assert_array_equal(answer["predict"], [2 * i, 2 * i + 2])


def test_max_wait_gathers_a_batch_and_no_merge_runs_each_alone() -> None:
    model = Recorder()

    async def scenario(merge: bool) -> None:
        with ThreadPoolExecutor(2) as pool:
            batcher = Batcher(model, pool, merge=merge, max_batch_size=100, max_wait_s=0.05)
            batcher.start()

            async def late(i: int) -> Any:
                await asyncio.sleep(0.005 * i)
                return await batcher.submit({"x": np.array([float(i)])}, 1)

            answers = await asyncio.gather(*(late(i) for i in range(5)))
            assert [a["predict"].tolist() for a in answers] == [[2.0 * i] for i in range(5)]
            await batcher.close()

    run(scenario(True))
    assert model.calls == [5]
    model.calls.clear()
    run(scenario(False))
    assert model.calls == [1] * 5


def test_a_caller_that_gave_up_is_skipped() -> None:
    model = Recorder(delay=0.05)

    async def scenario() -> None:
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher(model, pool, max_batch_size=1)
            batcher.start()
            first = asyncio.ensure_future(batcher.submit({"x": np.array([1.0])}, 1))
            await asyncio.sleep(0.01)
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(batcher.submit({"x": np.array([7.0])}, 1), 0.01)
            assert (await first)["predict"].tolist() == [2.0]
            await batcher.close()

    run(scenario())
    assert model.calls == [1]  # the abandoned request never ran


# -- over HTTP ------------------------------------------------------------------------------


def test_fifty_concurrent_clients_each_get_their_own_rows(
    churn_server: Any, model_dirs: dict[str, Path]
) -> None:
    """50 clients with 1-37 rows each, all at once; every answer equals predicting its rows alone."""
    reference = models.load(model_dirs["logreg1"])
    rng = np.random.default_rng(5)
    bodies = []
    for _ in range(50):
        n = int(rng.integers(1, 38))
        rows = rng.normal([40, 50, 24], [10, 15, 12], size=(n, 3)).round(3)
        bodies.append(rows)

    async def scenario() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=churn_server.url, timeout=30) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        "/invocations",
                        json={
                            "dataframe_split": {"columns": ["age", "income", "tenure"], "data": rows.tolist()}
                        },
                    )
                    for rows in bodies
                )
            )

    before = batch_count(churn_server)
    responses = asyncio.run(scenario())
    import pandas as pd

    for rows, response in zip(bodies, responses, strict=True):
        assert response.status_code == 200, response.text
        expected = reference.predict(pd.DataFrame(rows, columns=["age", "income", "tenure"]))
        assert response.json()["predictions"] == expected.tolist()
    calls = batch_count(churn_server) - before
    assert calls < 50  # some requests shared a predict call


def batch_count(server: Any) -> float:
    metric = server.runtime.metrics.batch_size
    return sum(
        sample.value
        for family in metric.collect()
        for sample in family.samples
        if sample.name.endswith("_count") and sample.labels["model"] == "churn"
    )
