"""``make demo``, last step: serve the champion the registry demo promoted, and ask it.

1. starts ``conveyor serve models:/breast-cancer@champion`` in a subprocess on the demo's
   store (``./.conveyor``), port 8080 when free, and waits until ``/v2/health/ready``;
2. sends one row of the breast-cancer data both ways: MLflow's ``/invocations``
   (``dataframe_split``) and the Open Inference Protocol (one tensor per column), prints
   the answers, the request id, and the ``curl`` command to do the same;
3. sends a request with a missing column to show the field-level 400;
4. keeps serving until Ctrl-C, or stops at once with ``--no-wait`` (or
   ``CONVEYOR_DEMO_NO_WAIT=1``), as ``tests/test_serving_demo.py`` does.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

URI = "models:/breast-cancer@champion"
DEFAULT_PORT = 8080


def free_port(preferred: int) -> int:
    with socket.socket() as sock:
        if sock.connect_ex(("127.0.0.1", preferred)) != 0:
            return preferred
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], str]:
    """Status, JSON answer and request id of a JSON POST (errors included)."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response), response.headers.get("X-Request-ID", "")
    except urllib.error.HTTPError as error:
        return error.code, json.load(error), error.headers.get("X-Request-ID", "")


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"conveyor serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(f"{url}/v2/health/ready", timeout=1) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"the model server at {url} was not ready within {timeout:.0f} s; see {log}")


def sample_row() -> dict[str, Any]:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.drop(columns="target")
    row = frame.iloc[:1]
    return {"columns": list(row.columns), "data": row.to_numpy().tolist()}


def ask(url: str) -> None:
    split = sample_row()
    status, answer, request_id = post(f"{url}/invocations", {"dataframe_split": split})
    print(f"\nPOST {url}/invocations  (MLflow scoring protocol)  -> {status}  X-Request-ID {request_id}")
    print(f"  {json.dumps(answer)}")
    inputs = [
        {"name": name, "shape": [1], "datatype": "FP64", "data": [value]}
        for name, value in zip(split["columns"], split["data"][0], strict=True)
    ]
    status, answer, _ = post(
        f"{url}/v2/models/breast-cancer/infer", {"inputs": inputs, "parameters": {"content_type": "pd"}}
    )
    outputs = [{k: o[k] for k in ("name", "datatype", "data")} for o in answer.get("outputs", [])]
    print(f"POST {url}/v2/models/breast-cancer/infer  (Open Inference Protocol)  -> {status}")
    print(f"  model_version {answer.get('model_version')}  outputs {json.dumps(outputs)}")
    broken = {"columns": split["columns"][1:], "data": [split["data"][0][1:]]}
    status, answer, _ = post(f"{url}/invocations", {"dataframe_split": broken})
    print(f"A row without '{split['columns'][0]}'  -> {status}: {json.dumps(answer.get('details', answer))}")
    first = json.dumps({"dataframe_split": {"columns": split["columns"][:2], "data": [split["data"][0][:2]]}})
    print("\nSame from a shell (all 30 columns are needed; the first two shown):")
    print(f"  curl -s {url}/invocations -H 'Content-Type: application/json' -d '{first[:-3]}...]]}}}}'")
    print(f"Metrics: {url}/metrics   OpenAPI: {url}/docs")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-wait", action="store_true", help="stop the model server after the requests")
    args = parser.parse_args(argv)
    no_wait = args.no_wait or os.environ.get("CONVEYOR_DEMO_NO_WAIT") == "1"
    port = free_port(DEFAULT_PORT)
    url = f"http://127.0.0.1:{port}"
    home = Path(os.environ.get("CONVEYOR_HOME", ".conveyor"))
    home.mkdir(parents=True, exist_ok=True)
    log = home / "serving-demo.log"
    command = [sys.executable, "-m", "conveyor", "serve", URI, "--port", str(port), "--no-access-log"]
    print(f"$ conveyor serve {URI} --port {port}   (log: {log})")
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_ready(url, process, log)
        ask(url)
        if not no_wait:
            print("\nServing the champion until Ctrl-C.")
            process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
