"""Spark sessions for spark=True steps: one per process, master from settings, clear errors.

One ``local[2]`` session serves the whole module, because starting the JVM costs seconds.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from conveyor.errors import InvalidInput
from conveyor.pipelines.spark import current_spark, inject_spark, spark_session, stop_spark_session

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.spark,
    pytest.mark.slow,
    # PySpark 4.3 is not yet written for pandas 3; toPandas() works but warns.
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    """The module's session, its master taken from ``CONVEYOR_SPARK_MASTER``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONVEYOR_SPARK_MASTER", "local[2]")
        patch.delenv("CONVEYOR_CONFIG", raising=False)
        session = spark_session(config={})
    yield session
    stop_spark_session()


def test_a_group_by_runs_and_converts_to_pandas(spark: SparkSession) -> None:
    frame = spark.createDataFrame([("a", 1), ("b", 2), ("a", 3)], ["key", "value"])
    totals = frame.groupBy("key").sum("value").orderBy("key").toPandas()
    assert totals.to_dict("list") == {"key": ["a", "b"], "sum(value)": [4, 2]}


def test_the_master_comes_from_the_environment(spark: SparkSession) -> None:
    assert spark.sparkContext.master == "local[2]"
    assert spark.sparkContext.appName == "conveyor"
    assert spark.conf.get("spark.ui.enabled") == "false"
    assert spark.conf.get("spark.sql.shuffle.partitions") == str(os.cpu_count())


def test_one_session_per_process(spark: SparkSession) -> None:
    assert spark_session("local[2]") is spark
    assert current_spark() is spark


def test_another_master_is_refused_while_a_session_runs(spark: SparkSession) -> None:
    with pytest.raises(InvalidInput, match=r"'local\[2\]', not 'local\[1\]'.*stop_spark_session"):
        spark_session("local[1]", {})


def test_inject_spark_fills_only_a_spark_parameter(spark: SparkSession) -> None:
    def with_spark(rows: int, spark: SparkSession) -> None: ...

    def without_spark(rows: int) -> None: ...

    injected = inject_spark({"rows": 3}, inspect.signature(with_spark), "local[2]", {})
    assert injected == {"rows": 3, "spark": spark}
    assert inject_spark({"rows": 3}, inspect.signature(without_spark), "local[2]", {}) == {"rows": 3}


START = "from conveyor.pipelines.spark import spark_session; spark_session('local[1]', {})"


@pytest.mark.parametrize(
    ("code", "environment", "message"),
    [
        (f"import sys; sys.modules['pyspark'] = None; {START}", {}, "pip install 'conveyor[spark]'"),
        (START, {"JAVA_HOME": "{empty}"}, "has no bin/java"),
        (START, {"PATH": "{empty}"}, "no `java` on PATH"),
        (
            "from conveyor.pipelines.spark import current_spark; current_spark()",
            {},
            "declare the step with @step(spark=True)",
        ),
    ],
    ids=["no-pyspark", "empty-java-home", "no-java-on-path", "no-session-yet"],
)
def test_what_is_missing_is_named(
    tmp_path: Path, code: str, environment: dict[str, str], message: str
) -> None:
    # A fresh interpreter: this one already holds a session, which would be returned.
    env = {key: value for key, value in os.environ.items() if key != "JAVA_HOME"}
    env.update({key: value.format(empty=tmp_path) for key, value in environment.items()})
    result = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "conveyor.errors.InvalidInput" in result.stderr
    assert message in result.stderr
