"""Workspaces isolate inside the queries: another workspace's objects are simply not there.

The store reads the caller's workspace from the acting context (the server sets it per
request), so these tests act as two teams on one database and check every way in: get by
id or name, search, count, write, artifacts, registry and pipeline runs. A local process
with no workspace set sees them all, as whoever can open the database can anyway.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.config import Settings
from conveyor.errors import ExperimentNotFound, NotFound, RunNotFound
from conveyor.registry import RegistryService
from conveyor.store.actor import AuditActor, acting_as
from conveyor.store.entities import ArtifactRecord, Metric, ViewType
from conveyor.store.sql.audit import AuditLog
from conveyor.store.sql.pipeline_records import PipelineRecords, PipelineRun, RunState
from tests.registry.conftest import save_model


@contextlib.contextmanager
def team(workspace: str) -> Iterator[None]:
    with acting_as(AuditActor(f"member-of-{workspace}", "user", "10.0.0.1", workspace)):
        yield


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def registry(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RegistryService]:
    monkeypatch.delenv("CONVEYOR_WORKSPACE", raising=False)
    monkeypatch.setenv("CONVEYOR_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    monkeypatch.setenv("CONVEYOR_DATABASE_URL", url or f"sqlite:///{tmp_path / 'w.db'}")
    service = RegistryService.from_settings(Settings())
    yield service
    service.store.close()


def _pipeline_run() -> PipelineRun:
    return PipelineRun(
        id=uuid.uuid4().hex,
        pipeline="nightly",
        target="mod:p",
        status=RunState.RUNNING,
        params={},
        spec={},
        executor="local",
        mode="run",
        host="h",
        user="u",
        python_version="3",
        packages_hash="x",
        start_time=1,
    )


def test_another_workspace_cannot_read_or_write_tracking_objects(registry: RegistryService) -> None:
    store = registry.store
    name = f"exp-{uuid.uuid4().hex[:8]}"
    with team("team-a"):
        experiment_id = store.create_experiment(name)
        run = store.create_run(experiment_id, "ana", 1, [], None)
        store.log_metric(run.info.run_id, Metric("loss", 0.5, 1, 0))
        path = f"{experiment_id}/{run.info.run_id}/artifacts/model.txt"
        store.record_artifact(ArtifactRecord(path=path, size=1, sha256="0" * 64, run_id=run.info.run_id))
    run_id = run.info.run_id
    with team("team-b"):
        with pytest.raises(ExperimentNotFound):
            store.get_experiment(experiment_id)
        assert store.get_experiment_by_name(name) is None
        assert name not in [e.name for e in store.search_experiments(ViewType.ALL).items]
        with pytest.raises(RunNotFound):
            store.get_run(run_id)
        with pytest.raises(RunNotFound):
            store.log_metric(run_id, Metric("loss", 9.0, 2, 1))
        with pytest.raises(RunNotFound):
            store.get_metric_history(run_id, "loss")
        assert store.search_runs([experiment_id]).items == []
        assert store.count_runs([experiment_id]) == 0
        assert store.get_artifact_record(path) is None
        assert store.list_artifact_records(f"{experiment_id}/") == []
        assert store.list_artifact_records("") == []
        assert store.delete_artifact_records(path) == 0
    with team("team-a"):
        assert [m.value for m in store.get_metric_history(run_id, "loss").items] == [0.5]
        assert store.get_artifact_record(path) is not None
        assert store.count_runs([experiment_id]) == 1
    # A local process with no workspace set is trusted with every workspace.
    assert store.get_run(run_id).info.run_id == run_id


def test_another_workspace_cannot_see_models_versions_or_aliases(
    registry: RegistryService, tmp_path: Path
) -> None:
    name = f"churn-{uuid.uuid4().hex[:8]}"
    with team("team-a"):
        registry.create_model(name)
        registry.create_version(name, str(save_model(tmp_path / "m", seed=0)))
        registry.set_alias(name, "challenger", 1)
        assert registry.get_model(name).workspace == "team-a"
    with team("team-b"):
        with pytest.raises(NotFound):
            registry.get_model(name)
        with pytest.raises(NotFound):
            registry.get_version_by_alias(name, "challenger")
        with pytest.raises(NotFound):
            registry.set_alias(name, "challenger", 1)
        assert name not in [m.name for m in registry.search_models(f"name = '{name}'").items]
        assert registry.search_versions(f"name = '{name}'").items == []
    with team("team-a"):
        assert registry.get_version_by_alias(name, "challenger").version == 1


def test_pipeline_runs_and_audit_records_carry_their_workspace(registry: RegistryService) -> None:
    records = PipelineRecords(registry.store)
    run = _pipeline_run()
    with team("team-a"):
        records.create_run(run, [])
        assert records.get_run(run.id).workspace == "team-a"
    with team("team-b"):
        with pytest.raises(NotFound):
            records.get_run(run.id)
        with pytest.raises(NotFound):
            records.get_run(run.id[:8])
        assert run.id not in [r.id for r in records.list_runs(limit=1000)]
    log = AuditLog(registry.store)
    assert [r.workspace for r in log.read(resource_id=run.id)] == ["team-a"]
    with team("team-b"):
        assert log.read(resource_id=run.id) == []


def test_names_stay_unique_across_workspaces(registry: RegistryService) -> None:
    """A name taken elsewhere is refused without saying where (documented limitation)."""
    name = f"exp-{uuid.uuid4().hex[:8]}"
    with team("team-a"):
        registry.store.create_experiment(name)
    with team("team-b"), pytest.raises(Exception, match="already exists"):
        registry.store.create_experiment(name)
