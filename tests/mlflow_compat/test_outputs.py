"""Run outputs (``runs/outputs``): any run may output any logged model, at a step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import mlflow
import pytest
from mlflow.entities import LoggedModelOutput
from mlflow.exceptions import MlflowException

pytestmark = pytest.mark.slow


def _outputs(client: mlflow.MlflowClient, run_id: str) -> list[tuple[str, int]]:
    return [(o.model_id, o.step) for o in client.get_run(run_id).outputs.model_outputs]


def test_a_later_run_outputs_a_model_from_another_run(
    client: mlflow.MlflowClient, experiment_id: str
) -> None:
    trainer = client.create_run(experiment_id).info.run_id
    model = client.create_logged_model(experiment_id, name="model", source_run_id=trainer)
    client.log_outputs(trainer, [LoggedModelOutput(model.model_id, step=0)])
    tuner = client.create_run(experiment_id).info.run_id

    client.log_outputs(tuner, [LoggedModelOutput(model.model_id, step=3)])
    client.log_outputs(tuner, [LoggedModelOutput(model.model_id, step=3)])  # a retry changes nothing

    assert _outputs(client, tuner) == [(model.model_id, 3)]
    assert _outputs(client, trainer) == [(model.model_id, 0)]
    assert client.get_logged_model(model.model_id).source_run_id == trainer
    [found] = client.search_runs([experiment_id], filter_string=f"attributes.run_id = '{tuner}'")
    assert [(o.model_id, o.step) for o in found.outputs.model_outputs] == [(model.model_id, 3)]


def test_one_run_outputs_a_model_at_several_steps(client: mlflow.MlflowClient, experiment_id: str) -> None:
    run_id = client.create_run(experiment_id).info.run_id
    first = client.create_logged_model(experiment_id, name="first")
    second = client.create_logged_model(experiment_id, name="second")

    client.log_outputs(
        run_id,
        [LoggedModelOutput(second.model_id, step=5), LoggedModelOutput(first.model_id, step=1)],
    )
    client.log_outputs(run_id, [LoggedModelOutput(first.model_id, step=5)])

    assert _outputs(client, run_id) == [(first.model_id, 1), (first.model_id, 5), (second.model_id, 5)]
    # A model logged without a source run takes the first run that outputs it.
    assert client.get_logged_model(first.model_id).source_run_id == run_id


def test_outputs_need_an_active_run_and_existing_models(
    client: mlflow.MlflowClient, experiment_id: str
) -> None:
    run_id = client.create_run(experiment_id).info.run_id
    model = client.create_logged_model(experiment_id, name="model")

    with pytest.raises(MlflowException) as unknown:
        client.log_outputs(run_id, [LoggedModelOutput(model.model_id, 0), LoggedModelOutput("m-absent", 0)])
    assert unknown.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert _outputs(client, run_id) == []  # all or nothing

    client.delete_run(run_id)
    with pytest.raises(MlflowException) as deleted:
        client.log_outputs(run_id, [LoggedModelOutput(model.model_id, 0)])
    assert deleted.value.error_code == "INVALID_PARAMETER_VALUE"  # as MLflow answers
    assert "must be in the 'active' state" in deleted.value.message


def test_gc_removes_a_deleted_logged_model_and_its_files(
    client: mlflow.MlflowClient, experiment_id: str, server: Any, tmp_path: Path
) -> None:
    """MLflow's gc leaves deleted logged models' rows and files behind (mlflow #17240); ours does not."""
    run_id = client.create_run(experiment_id).info.run_id
    doomed = client.create_logged_model(experiment_id, name="doomed", source_run_id=run_id)
    kept = client.create_logged_model(experiment_id, name="kept", source_run_id=run_id)
    client.log_outputs(run_id, [LoggedModelOutput(doomed.model_id, step=0)])
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"\x07" * 1024)
    for model in (doomed, kept):
        client.log_model_artifacts(model.model_id, str(tmp_path))
    client.delete_logged_model(doomed.model_id)

    answer = httpx.post(f"{server.url}/api/conveyor/v1/gc", json={}).json()

    assert answer["model_ids"] == [doomed.model_id]
    assert not list((server.home / "artifacts").rglob(f"*{doomed.model_id}*"))
    assert list((server.home / "artifacts").rglob(f"{kept.model_id}/artifacts/weights.bin"))
    with pytest.raises(MlflowException, match="not found"):
        client.get_logged_model(doomed.model_id)
    assert _outputs(client, run_id) == []
