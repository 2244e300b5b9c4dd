"""Conveyor: one server for the whole ML lifecycle.

The object model, as a map:

* experiments → runs → params, metrics (time series), tags, dataset inputs, artifacts
  (each artifact indexed with its size and SHA-256);
* pipelines (``@step``, ``@pipeline``) → pipeline runs → step runs (definitions today,
  execution coming);
* packaged models (``conveyor.models``): a directory with a manifest of every file's
  SHA-256, saved, logged to a run (``runs:/<run>/<name>``) and loaded back verified;
* registered models → versions → stages and approvals (coming).

``import conveyor as cv`` gives the fluent tracking API::

    import conveyor as cv

    cv.set_experiment("churn")
    with cv.start_run(run_name="baseline"):
        cv.log_params({"C": 0.5})
        for step in range(100):
            cv.log_metric("loss", 1 / (step + 1), step=step)

Names are imported lazily so that ``import conveyor`` stays cheap and loads no database
driver, pandas or HTTP stack until they are used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from conveyor._version import __version__

if TYPE_CHECKING:
    from conveyor.pipelines import pipeline, step
    from conveyor.tracking.client import Client
    from conveyor.tracking.fluent import (
        ActiveRun,
        active_run,
        end_run,
        get_client,
        log_artifact,
        log_artifacts,
        log_input,
        log_metric,
        log_metrics,
        log_param,
        log_params,
        search_runs,
        set_experiment,
        set_seed,
        set_tag,
        set_tags,
        set_tracking_uri,
        start_run,
    )

__all__ = [
    "ActiveRun",
    "Client",
    "__version__",
    "active_run",
    "end_run",
    "get_client",
    "log_artifact",
    "log_artifacts",
    "log_input",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "pipeline",
    "search_runs",
    "set_experiment",
    "set_seed",
    "set_tag",
    "set_tags",
    "set_tracking_uri",
    "start_run",
    "step",
]

_HOMES = {
    "Client": "conveyor.tracking.client",
    "step": "conveyor.pipelines",
    "pipeline": "conveyor.pipelines",
}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'conveyor' has no attribute {name!r}")
    module = importlib.import_module(_HOMES.get(name, "conveyor.tracking.fluent"))
    value = getattr(module, name)
    globals()[name] = value
    return value
