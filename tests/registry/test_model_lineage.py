"""Model lineage: version → run → datasets, code and pipeline; dataset → versions trained on it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from conveyor import models
from conveyor.cli import app
from conveyor.config import Settings
from conveyor.errors import InvalidInput
from conveyor.pipelines.runner import run_pipeline
from conveyor.registry import RegistryService
from conveyor.registry.cards import build_card
from conveyor.registry.lineage import models_trained_on, upstream_of_model
from conveyor.tracking.client import Client
from tests.registry.test_cards import COMMIT, register_from_run

FLOWS = Path(__file__).resolve().parents[1] / "pipelines" / "pipeline_flows.py"


def test_upstream_names_the_run_its_data_and_code(registry: RegistryService, name: str) -> None:
    digest = register_from_run(registry, name)
    graph = upstream_of_model(registry, registry.store, f"models:/{name}@challenger")
    assert graph.root == f"models:/{name}/1"
    [run] = graph.runs
    assert (run.git_commit, run.git_dirty, run.pipeline_run_id) == (COMMIT, True, None)
    assert [(d.name, d.digest) for d in run.datasets] == [("customers", digest)]
    assert graph.pipeline is None


def test_downstream_from_a_dataset_lists_the_versions(registry: RegistryService, name: str) -> None:
    digest = register_from_run(registry, name)
    graph = models_trained_on(registry, registry.store, f"dataset:{digest}")
    # The PostgreSQL database is shared by the session: other tests trained on these rows too.
    assert (name, 1) in [(v.name, v.version) for v in graph.versions]
    assert {v.run_id for v in graph.versions} <= {r.run_id for r in graph.runs}
    assert models_trained_on(registry, registry.store, "0" * 64).versions == []
    by_prefix = models_trained_on(registry, registry.store, digest[:12])
    assert by_prefix.root == f"dataset:{digest}"
    assert (name, 1) in [(v.name, v.version) for v in by_prefix.versions]
    with pytest.raises(InvalidInput, match="prefix of at least 8 hex"):
        models_trained_on(registry, registry.store, digest[:7])


def test_a_model_logged_by_a_pipeline_step(registry: RegistryService, name: str) -> None:
    """The step's child run leads to the pipeline run, its steps and their artifacts."""
    result = run_pipeline(f"{FLOWS}:frames", {"rows": 10}, settings=Settings())
    client = Client()
    try:
        parent = client.get_run(result.run.tracking_run_id)
        step = "tags.`conveyor.pipeline.step` = 'log_and_return'"
        query = f"tags.mlflow.parentRunId = '{parent.info.run_id}' AND {step}"
        [child] = client.search_runs([parent.info.experiment_id], query)
        fitted = LogisticRegression().fit(np.arange(8.0).reshape(4, 2), [0, 1, 0, 1])
        info = models.log_model(fitted, "model", run_id=child.info.run_id, client=client)
    finally:
        client.close()
    registry.create_model(name)
    registry.create_version(name, info.uri)

    graph = upstream_of_model(registry, registry.store, f"models:/{name}/1")
    [run] = graph.runs
    assert (run.pipeline_run_id, run.pipeline_step) == (result.run.id, "log_and_return")
    assert graph.pipeline is not None
    assert {s.node_id for s in graph.pipeline.steps.values()} >= {"make_frame", "split", "log_and_return"}
    card = build_card(registry, registry.store, name, 1)
    assert card.pipeline is not None and card.pipeline.step == "log_and_return"
    # Downstream from bytes a step read, through the pipeline run, to the version.
    read = {edge.source for edge in graph.pipeline.edges if edge.role == "input"}
    sha = graph.pipeline.artifacts[sorted(read)[0]].sha256
    fed = models_trained_on(registry, registry.store, sha[:10])
    assert fed.pipeline is not None and result.run.id in fed.pipeline.runs
    assert (name, 1) in [(v.name, v.version) for v in fed.versions]
    assert child.info.run_id in {r.run_id for r in fed.runs}
    assert card.code.git_commit == result.run.git_commit


def test_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("CONVEYOR_TRACKING_URI", "CONVEYOR_DATABASE_URL", "CONVEYOR_ARTIFACT_ROOT"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("CONVEYOR_HOME", str(tmp_path))
    registry = RegistryService.from_settings(Settings())
    try:
        digest = register_from_run(registry, "churn")
    finally:
        registry.store.close()
    runner = CliRunner()
    up = runner.invoke(app, ["lineage", "models:/churn@challenger", "--upstream"])
    assert up.exit_code == 0, up.output
    assert "models:/churn/1" in up.stdout and "customers" in up.stdout and digest in up.stdout
    down = runner.invoke(app, ["lineage", f"dataset:{digest}", "--downstream", "--json"])
    assert down.exit_code == 0, down.output
    assert [v["version"] for v in json.loads(down.stdout)["versions"]] == [1]
