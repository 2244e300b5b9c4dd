"""The short way an inference request takes, and that each shortcut answers as the long way."""

from __future__ import annotations

import asyncio
import gc
import re
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from starlette.testclient import TestClient

from conveyor import models
from conveyor.config import Settings
from conveyor.serving import create_app, parse_deployment
from conveyor.serving.batching import Batcher
from conveyor.serving.deadlines import Deadlines
from conveyor.serving.errors import RequestRejected
from conveyor.serving.http import InferenceRoutes
from conveyor.serving.invocations import MlflowScoring
from conveyor.serving.oip import OpenInferenceProtocol
from conveyor.serving.served import ServedModel, prepare
from conveyor.serving.uvicorn_http import CoalescingHttpToolsProtocol
from conveyor.serving.validation import Column, InputSpec, MatrixColumns
from conveyor.testing.processes import free_port

COLUMNS = ["age", "income", "tenure"]
ROWS = [[30.0, 40.5, 10.0], [52.0, 61.0, 3.0]]
SPLIT = {"dataframe_split": {"columns": COLUMNS, "data": ROWS}}


def test_inference_paths_are_recognised_before_routing() -> None:
    runtime: Any = type("Runtime", (), {"deployment": type("D", (), {"default": "churn"})()})()
    mlflow, oip = MlflowScoring(), OpenInferenceProtocol()
    routes = InferenceRoutes(runtime, mlflow, oip, access=False)

    def match(path: str, method: str = "POST", root_path: str = "") -> Any:
        found = routes.match({"type": "http", "method": method, "path": path, "root_path": root_path})
        return None if found is None else (found[0].name, found[1], found[2])

    assert match("/invocations") == ("mlflow", "churn", None)
    assert match("/models/fraud/invocations") == ("mlflow", "fraud", None)
    assert match("/models/fraud/versions/champion/invocations") == ("mlflow", "fraud", "champion")
    assert match("/v2/models/fraud/infer") == ("oip", "fraud", None)
    assert match("/v2/models/fraud/versions/3/infer") == ("oip", "fraud", "3")
    for other in (
        "/invocations/",
        "/models//invocations",
        "/models/fraud/versions//invocations",
        "/v2/models/fraud/ready",
        "/v2/models/fraud/infer/",
        "/v2/models/a/b/infer",
        "/feedback",
        "/v2/health/ready",
    ):
        assert match(other) is None, other
    assert match("/invocations", method="GET") is None  # 405 from the router, as before
    assert match("/api/invocations", root_path="/api") is None  # the router strips the root path


@pytest.fixture(scope="module")
def deployment(churn: str) -> Any:
    return parse_deployment(
        {"models": [{"name": "churn", "uri": "models:/churn@champion"}], "access_log": False}
    )


def test_behind_a_root_path_the_router_answers_the_same(deployment: Any, settings: Settings) -> None:
    oip_body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [2, 3], "data": ROWS}]}
    one_column = {"dataframe_split": {"columns": ["age"], "data": [[1.0]]}}
    with (
        uvicorn_server(create_app(deployment, settings), "httptools") as url,
        uvicorn_server(create_app(deployment, settings), "httptools", root_path="/api") as mounted,
    ):
        short = httpx.post(f"{url}/invocations", json=SPLIT, headers={"X-Request-ID": "short"})
        routed = httpx.post(f"{mounted}/invocations", json=SPLIT, headers={"X-Request-ID": "routed"})
        oip = httpx.post(f"{mounted}/v2/models/churn/versions/champion/infer", json=oip_body)
        bad = httpx.post(f"{mounted}/invocations", json=one_column)
    assert short.status_code == routed.status_code == oip.status_code == 200
    assert short.json() == routed.json()
    assert oip.json()["outputs"][0]["data"] == short.json()["predictions"]
    assert routed.headers["X-Request-ID"] == "routed" and short.headers["X-Request-ID"] == "short"
    for response in (short, routed):
        assert response.headers["X-Conveyor-Variant"] == "default"
        assert response.headers["X-Conveyor-Model-Version"] == "1"
        assert response.headers["content-type"] == "application/json"
    assert bad.status_code == 400 and {d["field"] for d in bad.json()["details"]} == {"income", "tenure"}


def wait_ready(client: TestClient) -> None:
    deadline = time.monotonic() + 30
    while client.get("/v2/health/ready").status_code != 200:
        assert time.monotonic() < deadline, "not ready within 30 s"
        time.sleep(0.02)


@contextmanager
def uvicorn_server(app: Any, http: Any, root_path: str = "") -> Iterator[str]:
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", http=http, loop="asyncio",
        access_log=False, root_path=root_path,
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "not ready within 30 s"
        time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(30)


def test_the_coalescing_protocol_answers_as_uvicorns_own(deployment: Any, settings: Settings) -> None:
    """Same statuses, headers and bodies, keep-alive and pipelining included."""
    answers = {}
    for http in ("httptools", CoalescingHttpToolsProtocol):
        with uvicorn_server(create_app(deployment, settings), http) as url:
            # One keep-alive connection; fixed request ids, so that the bodies compare.
            with httpx.Client(base_url=url, headers={"X-Request-ID": "same"}) as client:
                got = [client.post("/invocations", json=SPLIT) for _ in range(3)]
                got.append(
                    client.post("/invocations", content=b"{", headers={"Content-Type": "application/json"})
                )
                got.append(client.get("/v2/models/churn"))
                got.append(client.get("/docs"))
                got.append(client.get("/nothing-here"))
                metrics = client.get("/metrics")
            answers[str(http)] = [(r.status_code, r.headers.get("content-type"), r.content) for r in got]
            assert all(r.headers["x-request-id"] == "same" for r in got)
            assert metrics.status_code == 200 and b"conveyor_serving_requests_total" in metrics.content
            assert pipelined(url) == [b"200", b"200"]
    plain, coalesced = answers.values()
    assert coalesced == plain
    assert [status for status, _, _ in coalesced] == [200, 200, 200, 400, 200, 200, 404]


def pipelined(url: str) -> list[bytes]:
    """Two requests in one packet on one connection: both answered, in order."""
    host, port = url.removeprefix("http://").split(":")
    body = b'{"inputs": [[30.0, 40.5, 10.0]]}'
    request = (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(request * 2)
        received = b""
        while received.count(b"HTTP/1.1 ") < 2 or not received.endswith(b"]}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    return re.findall(rb"HTTP/1\.1 (\d{3})", received)


def test_quick_predicts_run_on_the_event_loop_and_slow_ones_in_a_thread() -> None:
    threads: list[str] = []

    def predict(columns: Any, *, proba: bool = False) -> Any:
        threads.append(threading.current_thread().name)
        return {"predict": columns["x"] * 2}

    async def scenario(cost: Any, merge: bool) -> None:
        with ThreadPoolExecutor(1, thread_name_prefix="predict") as pool:
            batcher = Batcher(predict, pool, merge=merge, cost=cost, inline_max_s=0.001)
            batcher.start()
            answer = await batcher.submit({"x": np.array([1.0, 2.0])}, 2)
            assert answer["predict"].tolist() == [2.0, 4.0]
            await batcher.close()

    for merge in (True, False):
        threads.clear()
        asyncio.run(scenario(lambda rows: 1e-5 * rows, merge))  # quick: inline
        asyncio.run(scenario(lambda rows: 0.002, merge))  # over the limit: a thread
        asyncio.run(scenario(lambda rows: None, merge))  # not measured: a thread
        asyncio.run(scenario(None, merge))
        assert threads[0] == "MainThread" and all(t.startswith("predict") for t in threads[1:])


def test_warm_up_measures_what_predict_costs(model_dirs: dict[str, Path]) -> None:
    loaded = models.load(model_dirs["logreg1"])
    spec = InputSpec.from_signature(loaded.signature, flavor=loaded.manifest.flavor)
    served = prepare(ServedModel("m", "default", "1", None, loaded, spec))
    assert served.cost is not None
    one, many = served.predict_seconds(1), served.predict_seconds(1000)
    assert one is not None and many is not None and 0 < one <= many < 1.0


def test_a_matrix_is_checked_as_its_columns_would_be() -> None:
    spec = InputSpec("dataframe", [Column(name, "float64") for name in COLUMNS])
    matrix = np.array(ROWS)
    checked = spec.validate(MatrixColumns(matrix, COLUMNS))
    plain = spec.validate({name: matrix[:, j].tolist() for j, name in enumerate(COLUMNS)})
    assert isinstance(checked, MatrixColumns) and list(checked) == list(plain) == COLUMNS
    for name in COLUMNS:
        np.testing.assert_array_equal(checked[name], plain[name])
        assert checked[name].dtype == plain[name].dtype == np.float64
    integers = spec.validate(MatrixColumns(np.array([[1, 2, 3]]), COLUMNS))
    assert isinstance(integers, MatrixColumns) and integers.matrix.dtype == np.float64
    # Columns in another order, or NaN: checked field by field, with the same answers.
    reordered = spec.validate(MatrixColumns(matrix[:, ::-1], COLUMNS[::-1]))
    assert list(reordered) == COLUMNS and reordered["age"].tolist() == [30.0, 52.0]
    with_nan = matrix.copy()
    with_nan[1, 2] = np.nan
    with pytest.raises(RequestRejected) as by_matrix:
        spec.validate(MatrixColumns(with_nan, COLUMNS))
    with pytest.raises(RequestRejected) as by_columns:
        spec.validate({name: with_nan[:, j] for j, name in enumerate(COLUMNS)})
    assert by_matrix.value.problems == by_columns.value.problems
    merged = MatrixColumns.concat([checked, checked])
    assert merged is not None and merged.matrix.shape == (4, 3)
    assert MatrixColumns.concat([checked, dict(checked)]) is None


def test_freezing_the_garbage_collector_waits_for_the_models(deployment: Any, settings: Settings) -> None:
    frozen_before = gc.get_freeze_count()
    try:
        with TestClient(create_app(deployment, settings, freeze_gc=True)) as client:
            wait_ready(client)
            deadline = time.monotonic() + 10
            while gc.get_freeze_count() <= frozen_before:
                assert time.monotonic() < deadline, "not frozen within 10 s of being ready"
                time.sleep(0.02)
            assert client.post("/invocations", json=SPLIT).status_code == 200
    finally:
        gc.unfreeze()


def test_deadlines_cancel_only_the_requests_past_theirs() -> None:
    deadlines = Deadlines()

    async def request(timeout_s: float, work_s: float) -> str:
        deadline = deadlines.start(timeout_s)
        try:
            await asyncio.sleep(work_s)
            return "done"
        except asyncio.CancelledError:
            if not deadlines.timed_out(deadline):
                raise
            return "timed out"
        finally:
            deadlines.finish(deadline, timeout_s)

    async def scenario() -> list[Any]:
        started = time.monotonic()
        # A long timeout registered first must not delay a shorter one registered after it.
        answers = await asyncio.gather(
            request(5.0, 0.01), request(5.0, 0.02), request(0.05, 1.0), request(0.05, 0.01), request(0.1, 1.0)
        )
        assert time.monotonic() - started < 0.5
        # Cancelled by someone else (a shutdown): the cancellation goes on.
        task = asyncio.ensure_future(request(5.0, 1.0))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Cancelled by someone else as well as by its deadline: still not a timeout.
        both = asyncio.ensure_future(request(0.02, 1.0))
        await asyncio.sleep(0)
        time.sleep(0.05)
        deadlines._fire(asyncio.get_running_loop())  # the timer cancels it...
        both.cancel()  # ...and a shutdown too, before the request runs again
        with pytest.raises(asyncio.CancelledError):
            await both
        return [*answers, sum(len(q) for q in deadlines._queues.values())]

    *answers, left = asyncio.run(scenario())
    assert answers == ["done", "done", "timed out", "done", "timed out"]
    assert left == 0  # finished requests are forgotten
