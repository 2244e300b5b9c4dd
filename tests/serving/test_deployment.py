"""Deployment files: what is accepted, and errors that name the wrong key by its place."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.errors import InvalidInput
from conveyor.serving import deployment_from_uris, load_deployment, parse_deployment
from conveyor.serving.deployment import DEPLOYMENT_VARIABLE, deployment_from_environment


def test_a_full_deployment_file(tmp_path: Path) -> None:
    path = tmp_path / "deployment.yaml"
    path.write_text(
        """
models:
  - name: churn
    variants:
      - {name: champion, uri: "models:/churn@champion", weight: 90}
      - {name: challenger, uri: "models:/churn@challenger", weight: 10}
    shadow: {name: candidate, uri: "models:/churn/7", mirror: 0.25}
    batching: {max_batch_size: 64, max_wait_ms: 2}
    timeout_s: 5
    max_body_bytes: 100000
    allow_nan: [income]
  - name: fraud
    uri: ./models/fraud
default_model: fraud
prediction_log: {enabled: true, sample_rate: 0.1}
poll_interval_s: 2
seed: 7
"""
    )
    deployment = load_deployment(path)
    churn = deployment.model("churn")
    assert [(v.name, v.weight) for v in churn.served_variants()] == [("champion", 90), ("challenger", 10)]
    assert churn.shadow is not None and churn.shadow.mirror == 0.25
    assert churn.batching.max_batch_size == 64 and churn.allow_nan == ("income",)
    assert [v.name for v in deployment.model("fraud").served_variants()] == ["default"]
    assert deployment.default == "fraud"
    assert deployment.prediction_log.sample_rate == 0.1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"models": []}, "models: Tuple should have at least 1 item"),
        (
            {"models": [{"name": "a", "uri": "x", "timeout": 3}]},
            "models[0].timeout: Extra inputs are not permitted",
        ),
        ({"models": [{"name": "a"}]}, "models[0]: give either 'uri' or 'variants'"),
        (
            {"models": [{"name": "a", "variants": [{"name": "v", "uri": "x", "weight": -1}]}]},
            "models[0].variants[0].weight: Input should be greater than or equal to 0",
        ),
        (
            {"models": [{"name": "a", "variants": [{"name": "v", "uri": "x"}, {"name": "v", "uri": "y"}]}]},
            "variant names must be unique",
        ),
        ({"models": [{"name": "a", "uri": "x", "shadow": {"uri": "y", "mirror": 0}}]}, "greater than 0"),
        ({"models": [{"name": "a/b", "uri": "x"}]}, "models[0].name: String should match pattern"),
        ({"models": [{"name": "a", "uri": "x"}, {"name": "a", "uri": "y"}]}, "model names must be unique"),
        ({"models": [{"name": "a", "uri": "x"}], "default_model": "b"}, "default_model 'b' is not one of"),
        ({"models": [{"name": "a", "variants": [{"name": "v", "uri": "x", "weight": 0}]}]}, "weight above 0"),
        ([1, 2], "expected a mapping"),
    ],
)
def test_invalid_deployments_name_the_place(data: object, message: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_deployment(data, source="d.yaml")
    assert message in str(raised.value)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="Cannot read the deployment file"):
        load_deployment(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [unclosed")
    with pytest.raises(InvalidInput, match="not valid YAML"):
        load_deployment(bad)


def test_models_from_uris_are_named_after_them() -> None:
    deployment = deployment_from_uris(["models:/churn@champion", "models:/fraud/3", "/srv/models/my model/"])
    assert [m.name for m in deployment.models] == ["churn", "fraud", "my-model"]
    with pytest.raises(InvalidInput, match="model names must be unique"):
        deployment_from_uris(["models:/churn@champion", "models:/churn/2"])
    with pytest.raises(InvalidInput, match="at least one model URI"):
        deployment_from_uris([])


def test_the_environment_round_trip(monkeypatch: pytest.MonkeyPatch) -> None:
    deployment = deployment_from_uris(["models:/churn@champion"], seed=3)
    monkeypatch.setenv(DEPLOYMENT_VARIABLE, deployment.to_json())
    assert deployment_from_environment() == deployment
    monkeypatch.delenv(DEPLOYMENT_VARIABLE)
    with pytest.raises(InvalidInput, match="conveyor serve"):
        deployment_from_environment()
