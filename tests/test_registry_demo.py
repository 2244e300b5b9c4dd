"""``examples/registry_demo.py`` and ``serving_demo.py``, as ``make demo`` runs them after the pipeline.

The pipeline runs in-process against a store in a scratch folder; the registry demo then
runs as a subprocess on that store, as a user's next command would, and what it left
behind is read back: the champion alias moved under an approval by a second person, a
stored, complete model card, and an audit log whose hash chain holds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import conveyor
from conveyor.config import Settings
from conveyor.pipelines.runner import run_pipeline
from conveyor.registry import ApprovalService, ApprovalStatus, RegistryService
from conveyor.registry.cards import COMPLETED_TAG, PATH_TAG
from conveyor.store.sql.audit import AuditLog
from conveyor.tracking.client import Client

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A store of its own that ``CONVEYOR_HOME`` names too, so nothing reaches ``./.conveyor``."""
    for name in [n for n in os.environ if n.startswith("CONVEYOR_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CONVEYOR_HOME", str(tmp_path / "home"))
    yield Settings(home=tmp_path / "home")
    conveyor.set_tracking_uri(None)  # the steps' fluent client points at a store about to go


@pytest.mark.slow
def test_registry_demo_promotes_the_best_model_under_four_eyes(settings: Settings, tmp_path: Path) -> None:
    run_pipeline(str(EXAMPLES / "pipeline.py"), settings=settings).raise_for_status()
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "registry_demo.py")],
        cwd=tmp_path,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert "approved by model-validator" in done.stdout
    assert "conveyor audit verify: " in done.stdout

    registry = RegistryService.from_settings(settings)
    client = Client(settings=settings)
    try:
        champion = registry.get_version_by_alias("breast-cancer", "champion")
        [event] = registry.alias_history("breast-cancer", "champion")
        assert (event.new_version, event.actor) == (champion.version, "model-validator")
        request = ApprovalService(registry).get_request(event.approval_id)
        assert request.status is ApprovalStatus.APPLIED
        assert (request.requested_by, request.decided_by) == ("data-scientist", "model-validator")

        run = client.get_run(champion.run_id)
        assert champion.created_by == run.tags["mlflow.user"] == "data-scientist"
        assert run.metrics["holdout/accuracy"].value > 0.9

        card = Path(settings.resolved_artifact_root()) / champion.tags[PATH_TAG]
        assert card.is_file()
        assert f"Model card: {card}" in done.stdout
        assert champion.tags[COMPLETED_TAG] == "true"
        assert AuditLog(registry.store).verify().ok
    finally:
        client.close()
        registry.store.close()

    # make demo ends by serving the champion and asking it, both protocols.
    served = subprocess.run(
        [sys.executable, str(EXAMPLES / "serving_demo.py"), "--no-wait"],
        cwd=tmp_path,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert served.returncode == 0, f"{served.stdout}\n{served.stderr}"
    assert "(MLflow scoring protocol)  -> 200" in served.stdout
    assert "(Open Inference Protocol)  -> 200" in served.stdout
    assert f"model_version {champion.version}" in served.stdout
    assert "-> 400" in served.stdout and "missing" in served.stdout
    # ...and sends shifted traffic, monitors it, and the drift alert fires.
    assert "Sent 300 rows of shifted traffic" in served.stdout
    assert "ALERT OPEN [warning] share_drifted" in served.stdout, served.stdout
