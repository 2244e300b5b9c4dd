"""Model serving: registered models behind the Open Inference Protocol and MLflow's protocol.

Object model::

    deployment (YAML or model URIs)        deployment.py
    └── model name (churn)                 traffic.ModelRoute
        ├── variants, by weight            traffic.VariantSlot -> the version loaded now
        │   └── served version             served.ServedModel: checked columns in, outputs out
        │       └── batcher                batching.Batcher: concurrent requests, one predict
        └── shadow (mirrors a share)

- A request comes in through a protocol (``oip.py``, ``invocations.py``), which only
  decodes and encodes; ``http.answer_infer`` applies the limits, the timeout and the
  error format (``http.InferenceRoutes`` finds the inference routes before FastAPI);
  ``runtime.ServingRuntime`` routes, validates (``validation.py``), batches, logs
  predictions and mirrors to the shadow.
- ``hotswap.Watcher`` loads every version at start and follows registry aliases.
- ``metrics.ServingMetrics`` is the ``/metrics`` endpoint, ``openapi.py`` the ``/docs``.
- ``predlog``, ``feedback`` and ``batch`` (prediction log, ground truth, batch scoring)
  sit beside the server and are used by it.

Example::

    from conveyor.serving import create_app, deployment_from_uris

    app = create_app(deployment_from_uris(["models:/churn@champion"]))
    # uvicorn.run(app)  -- or: conveyor serve models:/churn@champion
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conveyor.serving.deployment import (
    Deployment,
    ModelConfig,
    deployment_from_uris,
    load_deployment,
    parse_deployment,
)

if TYPE_CHECKING:
    from conveyor.serving.app import create_app

__all__ = [
    "Deployment",
    "ModelConfig",
    "create_app",
    "deployment_from_uris",
    "load_deployment",
    "parse_deployment",
]


def __getattr__(name: str) -> Any:
    """``create_app`` imports the web stack, so only on first use."""
    if name == "create_app":
        from conveyor.serving.app import create_app

        return create_app
    raise AttributeError(f"module 'conveyor.serving' has no attribute {name!r}")
