"""Conveyor's drift report against Evidently's DataDriftPreset: same files, fresh processes.

    .venv/bin/python benchmarks/monitoring/run.py                   # every size + false alarms
    .venv/bin/python benchmarks/monitoring/run.py --sizes 100k,wide # some sizes
    .venv/bin/python benchmarks/monitoring/run.py --quick           # smoke run: 20k rows x 20 columns
    .venv/bin/python benchmarks/monitoring/run.py --only conveyor   # without Evidently
    .venv/bin/python benchmarks/monitoring/run.py --json out.json   # figures as JSON too

Sizes (issue 6), reference and current window of the same size, drift planted in a tenth
of the columns:

==========  ================  ====================================  ==================
name        rows (each side)  columns                               rows per row group
==========  ================  ====================================  ==================
100k        100,000           50 (40 numerical, 10 categorical)     100,000
1m          1,000,000         50 (40 numerical, 10 categorical)     100,000
wide        200,000           1,000 (800 numerical, 200 cat.)       10,000
wide-slice  200,000           every 10th column of wide's files     10,000
==========  ================  ====================================  ==================

Method:

- **Data**, generated once (cached under ``benchmarks/.work/monitoring/``) to two Parquet
  files, reference and current, in row groups of about 5 million values (at most 100,000
  and at least 10,000 rows). Mixed types: numerical columns cycle through normal,
  log-normal, uniform (floats) and Poisson (int64) shapes, every fifth with 1 % nulls;
  categorical columns are strings with 10 categories of skewed frequencies. Planted
  drift: a shift of half a standard deviation (numerical) or the category frequencies
  reversed (categorical).
- **Each tool runs in its own fresh process** that reads the same files and computes the
  drift of every column with its defaults (reference > 1,000 rows: normalized Wasserstein
  for numbers, Jensen-Shannon for categories, both drifting at 0.1). Conveyor:
  ``build_profile`` over the reference, then a ``WindowAccumulator`` over the current
  file, both streamed one row group at a time (``ParquetFile(pre_buffer=False)``,
  ``read_row_group``). Evidently 0.7.23 (from ``.bench-venv-monitoring``, see
  ``requirements.txt``): its documented path, ``pandas.read_parquet`` of both files,
  ``Dataset.from_pandas`` with a ``DataDefinition``, ``Report([DataDriftPreset()]).run``.
- **Wall time** is read + compute (from after the imports to the list of drifted
  columns); the import time is reported on its own. **Peak memory** is the process's peak
  resident set (``VmHWM`` of ``/proc/self/status``, imports included), read by the process
  itself at its end. Not ``ru_maxrss``: on Linux a child started by ``subprocess``
  inherits the high-water mark of the parent that spawned it, so it would count this
  driver's memory.
- **A memory cap** (half of the memory available at the start, at most 12 GB;
  ``--memory-cap-gb``) stops a tool whose resident set passes it, so that a tool needing
  more than the machine has does not push other work out first: Evidently on ``wide``
  reached 23 GB of a 24 GB machine, after 11 minutes, before the kernel killed it. A
  stopped run reports its time and peak so far, as lower bounds (``>``, ratios ``≥``).
  ``wide-slice`` runs both tools on 100 of the wide files' columns, so Evidently's time
  there times 10 estimates its time on all of them.
- **Same answer**: the drifted columns of each tool are compared with each other and with
  the planted ones; both lists are printed when they differ.
- **False alarms** (Conveyor): 20 splits of same-distribution data (for each, a reference
  and a window drawn with fresh seeds from the generator without drift, 50 columns), with
  the default thresholds and with thresholds from ``calibrate`` on 30 further
  same-distribution chunks of the window's size. Reported: the share of column tests that
  fired, and the share of windows whose dataset-level drift fired, for a large reference
  (100,000 rows: distances) with windows of 1,000 and of 200 rows, and for a small one
  (1,000 rows: Kolmogorov-Smirnov and chi-square with Benjamini-Hochberg).

Evidently's virtual environment keeps its pins away from Conveyor's:

    python3 -m venv .bench-venv-monitoring
    .bench-venv-monitoring/bin/pip install -r benchmarks/monitoring/requirements.txt
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
WORK = REPO / "benchmarks" / ".work" / "monitoring"
EVIDENTLY_PYTHON = REPO / ".bench-venv-monitoring" / "bin" / "python"
CATEGORIES = [f"category_{i}" for i in range(10)]
WEIGHTS = [0.3, 0.2, 0.15, 0.1, 0.08, 0.06, 0.05, 0.03, 0.02, 0.01]
#: Values (cells) per Parquet row group: about 40 MB of float64.
ROW_GROUP_CELLS = 5_000_000
#: Planted shift, in standard deviations of the column.
SHIFT = 0.5
LOGNORMAL_STD = 0.6039  # of lognormal(0, 0.5)
UNIFORM_STD = 0.2887  # of uniform(0, 1)
POISSON_MEAN = 20.0


@dataclass(frozen=True)
class Size:
    """One benchmark size. ``every``/``files``: every n-th column of another size's files."""

    name: str
    rows: int
    numerical: int
    categorical: int
    drifted: int
    every: int = 1
    files: str | None = None

    @property
    def columns(self) -> int:
        return self.numerical + self.categorical

    @property
    def row_group(self) -> int:
        return max(10_000, min(100_000, ROW_GROUP_CELLS // self.columns // 10_000 * 10_000))

    def label(self) -> str:
        every = f" (every {self.every}th column of {self.files})" if self.every > 1 else ""
        return f"{self.rows:,} vs {self.rows:,} rows x {self.columns:,} columns{every}"


SIZES = {
    "100k": Size("100k", 100_000, 40, 10, 10),
    "1m": Size("1m", 1_000_000, 40, 10, 10),
    "wide": Size("wide", 200_000, 800, 200, 100),
    # The same files as "wide", 100 of its columns: Evidently's time there, times 10,
    # estimates its time on all 1,000 where it does not finish.
    "wide-slice": Size("wide-slice", 200_000, 80, 20, 10, every=10, files="wide"),
}
QUICK = Size("quick", 20_000, 16, 4, 4)


# --- data ------------------------------------------------------------------------------


def planted(size: Size) -> list[str]:
    """The columns with planted drift: a share of numerical and of categorical ones."""
    n_cat = min(size.categorical, round(size.drifted * size.categorical / max(size.columns, 1)))
    n_num = min(size.numerical, size.drifted - n_cat)
    return [f"num_{i}" for i in range(n_num)] + [f"cat_{i}" for i in range(n_cat)]


def make_table(rows: int, numerical: int, categorical: int, drift: set[str], seed: Any) -> pa.Table:
    """``rows`` rows of the mixed-type generator (``drift``: the columns to shift)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = np.random.default_rng(seed)
    categories = pa.array(CATEGORIES)
    columns: dict[str, pa.Array] = {}
    for i in range(numerical):
        name = f"num_{i}"
        shift = SHIFT if name in drift else 0.0
        shape = i % 4
        values: np.ndarray
        if shape == 0:
            values = rng.normal(shift, 1.0, rows)
        elif shape == 1:
            values = rng.lognormal(0.0, 0.5, rows) + shift * LOGNORMAL_STD
        elif shape == 2:
            values = rng.uniform(0.0, 1.0, rows) + shift * UNIFORM_STD
        else:
            values = rng.poisson(POISSON_MEAN + shift * POISSON_MEAN**0.5, rows)
        mask = rng.random(rows) < 0.01 if i % 5 == 4 else None
        columns[name] = pa.array(values, mask=mask)
    for i in range(categorical):
        name = f"cat_{i}"
        weights = WEIGHTS[::-1] if name in drift else WEIGHTS
        columns[name] = pc.take(categories, pa.array(rng.choice(len(CATEGORIES), rows, p=weights)))
    return pa.table(columns)


def generate(path: Path, size: Size, drift: list[str], seed: int) -> None:
    """Write one side to Parquet, one row group per generated chunk (memory: one chunk)."""
    import pyarrow.parquet as pq

    partial = path.with_suffix(".partial")
    writer = None
    for start in range(0, size.rows, size.row_group):
        n = min(size.row_group, size.rows - start)
        table = make_table(n, size.numerical, size.categorical, set(drift), [seed, start])
        writer = writer or pq.ParquetWriter(partial, table.schema)
        writer.write_table(table, row_group_size=n)
    if writer is not None:
        writer.close()
    partial.rename(path)


def selected(names: list[str], every: int) -> list[str]:
    """Every ``every``-th numerical and categorical column (by number)."""
    return [name for name in names if int(name.rsplit("_", 1)[1]) % every == 0]


def prepare(size: Size) -> tuple[Path, Path, list[str]]:
    if size.files is not None:
        whole = SIZES[size.files]
        reference, current, drift = prepare(whole)
        return reference, current, selected(drift, size.every)
    folder = WORK / f"{size.rows}x{size.numerical}n{size.categorical}c_{size.drifted}d_rg{size.row_group}_v2"
    folder.mkdir(parents=True, exist_ok=True)
    drift = planted(size)
    reference, current = folder / "reference.parquet", folder / "current.parquet"
    if not reference.exists():
        generate(reference, size, [], seed=1)
    if not current.exists():
        generate(current, size, drift, seed=2)
    return reference, current, drift


# --- the workers (each in a fresh process) -----------------------------------------------


def peak_rss_mb() -> float:
    """This process's peak resident set size (VmHWM), in MB (10^6 bytes)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    # Elsewhere ru_maxrss (on Linux it would include the spawning parent's high-water mark).
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 1e6


def imported(started: float) -> tuple[float, float]:
    """Tell the driver the imports are done (so a run it stops still has a time); when, and RSS."""
    now = time.perf_counter()
    print(json.dumps({"stage": "imported", "import_seconds": now - started}), flush=True)
    return now, peak_rss_mb()


def row_groups(path: str, every: int) -> Iterator[pa.Table]:
    """A Parquet file one row group at a time, without pyarrow's read-ahead.

    Why ``pre_buffer=False``: with the default, pyarrow buffers ahead and resident memory
    grows with the file (1.5 GB on 1 GB of Parquet against a flat 0.5 GB).
    """
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path, pre_buffer=False)
    columns = selected(parquet.schema_arrow.names, every) if every > 1 else None
    for index in range(parquet.metadata.num_row_groups):
        yield parquet.read_row_group(index, columns=columns)


def worker_conveyor(reference: str, current: str, every: int) -> dict:
    started = time.perf_counter()
    import pyarrow.parquet  # noqa: F401

    from conveyor.monitoring import WindowAccumulator, build_profile

    ready, imports_mb = imported(started)
    profile = build_profile(row_groups(reference, every))
    profiled = time.perf_counter()
    accumulator = WindowAccumulator(profile)
    for table in row_groups(current, every):
        accumulator.update(table)
    report = accumulator.finish()
    end = time.perf_counter()
    return {
        "import_seconds": ready - started,
        "imports_mb": imports_mb,
        "seconds": end - ready,
        "profile_seconds": profiled - ready,
        "window_seconds": end - profiled,
        "drifted": sorted(report.drift.drifted_columns()),
        "dataset_drift": report.drift.dataset_drift,
    }


def worker_evidently(reference: str, current: str, every: int) -> dict:
    started = time.perf_counter()
    import pandas as pd
    import pyarrow.parquet as pq
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    ready, imports_mb = imported(started)
    columns = selected(pq.read_schema(reference).names, every) if every > 1 else None
    ref, cur = pd.read_parquet(reference, columns=columns), pd.read_parquet(current, columns=columns)
    definition = DataDefinition(
        numerical_columns=[c for c in ref.columns if c.startswith("num_")],
        categorical_columns=[c for c in ref.columns if c.startswith("cat_")],
    )
    current_data = Dataset.from_pandas(cur, data_definition=definition)
    reference_data = Dataset.from_pandas(ref, data_definition=definition)
    snapshot = Report([DataDriftPreset()]).run(current_data, reference_data)
    drifted, share = [], None
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config.get("type") == "evidently:metric_v2:DriftedColumnsCount":
            share = metric["value"]["share"]
        if config.get("type") != "evidently:metric_v2:ValueDrift":
            continue
        p_value = "p_value" in config["method"]
        value, threshold = metric["value"], config["threshold"]
        if (value <= threshold) if p_value else (value >= threshold):
            drifted.append(config["column"])
    end = time.perf_counter()
    return {
        "import_seconds": ready - started,
        "imports_mb": imports_mb,
        "seconds": end - ready,
        "drifted": sorted(drifted),
        "dataset_drift": None if share is None else share >= 0.5,
    }


@dataclass(frozen=True)
class FalseAlarmCase:
    name: str
    reference_rows: int
    window_rows: int


FALSE_ALARM_CASES = (
    FalseAlarmCase("large reference (distances)", 100_000, 1_000),
    FalseAlarmCase("large reference, small windows (distances)", 100_000, 200),
    FalseAlarmCase("small reference (KS / chi-square, BH)", 1_000, 1_000),
)


def worker_false_alarms(splits: int, chunks: int, numerical: int, categorical: int) -> dict:
    """Same-distribution splits: the share of column tests and of dataset drifts that fire."""
    from conveyor.monitoring import analyze, build_profile, calibrate

    cases = []
    for case in FALSE_ALARM_CASES:
        fired = {"default": [0, 0, 0], "calibrated": [0, 0, 0]}  # column alerts, tests, dataset alerts
        methods: set[str] = set()
        for split in range(splits):
            seed = [7, case.reference_rows, case.window_rows, split]
            reference = make_table(case.reference_rows, numerical, categorical, set(), [*seed, 0])
            window = make_table(case.window_rows, numerical, categorical, set(), [*seed, 1])
            calibration = [
                make_table(case.window_rows, numerical, categorical, set(), [*seed, 2, j])
                for j in range(chunks)
            ]
            profile = build_profile(reference)
            for label, used in (("default", profile), ("calibrated", calibrate(profile, calibration))):
                drift = analyze(used, window).drift
                tested = [c for c in drift.features if c.drifted is not None]
                fired[label][0] += sum(bool(c.drifted) for c in tested)
                fired[label][1] += len(tested)
                fired[label][2] += bool(drift.dataset_drift)
                if label == "default":
                    methods.update(c.method for c in tested if c.method)
        cases.append(
            {
                **asdict(case),
                "methods": sorted(methods),
                **{
                    label: {
                        "column_alerts": alerts,
                        "column_tests": tests,
                        "column_rate": alerts / tests if tests else None,
                        "dataset_alerts": dataset,
                        "dataset_rate": dataset / splits,
                    }
                    for label, (alerts, tests, dataset) in fired.items()
                },
            }
        )
    return {
        "splits": splits,
        "calibration_chunks": chunks,
        "columns": numerical + categorical,
        "cases": cases,
    }


def worker(args: argparse.Namespace) -> None:
    """Runs in the child process: one job, then one JSON line on stdout."""
    if args.worker == "conveyor":
        result = worker_conveyor(args.reference, args.current, args.every)
    elif args.worker == "evidently":
        result = worker_evidently(args.reference, args.current, args.every)
    else:
        result = worker_false_alarms(args.splits, args.chunks, 40, 10)
    result["peak_mb"] = peak_rss_mb()
    print(json.dumps(result))


# --- the driver --------------------------------------------------------------------------


def _status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of a process, in MB (empty once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            return {
                key: int(value.split()[0]) * 1024 / 1e6
                for key, _, value in (line.partition(":") for line in status)
                if key in ("VmRSS", "VmHWM")
            }
    except OSError:
        return {}


def memory_cap_mb() -> float:
    """Default cap on a tool's resident memory: half of what is available now, at most 12 GB."""
    try:
        with open("/proc/meminfo") as meminfo:
            fields = {k: v for k, _, v in (line.partition(":") for line in meminfo)}
        available = int(fields["MemAvailable"].split()[0]) * 1024 / 1e6
    except (OSError, KeyError, ValueError):
        return 12_000.0
    return min(12_000.0, available / 2)


def run_child(python: str, arguments: list[str], timeout: float, cap_mb: float) -> dict:
    """Run one worker; stop it past ``timeout`` seconds or ``cap_mb`` of resident memory.

    Why a cap: on a shared machine a tool that needs more memory than there is would be
    killed by the kernel only after pushing everything else out (Evidently on the wide
    size reached 23 GB of a 24 GB machine before it was). A stopped run reports how far
    it got: its peak and its time since the imports, both lower bounds.
    """
    command = [python, str(Path(__file__)), *arguments]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    started = time.perf_counter()
    child = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env
    )
    lines: list[str] = []
    errors: list[str] = []
    readers = [
        threading.Thread(target=lambda: lines.extend(child.stdout), daemon=True),  # type: ignore[arg-type]
        threading.Thread(target=lambda: errors.extend(child.stderr), daemon=True),  # type: ignore[arg-type]
    ]
    for reader in readers:
        reader.start()
    stopped, peak = None, 0.0
    while child.poll() is None:
        status = _status(child.pid)
        peak = max(peak, status.get("VmHWM", 0.0))
        if status.get("VmRSS", 0.0) > cap_mb:
            stopped = f"stopped at the memory cap of {cap_mb / 1000:.1f} GB"
        elif time.perf_counter() - started > timeout:
            stopped = f"stopped after the {timeout:.0f} s timeout"
        if stopped:
            child.kill()
            break
        time.sleep(0.2)
    child.wait()
    for reader in readers:
        reader.join(timeout=5)
    elapsed = time.perf_counter() - started
    records = [json.loads(line) for line in lines if line.startswith("{")]
    stages = [r for r in records if r.get("stage") == "imported"]
    if stopped:
        import_seconds = stages[0]["import_seconds"] if stages else 0.0
        return {
            "stopped": stopped,
            "import_seconds": import_seconds,
            "seconds": elapsed - import_seconds,
            "peak_mb": peak,
            "process_seconds": elapsed,
        }
    results = [r for r in records if "stage" not in r]
    if child.returncode != 0 or not results:
        tail = [line.strip() for line in errors if line.strip()]
        return {"error": tail[-1] if tail else f"exit {child.returncode}"}
    result = results[-1]
    result["process_seconds"] = elapsed
    return result


def run_tool(tool: str, size: Size, reference: Path, current: Path, timeout: float, cap_mb: float) -> dict:
    python = sys.executable if tool == "conveyor" else str(EVIDENTLY_PYTHON)
    if tool == "evidently" and not EVIDENTLY_PYTHON.exists():
        return {"error": f"{EVIDENTLY_PYTHON} is missing: install {HERE / 'requirements.txt'} into it"}
    arguments = ["--worker", tool, "--reference", str(reference), "--current", str(current)]
    return run_child(python, [*arguments, "--every", str(size.every)], timeout, cap_mb)


def finished(result: dict) -> bool:
    """Whether a tool's run gave its answer (it did not fail, was not stopped, was run)."""
    return "drifted" in result


def print_size(size: Size, drift: list[str], results: dict[str, dict]) -> None:
    group = SIZES[size.files].row_group if size.files else min(size.row_group, size.rows)
    print(
        f"\n== {size.name}: {size.label()} ({size.numerical} numerical, {size.categorical} categorical), "
        f"row groups of {group:,} rows"
    )
    print(f"planted drift in {len(drift)} columns")
    print(
        f"{'tool':<10} {'import s':>9} {'read+compute s':>15} {'peak MB':>8} {'after imports MB':>17}  ",
        end="",
    )
    print("flags planted")
    for tool, result in results.items():
        if "error" in result:
            print(f"{tool:<10} failed: {result['error']}")
        elif "stopped" in result:
            print(
                f"{tool:<10} {result['import_seconds']:>9.2f} {'> ' + format(result['seconds'], '.1f'):>15} "
                f"{'> ' + format(result['peak_mb'], '.0f'):>8} {'':>17}  {result['stopped']}"
            )
        else:
            verdict = "yes" if result["drifted"] == sorted(drift) else "no"
            print(
                f"{tool:<10} {result['import_seconds']:>9.2f} {result['seconds']:>15.2f} "
                f"{result['peak_mb']:>8.0f} {result['imports_mb']:>17.0f}  {verdict}"
            )
    conveyor, evidently = results.get("conveyor", {}), results.get("evidently", {})
    if finished(conveyor) and evidently and "error" not in evidently:
        bound = "" if finished(evidently) else "at least "
        print(
            f"Evidently / Conveyor: {bound}{evidently['seconds'] / conveyor['seconds']:.1f}x the time, "
            f"{bound}{evidently['peak_mb'] / conveyor['peak_mb']:.1f}x the peak memory"
        )
    if finished(conveyor) and finished(evidently):
        same = conveyor["drifted"] == evidently["drifted"]
        print(f"same drifted columns: {'yes' if same else 'no'}")
        if not same:
            print(f"  conveyor:  {conveyor['drifted']}\n  evidently: {evidently['drifted']}")
    for tool, result in results.items():
        if finished(result) and result["drifted"] != sorted(drift):
            print(f"  {tool} flagged {result['drifted']}, planted {sorted(drift)}")


def print_false_alarms(result: dict) -> None:
    if "error" in result:
        print(f"\nfalse alarms: failed: {result['error']}")
        return
    print(
        f"\n== false alarms: {result['splits']} same-distribution splits x {result['columns']} columns, "
        f"calibration on {result['calibration_chunks']} chunks"
    )
    for case in result["cases"]:
        print(
            f"{case['name']}: reference {case['reference_rows']:,} rows, "
            f"window {case['window_rows']:,} rows, methods {', '.join(case['methods'])}"
        )
        for label in ("default", "calibrated"):
            figures = case[label]
            print(
                f"  {label:<10} column tests fired {figures['column_alerts']}/{figures['column_tests']} "
                f"({figures['column_rate']:.2%}), "
                f"dataset drift {figures['dataset_alerts']}/{result['splits']} "
                f"({figures['dataset_rate']:.0%})"
            )


def _mb(value: float) -> str:
    return f"{value / 1000:.2f} GB" if value >= 1000 else f"{value:.0f} MB"


def _s(value: float) -> str:
    return f"{value:.1f} s" if value >= 10 else f"{value:.2f} s"


def markdown(figures: dict) -> str:
    """The results as a table for benchmarks/RESULTS.md."""
    lines = [
        "| size | Conveyor: time, peak | Evidently: time, peak | time ratio | memory ratio "
        "| same drifted columns |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for entry in figures["sizes"]:
        conveyor, evidently = entry["results"].get("conveyor", {}), entry["results"].get("evidently", {})
        left = f"{_s(conveyor['seconds'])}, {_mb(conveyor['peak_mb'])}" if finished(conveyor) else "failed"
        left = left if conveyor else "not run"
        if finished(evidently):
            right = f"{_s(evidently['seconds'])}, {_mb(evidently['peak_mb'])}"
        elif "stopped" in evidently:
            right = f"> {_s(evidently['seconds'])}, > {_mb(evidently['peak_mb'])} ({evidently['stopped']})"
        else:
            right = "failed" if evidently else "not run"
        ratio_t = ratio_m = same = "-"
        if finished(conveyor) and evidently and "error" not in evidently:
            bound = "" if finished(evidently) else "≥ "
            ratio_t = f"{bound}{evidently['seconds'] / conveyor['seconds']:.0f}x"
            ratio_m = f"{bound}{evidently['peak_mb'] / conveyor['peak_mb']:.1f}x"
        if finished(conveyor) and finished(evidently):
            same = "yes" if conveyor["drifted"] == evidently["drifted"] == entry["planted"] else "no"
        elif finished(conveyor):
            planted_ok = "yes" if conveyor["drifted"] == entry["planted"] else "no"
            same = f"n/a (Conveyor flags exactly the planted ones: {planted_ok})"
        lines.append(f"| {entry['label']} | {left} | {right} | {ratio_t} | {ratio_m} | {same} |")
    lines.extend(estimates(figures))
    return "\n".join(lines)


def estimates(figures: dict) -> list[str]:
    """For a size whose Evidently run stopped: its time estimated from a slice of its files."""
    notes = []
    by_name = {entry["size"]["name"]: entry for entry in figures["sizes"]}
    for entry in figures["sizes"]:
        size, results = entry["size"], entry["results"]
        whole = by_name.get(size["files"] or "")
        if not whole or not finished(results.get("evidently", {})):
            continue
        evidently, conveyor = results["evidently"], whole["results"].get("conveyor", {})
        if finished(whole["results"].get("evidently", {})) or not finished(conveyor):
            continue
        estimate = evidently["seconds"] * size["every"]
        notes.append(
            f"\nEvidently on {whole['label']}, estimated from {size['name']} "
            f"(its time there x {size['every']}): about {estimate:.0f} s, "
            f"{estimate / conveyor['seconds']:.0f}x Conveyor's time."
        )
    return notes


def describe_machine() -> str:
    """CPUs, their model, memory, OS, Python and the two tools' versions, load average."""
    model, memory = "", ""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(
                (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), ""
            )
        with open("/proc/meminfo") as meminfo:
            memory = f", {int(meminfo.readline().split()[1]) / 1024**2:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    version = (
        subprocess.run(
            [str(EVIDENTLY_PYTHON), "-c", "import evidently; print(evidently.__version__)"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if EVIDENTLY_PYTHON.exists()
        else "not installed"
    )
    return (
        f"{os.cpu_count()} CPUs ({model}){memory}, {platform.platform()}, "
        f"Python {platform.python_version()}, Evidently {version}, load average at start {load}"
    )


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument(
        "--sizes", default="100k,1m,wide,wide-slice", help="comma-separated: 100k, 1m, wide, wide-slice"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 20,000 rows x 20 columns")
    parser.add_argument("--only", choices=("conveyor", "evidently"))
    parser.add_argument("--no-false-alarms", action="store_true", help="skip the same-distribution splits")
    parser.add_argument("--splits", type=int, default=20, help="same-distribution splits")
    parser.add_argument("--chunks", type=int, default=30, help="calibration chunks per split")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per process")
    parser.add_argument(
        "--memory-cap-gb",
        type=float,
        help="stop a tool past this resident memory (default: half of what is available, at most 12)",
    )
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--worker", choices=("conveyor", "evidently", "false-alarms"), help=argparse.SUPPRESS)
    parser.add_argument("--reference", help=argparse.SUPPRESS)
    parser.add_argument("--current", help=argparse.SUPPRESS)
    parser.add_argument("--every", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    sizes = [QUICK] if args.quick else [SIZES[name.strip()] for name in args.sizes.split(",") if name.strip()]
    tools = [args.only] if args.only else ["conveyor", "evidently"]
    began = time.perf_counter()
    cap_mb = args.memory_cap_gb * 1000 if args.memory_cap_gb else memory_cap_mb()
    machine = describe_machine()
    print(f"machine: {machine}\nmemory cap per tool: {cap_mb / 1000:.1f} GB")
    figures: dict[str, Any] = {"machine": machine, "memory_cap_mb": cap_mb, "sizes": []}
    for size in sizes:
        generating = time.perf_counter()
        reference, current, drift = prepare(size)
        print(f"\n[{size.name}] data ready in {time.perf_counter() - generating:.1f} s: {reference.parent}")
        results = {tool: run_tool(tool, size, reference, current, args.timeout, cap_mb) for tool in tools}
        print_size(size, drift, results)
        figures["sizes"].append(
            {"size": asdict(size), "label": size.label(), "planted": sorted(drift), "results": results}
        )
    if not args.no_false_alarms:
        arguments = ["--worker", "false-alarms", "--splits", str(args.splits), "--chunks", str(args.chunks)]
        figures["false_alarms"] = run_child(sys.executable, arguments, args.timeout, cap_mb)
        print_false_alarms(figures["false_alarms"])
    figures["seconds"] = time.perf_counter() - began
    print(f"\n{markdown(figures)}\n\nwhole run: {figures['seconds']:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
