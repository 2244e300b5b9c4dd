"""Conveyor's drift report against Evidently's DataDriftPreset: same data, same run.

    .venv/bin/python benchmarks/monitoring/run.py                        # 1M vs 1M rows x 100 columns
    .venv/bin/python benchmarks/monitoring/run.py --quick                # smoke run: 20k rows x 20 columns
    .venv/bin/python benchmarks/monitoring/run.py --rows 200000 --numerical 800 --categorical 200
    .venv/bin/python benchmarks/monitoring/run.py --only conveyor        # without Evidently

The data (numerical and categorical columns, with drift planted in some of them) is written
once to Parquet under ``benchmarks/.work/monitoring/`` and each tool then runs in a fresh
process of its own, timed from after its imports to its answer, reading the files
included: Conveyor streams them one row group (100,000 rows) at a time (profile of the
reference, then the window),
Evidently reads both into pandas and runs ``Report([DataDriftPreset()])``. Peak memory is
the process's peak resident set size (``ru_maxrss``), imports included; the resident size
right after the imports is printed beside it. Evidently runs
from ``.bench-venv-monitoring`` (``requirements.txt``) so that its pins never touch
Conveyor's environment:

    python3 -m venv .bench-venv-monitoring
    .bench-venv-monitoring/bin/pip install -r benchmarks/monitoring/requirements.txt

Both tools use their defaults (reference > 1,000 rows: normalized Wasserstein for numbers,
Jensen-Shannon for categories, both at 0.1), and the run checks that each flags exactly
the planted columns.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
WORK = REPO / "benchmarks" / ".work" / "monitoring"
EVIDENTLY_PYTHON = REPO / ".bench-venv-monitoring" / "bin" / "python"
CATEGORIES = [f"category_{i}" for i in range(10)]
WEIGHTS = [0.3, 0.2, 0.15, 0.1, 0.08, 0.06, 0.05, 0.03, 0.02, 0.01]
#: Rows per generated chunk, and so per Parquet row group: the chunk Conveyor reads.
GENERATE_CHUNK = 100_000


def planted(numerical: int, categorical: int, drifted: int) -> list[str]:
    """The columns with planted drift: a share of numerical and of categorical ones."""
    n_cat = min(categorical, round(drifted * categorical / max(numerical + categorical, 1)))
    n_num = min(numerical, drifted - n_cat)
    return [f"num_{i}" for i in range(n_num)] + [f"cat_{i}" for i in range(n_cat)]


def generate(path: Path, rows: int, numerical: int, categorical: int, drift: list[str], seed: int) -> None:
    """Write ``rows`` rows to Parquet chunk by chunk (memory stays at one chunk)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    for start in range(0, rows, GENERATE_CHUNK):
        n = min(GENERATE_CHUNK, rows - start)
        rng = np.random.default_rng([seed, start])
        columns = {}
        for i in range(numerical):
            shift = 0.5 if f"num_{i}" in drift else 0.0
            kind = i % 3
            if kind == 0:
                columns[f"num_{i}"] = rng.normal(shift, 1.0, n)
            elif kind == 1:
                columns[f"num_{i}"] = rng.lognormal(0.0, 0.5, n) + shift * 0.53
            else:
                columns[f"num_{i}"] = rng.uniform(0.0, 1.0, n) + shift * 0.29
        for i in range(categorical):
            weights = WEIGHTS[::-1] if f"cat_{i}" in drift else WEIGHTS
            columns[f"cat_{i}"] = pa.array(np.array(CATEGORIES)[rng.choice(10, n, p=weights)])
        table = pa.table(columns)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    if writer is not None:
        writer.close()


def prepare(args: argparse.Namespace) -> tuple[Path, Path, list[str]]:
    shape = f"{args.rows}x{args.numerical}n{args.categorical}c_{args.drifted}d"
    folder = WORK / shape
    folder.mkdir(parents=True, exist_ok=True)
    drift = planted(args.numerical, args.categorical, args.drifted)
    reference, current = folder / "reference.parquet", folder / "current.parquet"
    if not reference.exists():
        generate(reference, args.reference_rows or args.rows, args.numerical, args.categorical, [], seed=1)
    if not current.exists():
        generate(current, args.rows, args.numerical, args.categorical, drift, seed=2)
    return reference, current, drift


def row_groups(path: str) -> Iterator[pa.Table]:
    """A Parquet file one row group at a time.

    Why not ``ParquetFile.iter_batches``: with its default ``pre_buffer=True`` pyarrow
    keeps buffering ahead, and resident memory grows with the file (1.5 GB for the 1M x 100
    reference here against about 0.5 GB read this way).
    """
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    for index in range(parquet.metadata.num_row_groups):
        yield parquet.read_row_group(index)


def worker_conveyor(reference: str, current: str) -> dict:
    from conveyor.monitoring import WindowAccumulator, build_profile

    start = time.perf_counter()
    profile = build_profile(row_groups(reference))
    profiled = time.perf_counter()
    accumulator = WindowAccumulator(profile)
    for table in row_groups(current):
        accumulator.update(table)
    report = accumulator.finish()
    end = time.perf_counter()
    return {
        "seconds": end - start,
        "profile_seconds": profiled - start,
        "window_seconds": end - profiled,
        "drifted": sorted(report.drift.drifted_columns()),
    }


def worker_evidently(reference: str, current: str) -> dict:
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    start = time.perf_counter()
    ref, cur = pd.read_parquet(reference), pd.read_parquet(current)
    definition = DataDefinition(
        numerical_columns=[c for c in ref.columns if c.startswith("num_")],
        categorical_columns=[c for c in ref.columns if c.startswith("cat_")],
    )
    current_data = Dataset.from_pandas(cur, data_definition=definition)
    reference_data = Dataset.from_pandas(ref, data_definition=definition)
    snapshot = Report([DataDriftPreset()]).run(current_data, reference_data)
    drifted = []
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config.get("type") != "evidently:metric_v2:ValueDrift":
            continue
        p_value = "p_value" in config["method"]
        value, threshold = metric["value"], config["threshold"]
        if (value <= threshold) if p_value else (value >= threshold):
            drifted.append(config["column"])
    return {"seconds": time.perf_counter() - start, "drifted": sorted(drifted)}


def worker(args: argparse.Namespace) -> None:
    """Runs in the child process: one tool, then one JSON line on stdout."""
    if args.worker == "conveyor":
        import conveyor.monitoring  # noqa: F401  (imports are not part of the timing)

        imported = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        result = worker_conveyor(args.reference, args.current)
    else:
        import evidently.presets  # noqa: F401

        imported = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        result = worker_evidently(args.reference, args.current)
    result["imports_rss_mb"] = imported
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def run_tool(tool: str, reference: Path, current: Path, timeout: float) -> dict:
    python = sys.executable if tool == "conveyor" else str(EVIDENTLY_PYTHON)
    if tool == "evidently" and not EVIDENTLY_PYTHON.exists():
        return {"error": f"{EVIDENTLY_PYTHON} is missing: install {HERE / 'requirements.txt'} into it"}
    command = [python, __file__, "--worker", tool, "--reference", str(reference), "--current", str(current)]
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=REPO, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit {done.returncode}"}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_seconds"] = time.perf_counter() - started
    return result


def report(results: dict[str, dict], drift: list[str], args: argparse.Namespace) -> None:
    columns = args.numerical + args.categorical
    shape = f"{args.reference_rows or args.rows:,} vs {args.rows:,} rows x {columns} columns"
    print(f"\nDrift report, {shape} ({args.numerical} numerical, {args.categorical} categorical)")
    print(f"planted drift in {len(drift)} columns: {', '.join(drift)}\n")
    header = f"{'tool':<10} {'wall s':>9} {'process s':>10} {'peak RSS MB':>12} {'after imports':>14}"
    print(f"{header}  flags planted")
    for tool, result in results.items():
        if "error" in result:
            print(f"{tool:<10} failed: {result['error']}")
            continue
        found = result["drifted"]
        verdict = "yes" if found == sorted(drift) else f"no: {found}"
        print(
            f"{tool:<10} {result['seconds']:>9.2f} {result['process_seconds']:>10.2f} "
            f"{result['peak_rss_mb']:>12.0f} {result['imports_rss_mb']:>14.0f}  {verdict}"
        )
    ok = [r for r in results.values() if "error" not in r]
    if len(ok) == 2:
        conveyor, evidently = results["conveyor"], results["evidently"]
        print(
            f"\nEvidently / Conveyor: {evidently['seconds'] / conveyor['seconds']:.1f}x the time, "
            f"{evidently['peak_rss_mb'] / conveyor['peak_rss_mb']:.1f}x the peak memory"
        )
    if args.json:
        figures = {"shape": shape, "planted": drift, "results": results}
        Path(args.json).write_text(json.dumps(figures, indent=2))


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the current window")
    parser.add_argument("--reference-rows", type=int, default=0, help="reference rows (default --rows)")
    parser.add_argument("--numerical", type=int, default=80)
    parser.add_argument("--categorical", type=int, default=20)
    parser.add_argument("--drifted", type=int, default=10, help="columns with planted drift")
    parser.add_argument("--only", choices=("conveyor", "evidently"))
    parser.add_argument("--quick", action="store_true", help="smoke run: 20,000 rows x 20 columns")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per tool")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--worker", choices=("conveyor", "evidently"), help=argparse.SUPPRESS)
    parser.add_argument("--reference", help=argparse.SUPPRESS)
    parser.add_argument("--current", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.quick:
        args.rows, args.numerical, args.categorical, args.drifted = 20_000, 16, 4, 4
    reference, current, drift = prepare(args)
    tools = [args.only] if args.only else ["conveyor", "evidently"]
    results = {tool: run_tool(tool, reference, current, args.timeout) for tool in tools}
    report(results, drift, args)


if __name__ == "__main__":
    main()
