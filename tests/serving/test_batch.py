"""``conveyor predict``: chunked scoring of real files with a registered model, its errors, its memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner, Result

from conveyor import models
from conveyor.cli import app
from conveyor.config import Settings
from conveyor.errors import InvalidInput, NotFound
from conveyor.registry import RegistryService
from conveyor.serving.batch import find_inputs, score
from conveyor.testing.dask import DaskCluster, start_dask_cluster
from conveyor.testing.processes import free_port


@dataclass(frozen=True)
class Setup:
    model_dir: Path
    data: Path  # Parquet, 30,000 rows in row groups of 2,000
    frame: pd.DataFrame
    expected: np.ndarray


def frame_of(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": np.arange(rows, dtype=np.int64),
            "age": rng.normal(40, 10, rows),
            "income": rng.normal(50, 15, rows),
            "region": rng.choice(["north", "south"], rows),
        }
    )


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """A logistic regression registered as churn v1 (alias ``candidate``) in a SQLite registry."""
    root = tmp_path_factory.mktemp("batch")
    train = frame_of(200, seed=1)
    labels = (train["age"] + train["income"] > 90).astype(np.int64)
    features = train[["age", "income"]]
    estimator = LogisticRegression().fit(features, labels)
    models.save(estimator, root / "model", input_example=features.head())
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("CONVEYOR_TRACKING_URI", raising=False)
        patch.setenv("CONVEYOR_HOME", str(root / "home"))
        patch.setenv("CONVEYOR_DATABASE_URL", f"sqlite:///{root / 'registry.db'}")
        patch.setenv("CONVEYOR_ARTIFACT_ROOT", str(root / "artifacts"))
        registry = RegistryService.from_settings(Settings())
        registry.create_model("churn")
        registry.set_alias(
            "churn", "candidate", registry.create_version("churn", str(root / "model")).version
        )
        registry.store.close()
        data = frame_of(30_000, seed=2)
        pq.write_table(
            pa.Table.from_pandas(data, preserve_index=False), root / "data.parquet", row_group_size=2_000
        )
        yield Setup(root / "model", root / "data.parquet", data, estimator.predict(data[["age", "income"]]))


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, ["predict", *args])


def only_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_predict_by_alias_streams_in_order_with_passthrough(setup: Setup, tmp_path: Path) -> None:
    out = tmp_path / "scores.parquet"
    result = cli(
        "models:/churn@candidate", "-i", str(setup.data), "-o", str(out),
        "--batch-rows", "3000", "--columns-out", "id,region", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rows"] == 30_000 and summary["tasks"] == 0
    scored = pq.read_table(out)
    assert scored.column_names == ["id", "region", "prediction"]
    assert scored.column("id").to_pylist() == list(range(30_000))
    np.testing.assert_array_equal(scored.column("prediction").to_numpy(), setup.expected)
    assert scored.schema.metadata[b"conveyor.model_digest"].decode() == summary["model_digest"]
    assert only_files(tmp_path) == ["scores.parquet"]


def test_csv_glob_and_folder_inputs(setup: Setup, tmp_path: Path) -> None:
    parts = tmp_path / "in"
    parts.mkdir()
    setup.frame.iloc[:1_000].to_csv(parts / "a.csv", index=False)
    setup.frame.iloc[1_000:1_500].to_csv(parts / "b.csv", index=False)
    (parts / "_SUCCESS").write_text("")
    assert find_inputs(parts) == [parts / "a.csv", parts / "b.csv"]
    assert find_inputs(str(parts / "*.csv")) == [parts / "a.csv", parts / "b.csv"]

    out = tmp_path / "scores.parquet"
    done = score(str(setup.model_dir), find_inputs(parts), out, batch_rows=300, columns_out=["id"])
    assert done.rows == 1_500 and done.files == 2
    scored = pq.read_table(out)
    assert scored.column("id").to_pylist() == list(range(1_500))
    np.testing.assert_array_equal(scored.column("prediction").to_numpy(), setup.expected[:1_500])


def test_empty_input_gives_an_empty_output(setup: Setup, tmp_path: Path) -> None:
    empty = tmp_path / "empty.parquet"
    pq.write_table(pa.Table.from_pandas(setup.frame.iloc[:0], preserve_index=False), empty)
    done = score(str(setup.model_dir), [empty], tmp_path / "out.parquet", columns_out=["id"])
    assert done.rows == 0
    assert pq.read_table(tmp_path / "out.parquet").column_names == ["id", "prediction"]


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda s, d: ["models:/churn@candidate", "-i", str(d / "nope.parquet")], "does not exist"),
        (lambda s, d: ["models:/nobody@candidate", "-i", str(s.data)], "nobody"),
        (lambda s, d: [str(s.model_dir), "-i", str(s.data), "--columns-out", "customer"], "'customer'"),
        (lambda s, d: [str(s.model_dir), "-i", str(d / "no_income.parquet")], "'income'"),
        (lambda s, d: [str(s.model_dir), "-i", str(d / "notes.txt")], "Parquet"),
        (lambda s, d: [str(s.model_dir), "-i", str(d / "broken.parquet")], "Cannot read"),
    ],
    ids=["missing input", "unknown model", "unknown passthrough", "missing column", "not a table", "corrupt"],
)
def test_errors_exit_1_with_a_clear_message_and_no_output(
    setup: Setup, tmp_path: Path, make_args: object, message: str
) -> None:
    pq.write_table(pa.table({"id": [1], "age": [30.0]}), tmp_path / "no_income.parquet")
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 but not really")
    before = only_files(tmp_path)
    result = cli(*make_args(setup, tmp_path), "-o", str(tmp_path / "out.parquet"))  # type: ignore[operator]
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert only_files(tmp_path) == before


def test_unwritable_output_and_a_failure_half_way_leave_nothing(setup: Setup, tmp_path: Path) -> None:
    result = cli(str(setup.model_dir), "-i", str(setup.data), "-o", str(tmp_path / "absent" / "out.parquet"))
    assert result.exit_code == 1 and "does not exist" in result.output

    good = tmp_path / "1-good.parquet"
    bad = tmp_path / "2-bad.parquet"
    pq.write_table(pa.Table.from_pandas(setup.frame.iloc[:5_000], preserve_index=False), good)
    pq.write_table(pa.table({"age": ["old"], "income": [1.0]}), bad)  # text where the model wants numbers
    before = only_files(tmp_path)
    with pytest.raises(InvalidInput, match="age"):
        score(str(setup.model_dir), [good, bad], tmp_path / "out.parquet", batch_rows=1_000)
    assert only_files(tmp_path) == before  # the 5,000 rows scored before the error are gone too


def test_unknown_model_version(setup: Setup, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        score("models:/churn/9", [setup.data], tmp_path / "out.parquet")


MEMORY_PROBE = textwrap.dedent(
    """
    import json, sys, tracemalloc
    import pyarrow as pa
    from conveyor.serving.batch import score

    model, out, *inputs = sys.argv[1:]
    score(model, [inputs[0]], out)  # warm up: imports and first-use caches are not data
    peaks = []
    for data in inputs:
        tracemalloc.start()
        score(model, [data], out, batch_rows=2_000)
        python_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        # NumPy and pandas buffers are traced by tracemalloc; Arrow's by its pool's high-water mark.
        peaks.append(python_peak + pa.default_memory_pool().max_memory())
    print(json.dumps(peaks))
    """
)


def test_memory_is_bounded_by_the_batch_not_the_file(setup: Setup, tmp_path: Path) -> None:
    small, large = tmp_path / "small.parquet", tmp_path / "large.parquet"
    table = pa.Table.from_pandas(frame_of(250_000, seed=3), preserve_index=False)
    pq.write_table(table.slice(0, 25_000), small, row_group_size=2_000)
    pq.write_table(table, large, row_group_size=2_000)
    command = [sys.executable, "-c", MEMORY_PROBE, str(setup.model_dir), str(tmp_path / "out.parquet")]
    done = subprocess.run([*command, str(small), str(large)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    small_peak, large_peak = json.loads(done.stdout.splitlines()[-1])
    # Ten times the rows: the peak barely moves, and stays far below the data's size.
    assert large_peak - small_peak < 0.1 * table.nbytes, (small_peak, large_peak, table.nbytes)
    assert large_peak < 0.5 * table.nbytes, (large_peak, table.nbytes)
    assert pq.read_metadata(tmp_path / "out.parquet").num_rows == 250_000


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    """Two single-threaded worker processes; the model reaches them from the client, not the registry."""
    with start_dask_cluster(tmp_path_factory.mktemp("dask"), workers=2) as cluster:
        yield cluster


def worker_loads(cluster: DaskCluster) -> dict[str, dict[str, int]]:
    with cluster.client() as client:
        return client.run(lambda: dict(__import__("conveyor.serving.batch", fromlist=["_"]).worker_loads))


@pytest.mark.slow
def test_dask_scores_row_groups_in_parallel_and_joins_them_in_order(
    setup: Setup, tmp_path: Path, dask_cluster: DaskCluster
) -> None:
    out = tmp_path / "scores.parquet"
    args = [
        "-i",
        str(setup.data),
        "--dask",
        dask_cluster.address,
        "--batch-rows",
        "4000",
        "--columns-out",
        "id",
    ]
    result = cli("models:/churn@candidate", *args, "-o", str(out), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["rows"], summary["tasks"]) == (30_000, 8)  # 15 row groups of 2,000, two per task
    scored = pq.read_table(out)
    assert scored.column("id").to_pylist() == list(range(30_000))
    np.testing.assert_array_equal(scored.column("prediction").to_numpy(), setup.expected)
    assert only_files(tmp_path) == ["scores.parquet"]  # the parts are gone

    again = cli("models:/churn@candidate", *args, "-o", str(tmp_path / "again.parquet"))
    assert again.exit_code == 0, again.output
    loads = [counts for counts in worker_loads(dask_cluster).values() if counts]
    assert loads and all(counts == {summary["model_digest"]: 1} for counts in loads)  # once per worker


@pytest.mark.slow
def test_a_failing_task_on_dask_fails_the_job_and_leaves_nothing(
    setup: Setup, tmp_path: Path, dask_cluster: DaskCluster
) -> None:
    good, bad = tmp_path / "1-good.parquet", tmp_path / "2-bad.parquet"
    pq.write_table(pa.Table.from_pandas(setup.frame.iloc[:4_000], preserve_index=False), good)
    pq.write_table(pa.table({"age": ["old"], "income": [1.0]}), bad)
    before = only_files(tmp_path)
    result = cli(str(setup.model_dir), "-i", str(tmp_path / "*.parquet"), "-o", str(tmp_path / "out.parquet"),
                 "--dask", dask_cluster.address)  # fmt: skip
    assert result.exit_code == 1 and "age" in result.output, result.output
    assert only_files(tmp_path) == before


def test_an_unreachable_scheduler_is_a_clear_error(
    setup: Setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("conveyor.serving.batch.DASK_CONNECT_TIMEOUT_S", 0.5)
    result = cli(str(setup.model_dir), "-i", str(setup.data), "-o", str(tmp_path / "out.parquet"),
                 "--dask", f"tcp://127.0.0.1:{free_port()}")  # fmt: skip
    assert result.exit_code == 1 and "Cannot reach the Dask scheduler" in result.output, result.output
    assert only_files(tmp_path) == []
