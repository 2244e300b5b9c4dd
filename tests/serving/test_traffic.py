"""Canary weights, pinning, shadows, and hot swaps under load."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from conveyor.config import Settings
from conveyor.registry import RegistryService
from conveyor.serving.traffic import VariantSlot, rows_agreeing
from tests.serving.conftest import LiveServer, running

BODY = {"inputs": [[30.0, 40.0, 10.0], [50.0, 60.0, 5.0]]}


def counter(server: Any, metric: str, **labels: str) -> float:
    family = getattr(server.runtime.metrics, metric)
    return sum(
        s.value
        for f in family.collect()
        for s in f.samples
        if s.name.endswith("_total") and all(s.labels.get(k) == v for k, v in labels.items())
    )


def wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def canary(settings: Settings, churn: str, model_dirs: dict[str, Path]) -> Iterator[LiveServer]:
    deployment = {
        "models": [
            {
                "name": "churn",
                "variants": [
                    {"name": "champion", "uri": "models:/churn@champion", "weight": 3},
                    {"name": "challenger", "uri": "models:/churn@challenger", "weight": 1},
                ],
                "shadow": {"name": "sluggish", "uri": str(model_dirs["slow"]), "mirror": 0.1},
                "allow_pickle": True,
            }
        ],
        "seed": 11,
    }
    with running(deployment, settings) as server:
        yield server


def test_weights_split_traffic_reproducibly(canary: Any) -> None:
    replica = random.Random(11)
    expected = []
    for _ in range(40):
        expected.append(replica.choices(["champion", "challenger"], [3, 1])[0])
        replica.random()  # the shadow's draw
    got = [
        httpx.post(f"{canary.url}/invocations", json=BODY).headers["X-Conveyor-Variant"] for _ in range(40)
    ]
    assert got == expected
    assert 20 < got.count("champion") < 40


def test_a_slow_shadow_never_slows_the_caller_and_is_never_returned(canary: Any) -> None:
    before = counter(canary, "shadow_agreement", variant="sluggish")
    latencies = []
    for _ in range(30):
        started = time.monotonic()
        response = httpx.post(f"{canary.url}/invocations", json=BODY)
        latencies.append(time.monotonic() - started)
        assert response.headers["X-Conveyor-Variant"] in ("champion", "challenger")
        assert all(isinstance(p, int) for p in response.json()["predictions"])  # not the shadow's sums
    assert max(latencies) < 0.4  # the shadow sleeps 0.5 s per call
    wait_for(lambda: counter(canary, "shadow_agreement", variant="sluggish") > before)


def test_pinned_callers_and_versions_in_the_path(canary: Any) -> None:
    for _ in range(10):
        pinned = httpx.post(
            f"{canary.url}/invocations", json=BODY, headers={"X-Conveyor-Variant": "challenger"}
        )
        assert pinned.headers["X-Conveyor-Model-Version"] == "2"
    by_alias = httpx.post(f"{canary.url}/models/churn/versions/challenger/invocations", json=BODY)
    by_number = httpx.post(f"{canary.url}/models/churn/versions/1/invocations", json=BODY)
    assert by_alias.headers["X-Conveyor-Model-Version"] == "2"
    assert by_number.headers["X-Conveyor-Variant"] == "champion"


def test_shadow_agreement_is_counted_by_row(serve: Any, churn: str) -> None:
    server = serve(
        {"models": [{"name": "churn", "uri": "models:/churn@champion", "shadow": {"uri": "models:/churn/1"}}]}
    )
    for _ in range(5):
        assert httpx.post(f"{server.url}/invocations", json=BODY).status_code == 200
    wait_for(lambda: counter(server, "shadow_agreement", agree="true") == 10)
    assert counter(server, "shadow_agreement", agree="false") == 0


def test_rows_agreeing() -> None:
    assert rows_agreeing(np.array([1, 0, 1]), np.array([1, 1, 1])) == 2
    assert rows_agreeing(np.array([1.0, 2.0]), np.array([1.0 + 1e-9, 2.5])) == 1
    assert rows_agreeing(np.array([[0.2, 0.8]]), np.array([[0.2, 0.8]])) == 1
    assert rows_agreeing(np.array([1, 2]), np.array([1])) is None


def test_hot_swap_under_load_drops_nothing(
    serve: Any, registry: RegistryService, model_dirs: dict[str, Path]
) -> None:
    registry.create_model("swap")
    registry.create_version("swap", str(model_dirs["logreg1"]))
    registry.create_version("swap", str(model_dirs["logreg2"]))
    registry.set_alias("swap", "champion", 1)
    server = serve({"models": [{"name": "swap", "uri": "models:/swap@champion"}], "poll_interval_s": 0.1})
    stop = threading.Event()
    seen: list[list[str]] = [[] for _ in range(4)]
    failures: list[str] = []

    def load(log: list[str]) -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            while not stop.is_set():
                response = client.post("/invocations", json=BODY)
                if response.status_code != 200:
                    failures.append(response.text)
                log.append(response.headers.get("X-Conveyor-Model-Version", "?"))

    threads = [threading.Thread(target=load, args=(log,)) for log in seen]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    registry.set_alias("swap", "champion", 2, reason="hot swap test")
    wait_for(lambda: all(log and log[-1] == "2" for log in seen))
    time.sleep(0.2)
    stop.set()
    for thread in threads:
        thread.join()
    assert failures == []
    for log in seen:
        switched = log.index("2")
        assert set(log[:switched]) == {"1"} and set(log[switched:]) == {"2"}  # never back
    metrics = httpx.get(f"{server.url}/metrics").text
    assert (
        'conveyor_serving_model_ready{alias="champion",model="swap",variant="default",version="1"} 0.0'
        in metrics
    )
    assert (
        'conveyor_serving_model_ready{alias="champion",model="swap",variant="default",version="2"} 1.0'
        in metrics
    )


def test_a_retired_version_finishes_what_it_holds() -> None:
    class Closing:
        closed = False

        async def close(self) -> None:
            Closing.closed = True

    class Served:
        in_flight = 0
        retired = False
        batcher = Closing()

    slot = VariantSlot("m", "default", "models:/m@champion")
    old, new = Served(), Served()
    slot.swap(old)  # type: ignore[arg-type]
    held = slot.acquire()
    assert slot.swap(new) is old and old.retired  # type: ignore[arg-type]
    assert slot.acquire() is new

    async def scenario() -> None:
        retiring = asyncio.ensure_future(VariantSlot.retire(held))
        await asyncio.sleep(0.02)
        assert not Closing.closed  # a request still holds it
        slot.release(held)
        await retiring
        assert Closing.closed

    asyncio.run(scenario())
