"""Conveyor's model registry against an MLflow server, through the official client, in one run.

    .venv/bin/python benchmarks/registry/run.py            # full run: 1,000 versions
    .venv/bin/python benchmarks/registry/run.py --quick    # smoke run: 100 versions

Both servers start here (``benchmarks/tracking/servers.py``), each on SQLite in a fresh
temporary folder, and stop at the end, also on error. On each, one scikit-learn model is
logged (``mlflow.sklearn.log_model``) and then registered as many versions of one model
with the source MLflow 3's ``register_model`` sends (``models:/<logged model id>``).
Work alternates between the servers in chunks and rounds, so machine load weighs on both
alike; every figure is a median in milliseconds. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mlflow
import mlflow.sklearn
import numpy as np
from mlflow.store.artifact.models_artifact_repo import ModelsArtifactRepository
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tracking"))

import servers

MODEL = "bench-churn"
#: Not ``champion``: Conveyor protects that alias by default (moving it needs an approval).
ALIAS = "challenger"
#: Versions are tagged ``bucket = i % BUCKETS``; the filtered search asks for one bucket.
BUCKETS = 10


@dataclass(frozen=True)
class Sizes:
    versions: int
    chunk: int
    search_repeats: int
    resolve_repeats: int
    load_repeats: int


FULL = Sizes(versions=1000, chunk=100, search_repeats=21, resolve_repeats=101, load_repeats=15)
QUICK = Sizes(versions=100, chunk=25, search_repeats=5, resolve_repeats=21, load_repeats=3)


@dataclass
class Side:
    """One server under test, with the model logged on it."""

    name: str
    url: str
    client: mlflow.MlflowClient
    model_id: str = ""
    run_id: str = ""
    created: int = 0

    def use(self) -> None:
        """Point MLflow's global URIs here: ``load_model`` and ``models:/`` resolution read them."""
        mlflow.set_tracking_uri(self.url)
        mlflow.set_registry_uri(self.url)


@dataclass(frozen=True)
class Row:
    label: str
    mlflow_ms: float
    conveyor_ms: float

    @property
    def ratio(self) -> float:
        """How many times faster Conveyor is (MLflow's time over Conveyor's)."""
        return self.mlflow_ms / self.conveyor_ms


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def timed(fn: Callable[[], object]) -> float:
    """Milliseconds one call of ``fn`` takes."""
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def prepare(side: Side, features: np.ndarray, labels: np.ndarray) -> None:
    """Log the model and create the registered model, untimed."""
    side.use()
    mlflow.set_experiment("registry-bench")
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(
            LogisticRegression().fit(features, labels), name="model", pip_requirements=["scikit-learn"]
        )
    side.model_id, side.run_id = info.model_id, run.info.run_id
    side.client.create_registered_model(MODEL)


def create_chunk(side: Side, count: int) -> list[float]:
    """Register ``count`` more versions; one sample per ``create_model_version`` call."""
    return [create_one(side) for _ in range(count)]


def create_one(side: Side) -> float:
    tags = {"bucket": str(side.created % BUCKETS)}
    source = f"models:/{side.model_id}"
    sample = timed(
        lambda: side.client.create_model_version(
            MODEL, source, run_id=side.run_id, tags=tags, model_id=side.model_id
        )
    )
    side.created += 1
    return sample


def alternate(sides: list[Side], rounds: int, step: Callable[[Side], list[float]]) -> dict[str, list[float]]:
    """Run ``step`` on each side per round, swapping who goes first every round."""
    samples: dict[str, list[float]] = {side.name: [] for side in sides}
    for i in range(rounds):
        for side in sides if i % 2 == 0 else sides[::-1]:
            side.use()
            samples[side.name].extend(step(side))
    return samples


def check(condition: bool, message: str) -> None:
    """Refuse to report a figure for a wrong answer."""
    if not condition:
        raise SystemExit(f"wrong result: {message}")


def search_filtered(side: Side) -> list[float]:
    query = f"name = '{MODEL}' AND tags.bucket = '3'"
    found = side.client.search_model_versions(query)
    check(len(found) == side.created // BUCKETS, f"{side.name} found {len(found)} versions for {query!r}")
    return [timed(lambda: side.client.search_model_versions(query))]


def search_all(side: Side) -> list[float]:
    found = side.client.search_model_versions(f"name = '{MODEL}'")
    check(len(found) == side.created, f"{side.name} returned {len(found)} of {side.created} versions")
    return [timed(lambda: side.client.search_model_versions(f"name = '{MODEL}'"))]


def resolve_alias(side: Side) -> list[float]:
    """What ``load_model`` does first: ``models:/name@alias`` to the files' location."""
    uri = f"models:/{MODEL}@{ALIAS}"
    return [timed(lambda: ModelsArtifactRepository.get_underlying_uri(uri))]


def load_by_alias(side: Side, features: np.ndarray, expected: np.ndarray, scratch: Path) -> list[float]:
    """``mlflow.sklearn.load_model("models:/name@alias")``, into a fresh folder each time."""
    target = Path(tempfile.mkdtemp(dir=scratch))
    loaded: list[LogisticRegression] = []
    sample = timed(lambda: loaded.append(mlflow.sklearn.load_model(f"models:/{MODEL}@{ALIAS}", str(target))))
    check((loaded[0].predict(features) == expected).all(), f"{side.name} loaded a different model")
    return [sample]


def measure(sides: list[Side], sizes: Sizes, scratch: Path) -> list[Row]:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 4))
    labels = (features[:, 0] + features[:, 2] > 0).astype(int)
    for side in sides:
        prepare(side, features, labels)
    expected = LogisticRegression().fit(features, labels).predict(features)

    log(f"creating {sizes.versions:,} versions on each server ...")
    created = alternate(sides, sizes.versions // sizes.chunk, lambda s: create_chunk(s, sizes.chunk))
    for side in sides:
        side.client.set_registered_model_alias(MODEL, ALIAS, str(side.created // 2))

    log("searching, resolving, loading ...")
    rows = [("create a model version", created)]
    rows.append(
        ("search versions, filter on name and tag", alternate(sides, sizes.search_repeats, search_filtered))
    )
    rows.append(
        (
            f"search all {sizes.versions:,} versions of the model",
            alternate(sides, sizes.search_repeats, search_all),
        )
    )
    rows.append((f"resolve models:/{MODEL}@{ALIAS}", alternate(sides, sizes.resolve_repeats, resolve_alias)))
    load = alternate(sides, sizes.load_repeats, lambda s: load_by_alias(s, features, expected, scratch))
    rows.append(("load a scikit-learn model by alias", load))
    return [Row(label, statistics.median(s["MLflow"]), statistics.median(s["Conveyor"])) for label, s in rows]


def start_both(root: Path, stack: contextlib.ExitStack) -> list[Side]:
    started = []
    for name, start in (("MLflow", servers.start_mlflow), ("Conveyor", servers.start_conveyor)):
        server = start(servers.fresh_dir(root, name.lower()))
        stack.callback(servers.stop, server)
        log(f"{name}: {server.url} ({' '.join(server.command[:2])} ...)")
        started.append(Side(name, server.url, mlflow.MlflowClient(tracking_uri=server.url)))
    return started


def print_table(rows: list[Row], sizes: Sizes) -> None:
    print(
        f"\nModel registry through mlflow {mlflow.__version__}'s client, {sizes.versions:,} versions, "
        f"{os.cpu_count()} CPUs, median ms"
    )
    print("\n| Operation | MLflow (ms) | Conveyor (ms) | Conveyor vs MLflow | At least as fast |")
    print("|---|---:|---:|---:|---|")
    for row in rows:
        verdict = "yes" if row.ratio >= 1 else "NO"
        print(f"| {row.label} | {row.mlflow_ms:.1f} | {row.conveyor_ms:.1f} | {row.ratio:.2f}x | {verdict} |")
    every = all(row.ratio >= 1 for row in rows)
    print(f"\nEvery operation at least as fast as MLflow: {'yes' if every else 'NO'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 versions and fewer repeats")
    parser.add_argument("--keep", action="store_true", help="keep the servers' folders (logs, databases)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    # The client logs a line per created version ("Waiting up to 300 seconds ...").
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    os.environ.update({"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_ENABLE_ASYNC_LOGGING": "false"})
    root = Path(tempfile.mkdtemp(prefix="conveyor-registry-bench-"))
    try:
        with contextlib.ExitStack() as stack:
            sides = start_both(root, stack)
            rows = measure(sides, sizes, servers.fresh_dir(root, "client"))
    finally:
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print_table(rows, sizes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
