"""Model cards: facts gathered from the run and manifest, editable fields, escaping, versions, CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from conveyor import models
from conveyor.cli import app
from conveyor.errors import InvalidInput
from conveyor.registry import RegistryService
from conveyor.registry.approvals import ApprovalService
from conveyor.registry.cards import build_card, save_card, set_card_fields, update_card
from conveyor.tracking.client import Client
from conveyor.tracking.context import GIT_COMMIT_TAG, GIT_DIRTY_TAG

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def register_from_run(registry: RegistryService, name: str) -> str:
    """A version registered from a run with params, sliced metrics, a dataset and git tags."""
    frame = pd.DataFrame({"age": [30.0, 40.0, 50.0, 60.0], "income": [1.0, 2.0, 3.0, 4.0]})
    client = Client()
    try:
        run = client.create_run(client.get_or_create_experiment(name))
        run_id = run.info.run_id
        client.log_params(run_id, {"C": 0.5, "penalty": "l2"})
        client.log_metrics(
            run_id, {"holdout/accuracy": 0.91, "holdout/age_65_plus/accuracy": 0.8, "loss": 0.3}
        )
        client.set_tags(run_id, {GIT_COMMIT_TAG: COMMIT, GIT_DIRTY_TAG: "true"})
        dataset = client.log_input(run_id, frame, name="customers", source="s3://data/customers.parquet")
        fitted = LogisticRegression().fit(frame, [0, 1, 0, 1])
        info = models.log_model(fitted, "model", run_id=run_id, client=client, input_example=frame)
        client.flush()
    finally:
        client.close()
    registry.create_model(name)
    registry.create_version(name, info.uri)
    registry.set_alias(name, "challenger", 1, reason="best holdout accuracy", approval_id="apr-1")
    return dataset.dataset.digest


def test_card_holds_the_runs_and_manifests_facts(registry: RegistryService, name: str) -> None:
    digest = register_from_run(registry, name)
    card = build_card(registry, registry.store, name, 1)
    assert card.params == {"C": "0.5", "penalty": "l2"}
    assert {(m.metric, m.dataset, m.value) for m in card.metrics} == {
        ("accuracy", "holdout", 0.91),
        ("accuracy", "holdout/age_65_plus", 0.8),
        ("loss", None, 0.3),
    }
    [dataset] = card.datasets
    assert (dataset.name, dataset.digest, dataset.source) == (
        "customers",
        digest,
        "s3://data/customers.parquet",
    )
    assert (card.code.git_commit, card.code.git_dirty) == (COMMIT, True)
    assert card.manifest is not None and card.manifest["flavor"] == "sklearn"
    assert [f["name"] for f in card.manifest["signature"]["inputs"]["fields"]] == ["age", "income"]
    assert card.aliases == ("challenger",) and card.alias_moves[0].approval_id == "apr-1"
    ApprovalService(registry).request_promotion(name, 1, "champion", "ship it")
    card = build_card(registry, registry.store, name, 1)
    [request] = card.approvals
    assert (request["alias"], request["status"], request["reason"]) == ("champion", "PENDING", "ship it")
    assert not card.completed

    saved = save_card(registry, card)
    text = registry.artifacts.read_verified(saved.path, saved.sha256).decode()
    for fact in (
        digest,
        COMMIT,
        "holdout/age\\_65\\_plus",  # Markdown: underscores escaped
        "0.91",
        "penalty",
        "apr-1",
        "@challenger",
        "scikit-learn",
    ):
        assert fact in text
    assert "incomplete (missing: intended use, owner, limitations)" in text


def test_editing_the_fields_completes_the_card(registry: RegistryService, name: str) -> None:
    register_from_run(registry, name)
    first = update_card(registry, registry.store, name, 1, {"owner": "risk-team"})
    assert not first.completed
    assert registry.get_version(name, 1).tags["conveyor.card.completed"] == "false"
    fields = {"intended_use": "Rank customers by churn risk.", "limitations": "Not for minors."}
    second = update_card(registry, registry.store, name, 1, fields)
    tags = registry.get_version(name, 1).tags
    assert second.completed and tags["conveyor.card.completed"] == "true"
    assert (tags["conveyor.card.path"], tags["conveyor.card.sha256"]) == (second.path, second.sha256)
    assert "Not for minors." in registry.artifacts.read_bytes(second.html_path).decode()

    assert set_card_fields(registry, name, 1, {"limitations": ""}) == {
        "owner": "risk-team",
        "intended_use": "Rank customers by churn risk.",
    }
    assert not build_card(registry, registry.store, name, 1).completed
    with pytest.raises(InvalidInput, match="editable fields are intended_use, limitations, owner"):
        set_card_fields(registry, name, 1, {"colour": "blue"})


def test_user_text_is_escaped(registry: RegistryService, name: str, model_dir: Path) -> None:
    registry.create_model(name)
    registry.create_version(name, str(model_dir))
    attack = "<script>alert('x')</script> | & more\n## Approved [by the board](http://evil.example)"
    saved = update_card(registry, registry.store, name, 1, {"intended_use": attack})
    page = registry.artifacts.read_bytes(saved.html_path).decode()
    markdown = registry.artifacts.read_bytes(saved.path).decode()
    assert "<script>" not in page and "<script>" not in markdown
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; | &amp; more" in page
    assert "&lt;script&gt;alert('x')&lt;/script&gt; \\| &amp; more" in markdown
    # No heading or link can be slipped into the Markdown either.
    assert "\n## Approved" not in markdown
    assert not re.search(r"(?<!\\)\]\(http", markdown)
    assert "\\## Approved \\[by the board\\](http://evil.example)" in markdown
    assert "default-src 'none'" in page and not re.search(r"(src|href)\s*=", page)


def test_every_regeneration_is_kept(registry: RegistryService, name: str, model_dir: Path) -> None:
    registry.create_model(name)
    registry.create_version(name, str(model_dir))
    first = update_card(registry, registry.store, name, 1, {"owner": "alice"})
    second = update_card(registry, registry.store, name, 1, {"owner": "bob"})
    folder = f"registry/{name}/versions/1"
    assert (first.path, second.path) == (f"{folder}/card-1.md", f"{folder}/card-2.md")
    assert second.html_path == f"{folder}/card-2.html"
    assert "alice" in registry.artifacts.read_verified(first.path, first.sha256).decode()
    assert "bob" in registry.artifacts.read_verified(second.path, second.sha256).decode()
    assert registry.get_version(name, 1).tags["conveyor.card.path"] == second.path


def test_card_of_a_version_without_a_run(registry: RegistryService, name: str, model_dir: Path) -> None:
    registry.create_model(name)
    registry.create_version(name, str(model_dir))
    card = build_card(registry, registry.store, name, 1)
    assert (card.run_id, card.run_found, card.params, card.datasets) == (None, False, {}, ())
    saved = save_card(registry, card)
    assert "not registered from a run" in registry.artifacts.read_bytes(saved.path).decode()


def test_cli_card(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("CONVEYOR_TRACKING_URI", "CONVEYOR_DATABASE_URL", "CONVEYOR_ARTIFACT_ROOT"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("CONVEYOR_HOME", str(tmp_path))
    features = np.arange(12.0).reshape(6, 2)
    models.save(LogisticRegression().fit(features, [0, 1] * 3), tmp_path / "m")
    runner = CliRunner()
    assert runner.invoke(app, ["registry", "create", "churn"]).exit_code == 0
    assert runner.invoke(app, ["registry", "register", "churn", str(tmp_path / "m")]).exit_code == 0

    copy = tmp_path / "card.html"
    sets = ["--set", "owner=risk", "--set", "intended_use=churn", "--set", "limitations=none known"]
    result = runner.invoke(
        app, ["registry", "card", "churn", "1", "--format", "html", "-o", str(copy), *sets]
    )
    assert result.exit_code == 0, result.output
    printed = Path(result.stdout.strip())
    assert printed.is_absolute() and printed.read_bytes() == copy.read_bytes()
    assert printed.as_posix().endswith("registry/churn/versions/1/card-1.html")
    assert "none known" in copy.read_text() and copy.read_text().startswith("<!DOCTYPE html>")

    again = runner.invoke(app, ["registry", "card", "churn", "1", "--json"])
    assert again.exit_code == 0, again.output
    saved = json.loads(again.stdout)
    assert (saved["number"], saved["completed"], saved["path"]) == (
        2,
        True,
        "registry/churn/versions/1/card-2.md",
    )

    bad = runner.invoke(app, ["registry", "card", "churn", "1", "--set", "nonsense"])
    assert bad.exit_code == 1 and "is not FIELD=VALUE" in bad.output


def test_datasets_are_split_by_context(registry: RegistryService, name: str) -> None:
    register_from_run(registry, name)
    run_id = registry.get_version(name, 1).run_id
    assert run_id is not None
    frame = pd.DataFrame({"x": [1.0, 2.0]})
    client = Client()
    try:
        client.log_input(run_id, frame, name="fit-set", context="Train")
        client.log_input(run_id, frame.assign(x=[3.0, 4.0]), name="holdout-set", context="holdout")
        client.log_input(run_id, frame.assign(x=[5.0, 6.0]), name="val-set", context="validation")
        client.flush()
    finally:
        client.close()
    card = build_card(registry, registry.store, name, 1)
    split = {d.name: d.is_evaluation for d in card.datasets}
    # No context ("customers") or an unknown one counts as training data.
    assert split == {"customers": False, "fit-set": False, "holdout-set": True, "val-set": True}
    text = registry.artifacts.read_bytes(save_card(registry, card).path).decode()
    training, evaluation = text.split("## Training data")[1].split("## Evaluation data")
    assert "customers" in training and "fit-set" in training and "holdout-set" not in training
    evaluation = evaluation.split("## ")[0]
    assert "holdout-set" in evaluation and "val-set" in evaluation and "fit-set" not in evaluation


def test_card_location_is_openable(tmp_path: Path) -> None:
    from conveyor.artifacts import ArtifactStore

    local = ArtifactStore(str(tmp_path))
    assert local.display_location("registry/a/card-1.md") == (tmp_path / "registry/a/card-1.md").as_posix()
    remote = ArtifactStore("memory://cards/root")
    assert remote.display_location("registry/a/card-1.md") == "memory://cards/root/registry/a/card-1.md"
