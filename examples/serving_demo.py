"""``make demo``, last step: serve the champion the registry demo promoted, ask it, monitor it.

1. stores the champion's reference profile (the breast-cancer data, with the model's
   predictions and the labels) and an alert rule: more than 30 % of features drifted;
2. starts ``conveyor serve`` on a deployment file that serves
   ``models:/breast-cancer@champion`` with the prediction log on, on the demo's store
   (``./.conveyor``), port 8080 when free, and waits until ``/v2/health/ready``;
3. sends one row of the breast-cancer data both ways: MLflow's ``/invocations``
   (``dataframe_split``) and the Open Inference Protocol (one tensor per column), prints
   the answers, the request id, and the ``curl`` command to do the same; then a request
   with a missing column, to show the field-level 400;
4. sends a batch of shifted traffic (every feature 40 % larger), runs the monitor over the
   last hour of the prediction log, and shows the drift it found and the alert it opened;
5. keeps serving until Ctrl-C, or stops at once with ``--no-wait`` (or
   ``CONVEYOR_DEMO_NO_WAIT=1``), as ``tests/test_registry_demo.py`` does.
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

MODEL = "breast-cancer"
URI = f"models:/{MODEL}@champion"
DEFAULT_PORT = 8080
DEPLOYMENT = f"""\
models:
  - {{name: {MODEL}, uri: "{URI}"}}
prediction_log: {{enabled: true, flush_interval_s: 0.5}}
"""
#: Shifted traffic: every feature scaled by this, as a new data source might.
SHIFT = 1.4


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


def dataset() -> Any:
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(as_frame=True).frame


def sample_row() -> dict[str, Any]:
    row = dataset().drop(columns="target").iloc[:1]
    return {"columns": list(row.columns), "data": row.to_numpy().tolist()}


def prepare_monitoring() -> None:
    """The champion's reference profile, and a drift alert rule (once)."""
    from conveyor.config import Settings
    from conveyor.monitoring import alerts
    from conveyor.monitoring.context import MonitorContext
    from conveyor.monitoring.profiles import profile_version

    ctx = MonitorContext.from_settings(Settings())
    try:
        profile_version(ctx, URI, dataset(), predictions_from_model=True, labels_column="target")
        if not any(r.metric == "share_drifted" for r in alerts.list_rules(ctx.store, MODEL)):
            alerts.add_rule(ctx.store, MODEL, "share_drifted", ">", 0.3, severity="warning")
    finally:
        ctx.close()
    print(f"Reference profile stored for {URI}; alert rule: share_drifted > 0.3")


def send_shifted_traffic(url: str) -> int:
    frame = dataset().drop(columns="target").sample(300, random_state=1) * SHIFT
    for start in range(0, len(frame), 100):
        part = frame.iloc[start : start + 100]
        split = {"columns": list(part.columns), "data": part.to_numpy().tolist()}
        status, answer, _ = post(f"{url}/invocations", {"dataframe_split": split})
        if status != 200:
            raise RuntimeError(f"shifted traffic refused: {status} {answer}")
    return len(frame)


def monitor() -> None:
    """Run the monitor over the last hour of the prediction log, as ``conveyor monitor run`` does."""
    from datetime import UTC, datetime, timedelta

    from conveyor.config import Settings
    from conveyor.monitoring.context import MonitorContext
    from conveyor.monitoring.jobs import run_monitor

    ctx = MonitorContext.from_settings(Settings())
    try:
        result = run_monitor(ctx, URI, window="1h", end=datetime.now(UTC) + timedelta(minutes=1))
    finally:
        ctx.close()
    drift = result.report.drift
    drifted = [c.column.removeprefix("input.") for c in drift.features if c.drifted]
    print(f"\nMonitor over the last hour of the prediction log ({URI}):")
    print(f"  {result.report.rows} predictions; {drift.n_drifted} of {drift.n_tested} features drifted")
    print(f"  e.g. {', '.join(drifted[:4])}; dataset drift: {drift.dataset_drift}")
    for alert in result.alerts:
        print(f"  ALERT {alert.state} [{alert.severity}] {alert.metric} = {alert.last_value:.2f} on {MODEL}")
    report = Path(Settings().resolved_artifact_root()) / (result.run.report_path or "")
    print(f"  report: {report}")
    print(
        f"  (again with `conveyor monitor run {URI} --window 1h`; results: `conveyor monitor show {MODEL}`)"
    )


def ask(url: str) -> None:
    """One row both ways, then a row with a column missing."""
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
    sample = Path(os.environ.get("CONVEYOR_HOME", ".conveyor")) / "sample-request.json"
    sample.write_text(json.dumps({"dataframe_split": split}))
    print("\nSame from a shell:")
    print(f"  curl -s {url}/invocations -H 'Content-Type: application/json' -d @{sample}")
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
    config = home / "serving-demo.yaml"
    config.write_text(DEPLOYMENT)
    prepare_monitoring()
    command = [sys.executable, "-m", "conveyor", "serve", "--config", str(config), "--port", str(port)]
    print(f"$ conveyor serve --config {config} --port {port}   (serves {URI}; log: {log})")
    with log.open("wb") as sink:
        process = subprocess.Popen([*command, "--no-access-log"], stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_ready(url, process, log)
        ask(url)
        rows = send_shifted_traffic(url)
        print(f"\nSent {rows} rows of shifted traffic (every feature x{SHIFT}).")
        time.sleep(1.5)  # the prediction log flushes every 0.5 s
        monitor()
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
