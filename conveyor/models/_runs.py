"""``log_model``: a saved model directory stored under a run's artifacts."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.artifacts import safe_relpath
from conveyor.errors import InvalidInput
from conveyor.models._packaging import ModelInfo, save
from conveyor.models._signature import Signature

if TYPE_CHECKING:
    from conveyor.tracking.client import Client

__all__ = ["log_model"]


def log_model(
    model: Any,
    name: str,
    *,
    run_id: str | None = None,
    client: Client | None = None,
    signature: Signature | None = None,
    input_example: Any = None,
    flavor: str | None = None,
    pip_requirements: Sequence[str] | None = None,
    allow_pickle: bool = False,
) -> ModelInfo:
    """Save ``model`` (see :func:`save`) and store the directory as the run's artifact ``name``.

    Each file goes through the tracking client, so the tracking store records its
    SHA-256 too and ``load("runs:/<run_id>/<name>")`` verifies the download against
    both those hashes and the model's manifest.

    Args:
        name: Artifact path of the model folder within the run (``"model"``, ``"models/churn"``).
        run_id: The run; default: the active run of the fluent API.
        client: The tracking client; default: the fluent API's for the active run, else ``Client()``.

    Raises:
        InvalidInput: no ``run_id`` and no active run, an unsafe ``name``, or what
            :func:`save` raises.
        RunNotFound: the run does not exist.
    """
    name = safe_relpath(name)
    if run_id is None:
        run_id, client = _active_run(client)
    owned = client is None
    if client is None:
        from conveyor.tracking.client import Client

        client = Client()
    try:
        with tempfile.TemporaryDirectory(prefix="conveyor-model-") as tmp:
            info = save(
                model,
                Path(tmp) / "model",
                signature=signature,
                input_example=input_example,
                flavor=flavor,
                pip_requirements=pip_requirements,
                allow_pickle=allow_pickle,
            )
            client.log_artifacts(run_id, info.uri, artifact_path=name)
    finally:
        if owned:
            client.close()
    return replace(info, uri=f"runs:/{run_id}/{name}", run_id=run_id)


def _active_run(client: Client | None) -> tuple[str, Client | None]:
    from conveyor.tracking import fluent

    active = fluent.active_run()
    if active is None:
        raise InvalidInput(
            "log_model needs run_id=... or an active run (conveyor.tracking.fluent.start_run())"
        )
    return active.run_id, client or fluent.get_client()
