"""Batch scoring: ``conveyor predict`` against ``mlflow models predict`` on the same file and model.

The same fitted scikit-learn model is saved twice (``conveyor.models.save`` and
``mlflow.sklearn.save_model``), a synthetic table is written as CSV (the only table
format ``mlflow models predict`` reads) and as Parquet, and each command scores it in a
fresh process, end to end (start-up and model loading included). Peak memory is the
process's maximum resident set size.

    .venv/bin/python benchmarks/serving/batch_scoring.py [--rows 1000000] [--features 10]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

BIN = Path(sys.executable).parent

# Runs one command and prints its wall time and the peak RSS of its process tree (children only).
_MEASURE = (
    "import json, resource, subprocess, sys, time\n"
    "start = time.perf_counter()\n"
    "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "seconds = time.perf_counter() - start\n"
    "if done.returncode: sys.exit(done.stderr[-3000:])\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024\n"
    "print(json.dumps({'seconds': seconds, 'peak_bytes': peak}))\n"
)


def measure(command: list[str]) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, *command], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def prepare(folder: Path, rows: int, features: int) -> dict[str, Path]:
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    from conveyor import models

    rng = np.random.default_rng(0)
    names = [f"f{i}" for i in range(features)]
    train = pd.DataFrame(rng.normal(size=(5_000, features)), columns=names)
    estimator = LogisticRegression().fit(train, (train.sum(axis=1) > 0).astype(int))
    models.save(estimator, folder / "conveyor-model", input_example=train.head())
    mlflow.sklearn.save_model(estimator, folder / "mlflow-model", input_example=train.head())
    data = pd.DataFrame(rng.normal(size=(rows, features)), columns=names)
    data.to_csv(folder / "data.csv", index=False)
    pq.write_table(
        pa.Table.from_pandas(data, preserve_index=False), folder / "data.parquet", row_group_size=100_000
    )
    return {"csv": folder / "data.csv", "parquet": folder / "data.parquet"}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=10)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="conveyor-batch-bench-"))
    try:
        started = time.perf_counter()
        inputs = prepare(folder, args.rows, args.features)
        prepared = time.perf_counter() - started
        print(f"{args.rows:,} rows x {args.features} features, prepared in {prepared:.1f} s")
        conveyor = [
            str(BIN / "conveyor"),
            "predict",
            str(folder / "conveyor-model"),
            "-o",
            str(folder / "c.parquet"),
        ]
        runs = {
            "mlflow models predict (CSV)": measure(
                [
                    str(BIN / "mlflow"),
                    "models",
                    "predict",
                    "-m",
                    str(folder / "mlflow-model"),
                    "-i",
                    str(inputs["csv"]),
                    "-t",
                    "csv",
                    "-o",
                    str(folder / "m.json"),
                    "--env-manager",
                    "local",
                ]
            ),
            "conveyor predict (CSV)": measure([*conveyor, "-i", str(inputs["csv"])]),
            "conveyor predict (Parquet)": measure([*conveyor, "-i", str(inputs["parquet"])]),
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    baseline = runs["mlflow models predict (CSV)"]["seconds"]
    print(f"{'command':32} {'seconds':>8} {'rows/s':>12} {'peak RSS MiB':>13} {'speed-up':>9}")
    for name, run in runs.items():
        rate = args.rows / run["seconds"]
        mib = run["peak_bytes"] / 2**20
        print(f"{name:32} {run['seconds']:8.2f} {rate:12,.0f} {mib:13.0f} {baseline / run['seconds']:8.2f}x")
    print(f"(resource limits: {resource.getrlimit(resource.RLIMIT_AS)}, Python {sys.version.split()[0]})")


if __name__ == "__main__":
    main()
