"""``make demo``: a Conveyor server, a few scikit-learn models tracked on it, a leaderboard.

What it does, in order:

1. starts ``conveyor server`` in a subprocess, keeping its data in ``./.conveyor``
   (port 5000 when free, otherwise any free port), and waits for ``/health``;
2. trains logistic regressions with several ``C`` values and a random forest on
   scikit-learn's bundled breast-cancer data (no download), logging to the server through
   ``conveyor`` (``CONVEYOR_TRACKING_URI``): params, a metric curve per epoch or per
   batch of trees, the train and test sets as dataset inputs, a confusion matrix (CSV)
   and the pickled model as artifacts;
3. prints a leaderboard and how to reach the same runs with the CLI, the Python API and
   the official MLflow client;
4. keeps the server running until Ctrl-C, or stops it at once with ``--no-wait`` (or
   ``CONVEYOR_DEMO_NO_WAIT=1``), as ``tests/test_demo.py`` does.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

EXPERIMENT = "breast-cancer"
DEFAULT_PORT = 5000
HOME = Path(".conveyor")
#: Training passes for the logistic regressions; each one adds a point to their curves.
EPOCHS = 8
#: Settings that would send the demo's data somewhere other than ./.conveyor.
_FOREIGN_SETTINGS = ("CONVEYOR_DATABASE_URL", "CONVEYOR_ARTIFACT_ROOT", "CONVEYOR_TRACKING_URI")


# -- the server ---------------------------------------------------------------------------


def pick_port(preferred: int) -> int:
    """``preferred`` if nothing listens there (0: no preference), else a free port."""
    for candidate in (preferred, 0) if preferred else (0,):
        with socket.socket() as sock:
            # As uvicorn does: a port left in TIME_WAIT by the last demo counts as free.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeError("no free TCP port on 127.0.0.1")


def start_server(port: int, log_path: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_SETTINGS}
    env["CONVEYOR_HOME"] = str(HOME)
    command = [sys.executable, "-m", "conveyor.cli", "server", "--host", "127.0.0.1", "--port", str(port)]
    with open(log_path, "ab") as log:
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_for_health(url: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"the server exited with code {process.returncode}; its log ({log_path}) ends with:\n"
                + _tail(log_path)
            )
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(f"{url}/health", timeout=1) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"the server at {url} did not answer within {timeout:.0f} s; see {log_path}")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Ctrl-C first (uvicorn then shuts down cleanly), a kill if it does not stop."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# -- training -----------------------------------------------------------------------------


def train_models(workdir: Path) -> None:
    """Train and log the models; every run lands in the EXPERIMENT on the server."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, log_loss
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import conveyor as cv

    data = load_breast_cancer(as_frame=True)
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.25, random_state=0, stratify=data.target
    )
    source = "sklearn.datasets.load_breast_cancer"
    train_frame = x_train.assign(target=y_train)
    test_frame = x_test.assign(target=y_test)
    cv.set_experiment(EXPERIMENT)

    def log_datasets() -> None:
        # Fingerprinted by SHA-256 over every row, so "same data?" has an exact answer.
        cv.log_input(train_frame, name="breast_cancer_train", source=source, context="training")
        cv.log_input(test_frame, name="breast_cancer_test", source=source, context="evaluation")

    scaler = StandardScaler().fit(x_train)
    xs_train, xs_test = scaler.transform(x_train), scaler.transform(x_test)
    for c in (0.01, 0.1, 1.0, 10.0):
        model = LogisticRegression(C=c, max_iter=5, warm_start=True)
        with cv.start_run(run_name=f"logreg-C={c}"):
            cv.log_params({"model": "LogisticRegression", "C": c, "epochs": EPOCHS, "scaling": "standard"})
            log_datasets()
            for epoch in range(EPOCHS):
                # A few solver iterations per epoch, continuing from the last (warm start),
                # so the curves show the optimisation converging.
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    model.fit(xs_train, y_train)
                cv.log_metrics(
                    {
                        "train_log_loss": log_loss(y_train, model.predict_proba(xs_train)),
                        "val_accuracy": accuracy_score(y_test, model.predict(xs_test)),
                    },
                    step=epoch,
                )
            _finish(make_pipeline(scaler, model), x_test, y_test, workdir)

    forest = RandomForestClassifier(n_estimators=10, warm_start=True, random_state=0, n_jobs=1)
    with cv.start_run(run_name="random-forest"):
        cv.log_params({"model": "RandomForestClassifier", "n_estimators": 100, "max_depth": "None"})
        log_datasets()
        for trees in range(10, 101, 10):
            forest.set_params(n_estimators=trees)
            forest.fit(x_train, y_train)  # warm start: adds 10 trees to the forest
            cv.log_metric("val_accuracy", accuracy_score(y_test, forest.predict(x_test)), step=trees)
        _finish(forest, x_test, y_test, workdir)


def _finish(model: object, x_test: object, y_test: object, workdir: Path) -> None:
    """Final metrics plus two artifacts: the confusion matrix and the pickled model."""
    import pandas as pd
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, roc_auc_score

    import conveyor as cv

    predicted = model.predict(x_test)  # type: ignore[attr-defined]
    scores = model.predict_proba(x_test)[:, 1]  # type: ignore[attr-defined]
    cv.log_metrics(
        {
            "accuracy": accuracy_score(y_test, predicted),
            "f1": f1_score(y_test, predicted),
            "roc_auc": roc_auc_score(y_test, scores),
        }
    )
    labels = ["malignant", "benign"]
    matrix = pd.DataFrame(
        confusion_matrix(y_test, predicted),
        index=[f"true_{label}" for label in labels],
        columns=[f"predicted_{label}" for label in labels],
    )
    csv_path = workdir / "confusion_matrix.csv"
    matrix.to_csv(csv_path)
    cv.log_artifact(csv_path, "evaluation")
    model_path = workdir / "model.pkl"
    model_path.write_bytes(pickle.dumps(model))
    cv.log_artifact(model_path, "model")  # stored with its SHA-256, verified on every download


def print_leaderboard() -> None:
    import pandas as pd

    import conveyor as cv

    runs = cv.search_runs(order_by=["metrics.accuracy DESC"], max_results=10)
    columns = ["run_name", "params.model", "params.C", "metrics.accuracy", "metrics.f1", "metrics.roc_auc"]
    board = runs.reindex(columns=columns).rename(columns=lambda name: name.split(".")[-1])
    with pd.option_context("display.float_format", "{:.4f}".format):
        print(f"\nLeaderboard, experiment {EXPERIMENT!r} (best accuracy first)\n")
        print(board.fillna("").to_string(index=False))


def _command(name: str) -> str:
    """How to call a program of this interpreter's environment, even when it is not activated."""
    beside = Path(sys.executable).parent / name
    if not beside.exists() or shutil.which(name) == str(beside):
        return name
    return os.path.relpath(beside) if beside.is_relative_to(Path.cwd()) else str(beside)


def print_next_steps(url: str) -> None:
    search = f"search_runs(experiment_names=['{EXPERIMENT}'])"
    conveyor, python = _command("conveyor"), _command("python")
    print(
        f"""
Conveyor server: {url}   (data in {HOME.resolve()})

  CLI:     CONVEYOR_TRACKING_URI={url} {conveyor} runs list --order-by 'metrics.accuracy DESC'
  Python:  CONVEYOR_TRACKING_URI={url} {python} -c "import conveyor as cv; print(cv.{search})"
  MLflow:  MLFLOW_TRACKING_URI={url} {python} -c "import mlflow; print(mlflow.{search})"
           (any MLflow client works: point MLFLOW_TRACKING_URI at the server and log as usual)
"""
    )


# -- main ---------------------------------------------------------------------------------


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="Preferred port (default 5000; 0: any free port)."
    )
    parser.add_argument(
        "--no-wait",
        action="store_true",
        default=os.environ.get("CONVEYOR_DEMO_NO_WAIT", "") not in ("", "0", "false"),
        help="Stop the server and exit once the leaderboard is printed (env CONVEYOR_DEMO_NO_WAIT=1).",
    )
    args = parser.parse_args(argv)
    # `kill` (SIGTERM) stops the demo like Ctrl-C does, so the server never outlives it.
    signal.signal(signal.SIGTERM, _interrupt)

    HOME.mkdir(parents=True, exist_ok=True)
    port = pick_port(args.port)
    url = f"http://127.0.0.1:{port}"
    log_path = HOME / "demo-server.log"
    print(f"Starting conveyor server on {url} (log: {log_path}) ...", flush=True)
    server = start_server(port, log_path)
    try:
        wait_for_health(url, server, log_path)
        # The fluent API reads its tracking URI from the environment on first use.
        os.environ["CONVEYOR_TRACKING_URI"] = url
        with tempfile.TemporaryDirectory() as workdir:
            train_models(Path(workdir))
        print_leaderboard()
        print_next_steps(url)
        if not args.no_wait:
            print("The server keeps running; press Ctrl-C to stop it.", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                while server.poll() is None:
                    time.sleep(0.5)
    finally:
        stop_process(server)
    print("Server stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
