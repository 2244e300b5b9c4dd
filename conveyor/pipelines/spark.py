"""Spark sessions for steps declared ``@step(spark=True)``.

A step receives the session through a parameter named ``spark``; the engine fills it in
with :func:`inject_spark`, so the step itself holds no connection details and runs
unchanged against ``local[*]`` on a laptop or a cluster master in production::

    @step(spark=True)
    def count_events(path: str, spark: SparkSession) -> int:
        return spark.read.parquet(path).count()

A step that reaches Spark from deeper code, without a ``spark`` parameter, calls
:func:`current_spark` instead.

There is one session per process, created on first use, because a JVM hosts one
``SparkContext`` and starting it costs seconds. Its master comes from the caller or from
``Settings.spark_master`` (``CONVEYOR_SPARK_MASTER``); extra options from
``Settings.spark_conf`` (``CONVEYOR_SPARK_CONF``, JSON). PySpark is an optional
dependency (``pip install 'conveyor[spark]'``) and is imported only here, when a session
is first asked for.
"""

from __future__ import annotations

import inspect
import os
import shutil
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.config import Settings
from conveyor.errors import InvalidInput

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["SPARK_PARAMETER", "current_spark", "inject_spark", "spark_session", "stop_spark_session"]

#: The step parameter that receives the session.
SPARK_PARAMETER = "spark"
APP_NAME = "conveyor"
#: Options every session starts with; ``config`` and ``Settings.spark_conf`` override them.
#: The web UI is off: a step does not need it, and it takes a port per process.
DEFAULT_CONF: Mapping[str, str] = {"spark.ui.enabled": "false"}


@dataclass
class _SessionSlot:
    """The process's session; changed only under ``_LOCK``."""

    session: SparkSession | None = None


_SLOT = _SessionSlot()
# Steps may run in threads (a Dask worker with nthreads > 1); one of them creates the session.
_LOCK = threading.Lock()


def spark_session(master: str | None = None, config: Mapping[str, str] | None = None) -> SparkSession:
    """The process's Spark session, started on the first call.

    Later calls return the same session; ``config`` then has no effect, but asking for
    another master is an error, because quietly running on ``local[*]`` when a cluster
    was asked for would hide a misconfiguration.

    Args:
        master: Spark master URL (``local[4]``, ``spark://host:7077``, ``yarn``);
            default: ``Settings.spark_master``.
        config: Extra ``spark.*`` options; default: ``Settings.spark_conf``.

    Raises:
        InvalidInput: PySpark or Java is missing, or a session with another master is
            already running in this process.
    """
    master, config = _resolve(master, config)
    with _LOCK:
        if _SLOT.session is None:
            _SLOT.session = _start(master, {**_defaults(master), **config})
        elif _SLOT.session.sparkContext.master != master:
            raise InvalidInput(
                f"this process already runs a Spark session on {_SLOT.session.sparkContext.master!r}, "
                f"not {master!r}; call stop_spark_session() before asking for another master"
            )
        return _SLOT.session


def current_spark() -> SparkSession:
    """The session of the running ``spark=True`` step, for code that has no ``spark`` parameter.

    Raises:
        InvalidInput: no session has been started in this process: declare the step with
            ``@step(spark=True)`` (or call :func:`spark_session` first).
    """
    session = _SLOT.session
    if session is None:
        raise InvalidInput(
            "no Spark session in this process: declare the step with @step(spark=True), "
            "or call conveyor.pipelines.spark.spark_session() first"
        )
    return session


def inject_spark(
    fn_kwargs: dict[str, Any],
    signature: inspect.Signature,
    master: str | None = None,
    conf: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Start the session for a ``spark=True`` step and pass it as ``spark`` if the step asks.

    The engine calls this just before it calls the step function. The session starts even
    when the function has no ``spark`` parameter, so that :func:`current_spark` works.

    Args:
        fn_kwargs: The keyword arguments the step will be called with; not changed.
        signature: The step function's signature.
        master, conf: As for :func:`spark_session`.

    Returns:
        ``fn_kwargs``, plus ``spark=<session>`` when the signature has that parameter.
    """
    session = spark_session(master, conf)
    if SPARK_PARAMETER not in signature.parameters:
        return dict(fn_kwargs)
    return {**fn_kwargs, SPARK_PARAMETER: session}


def stop_spark_session() -> None:
    """Stop the process's session, if any; the next :func:`spark_session` starts a new one.

    Use this rather than ``session.stop()``, which would leave a stopped session here.
    The JVM stays up, so the next start takes a fraction of a second instead of seconds.
    """
    with _LOCK:
        if _SLOT.session is not None:
            _SLOT.session.stop()
            _SLOT.session = None


def _resolve(master: str | None, config: Mapping[str, str] | None) -> tuple[str, Mapping[str, str]]:
    if master is not None and config is not None:
        return master, config
    settings = Settings()
    return master or settings.spark_master, settings.spark_conf if config is None else config


def _defaults(master: str) -> dict[str, str]:
    if not master.startswith("local"):
        return dict(DEFAULT_CONF)
    # Spark's 200 shuffle partitions suit clusters; on one machine they are mostly
    # scheduling overhead. The driver binds to loopback, which always resolves.
    return {
        **DEFAULT_CONF,
        "spark.sql.shuffle.partitions": str(os.cpu_count() or 1),
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
    }


def _start(master: str, conf: Mapping[str, str]) -> SparkSession:
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise InvalidInput("steps declared spark=True need PySpark: pip install 'conveyor[spark]'") from exc
    _require_java()
    session = SparkSession.builder.master(master).appName(APP_NAME).config(map=dict(conf)).getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session


def _require_java() -> None:
    """Fail with a clear message where PySpark would report "Java gateway process exited".

    Looks for ``java`` as Spark's launcher does: ``$JAVA_HOME/bin/java`` when
    ``JAVA_HOME`` is set, otherwise on ``PATH``.
    """
    java_home = os.environ.get("JAVA_HOME")
    java = Path(java_home, "bin", "java") if java_home else shutil.which("java")
    if java is None or not Path(java).is_file():
        where = f"JAVA_HOME={java_home!r} has no bin/java" if java_home else "no `java` on PATH"
        raise InvalidInput(
            f"Spark needs Java 17 or newer, but {where}: install a JDK (e.g. "
            "`apt install openjdk-17-jre-headless`) and set JAVA_HOME or put java on PATH"
        )
