"""Every store mutation appends its audit record in the same transaction, with the right actor.

On SQLite and PostgreSQL: each kind of tracking, logged-model, pipeline and schedule
mutation leaves the expected action, a refused mutation leaves nothing, and the chain
verifies after a mixed workload. Through the server the records carry the client's
address, the request id and (with ``--auth``) the principal, also for the MLflow client.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from sqlalchemy import create_engine
from starlette.testclient import TestClient

from conveyor.artifacts import ArtifactStore
from conveyor.config import Settings
from conveyor.errors import AlreadyExists, InvalidInput
from conveyor.identity import IdentityService, RequestContext, Role
from conveyor.server.app import create_app
from conveyor.store.actor import AuditActor, acting_as, current_actor, local_actor
from conveyor.store.entities import ArtifactRecord, Dataset, DatasetInput, Metric, Param, RunStatus, Tag
from conveyor.store.sql.audit import AuditLog, AuditRecord
from conveyor.store.sql.logged_models import LoggedModelStatus, SqlLoggedModelStore
from conveyor.store.sql.pipeline_records import PipelineRecords, PipelineRun, RunState
from conveyor.store.sql.schedules import ScheduleStore
from conveyor.store.sql.store import SqlStore
from conveyor.testing.processes import stop_process
from conveyor.testing.servers import start_server
from conveyor.tracking.service import TrackingService

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
MLFLOW = "/api/2.0/mlflow"


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    """A fresh database per test, so its audit log holds this test's records only."""
    if request.param == "sqlite":
        opened = SqlStore(f"sqlite:///{tmp_path / 'wiring.db'}").open()
        yield opened
        opened.close()
        return
    postgres_url: str = request.getfixturevalue("postgres_url")
    name = f"conveyor_wiring_{uuid.uuid4().hex[:10]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    opened = SqlStore(f"{postgres_url.rsplit('/', 1)[0]}/{name}").open()
    yield opened
    opened.close()
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def records(store: SqlStore) -> list[AuditRecord]:
    return AuditLog(store).read(limit=10_000)


def actions(store: SqlStore, resource_id: str | None = None) -> list[str]:
    return [r.action for r in records(store) if resource_id is None or r.resource_id == resource_id]


def test_experiment_and_run_mutations_leave_their_records(store: SqlStore) -> None:
    exp = store.create_experiment("audited", tags={"team": "a"})
    store.rename_experiment(exp, "audited-2")
    store.set_experiment_tag(exp, "k", "v")
    store.delete_experiment_tag(exp, "k")
    run = store.create_run(exp, run_name="r").info.run_id
    store.log_batch(run, [Metric("loss", 0.5, 0, 0)], [Param("lr", "0.1")], [Tag("t", "1")])
    store.delete_tag(run, "t")
    store.log_inputs(run, [DatasetInput(Dataset("d", "abc", "local", "/d"))])
    store.update_run_info(run, RunStatus.FINISHED, 10, None)
    store.record_artifact(ArtifactRecord(f"{exp}/{run}/artifacts/m.txt", 3, "0" * 64, run))
    assert store.delete_artifact_records(f"{exp}/{run}/artifacts/m.txt") == 1
    store.delete_run(run)
    store.restore_run(run)
    store.delete_experiment(exp)
    store.restore_experiment(exp)
    store.delete_run(run)
    store.hard_delete_run(run)

    assert actions(store, exp) == [
        "experiment.create",
        "experiment.rename",
        "experiment.tag.set",
        "experiment.tag.delete",
        "experiment.delete",
        "experiment.restore",
    ]
    assert actions(store, run) == [
        "run.create",
        "run.params.log",
        "run.tags.set",
        "run.metrics.log",
        "run.tag.delete",
        "run.inputs.log",
        "run.update",
        "run.delete",
        "run.restore",
        "run.delete",
        "run.purge",
    ]
    assert actions(store, f"{exp}/{run}/artifacts/m.txt") == ["artifact.record", "artifact.delete"]
    rename = next(r for r in records(store) if r.action == "experiment.rename")
    assert rename.before_digest and rename.after_digest and rename.before_digest != rename.after_digest


def test_a_batch_is_one_record_per_kind_with_counts_and_keys(store: SqlStore) -> None:
    run = store.create_run(store.create_experiment("batch")).info.run_id
    points = [Metric(f"m{i % 3}", float(i), i, i) for i in range(300)]
    store.log_batch(run, points, [Param(f"p{i}", "x") for i in range(5)])
    store.log_metrics(run, points[:10])
    logged = [r for r in records(store) if r.action.startswith("run.") and r.action != "run.create"]
    assert [r.action for r in logged] == ["run.params.log", "run.metrics.log", "run.metrics.log"]
    assert logged[0].details == {"run_id": run, "count": 5, "keys": [f"p{i}" for i in range(5)]}
    assert logged[1].details == {"run_id": run, "points": 300, "keys": ["m0", "m1", "m2"]}
    assert logged[2].details is not None and logged[2].details["points"] == 10


def test_many_long_keys_are_counted_not_listed(store: SqlStore) -> None:
    run = store.create_run(store.create_experiment("wide")).info.run_id
    store.log_batch(run, [Metric("k" * 200 + str(i), 1.0, 0, 0) for i in range(100)])
    details = next(r for r in records(store) if r.action == "run.metrics.log").details
    assert details is not None
    assert details["points"] == 100 and details["keys_omitted"] == 100 - len(details["keys"]) > 0


def test_a_refused_mutation_leaves_no_record(store: SqlStore) -> None:
    exp = store.create_experiment("refused")
    store.create_experiment("taken")
    run = store.create_run(exp).info.run_id
    store.log_batch(run, params=[Param("lr", "0.1")])
    before = len(records(store))
    with pytest.raises(InvalidInput):
        store.log_batch(run, [Metric("m", 1.0, 0, 0)], [Param("lr", "0.2")])
    with pytest.raises(AlreadyExists):
        store.rename_experiment(exp, "taken")
    assert len(records(store)) == before


def test_models_pipelines_and_schedules_leave_their_records(store: SqlStore) -> None:
    models = SqlLoggedModelStore(store)
    model = models.create(store.create_experiment("models"), "m", params={"a": "1"}).model_id
    models.finalize(model, LoggedModelStatus.READY)
    models.set_tags(model, {"t": "1"})
    models.delete_tag(model, "t")
    models.log_params(model, {"b": "2"})
    models.delete(model)
    models.hard_delete(model)
    assert actions(store, model) == [
        "logged_model.create",
        "logged_model.finalize",
        "logged_model.tags.set",
        "logged_model.tag.delete",
        "logged_model.params.log",
        "logged_model.delete",
        "logged_model.purge",
    ]

    pipeline = PipelineRun(
        id=uuid.uuid4().hex,
        pipeline="p",
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
    PipelineRecords(store).create_run(pipeline, [])
    PipelineRecords(store).finish_run(pipeline.id, RunState.SUCCEEDED, 2)
    assert actions(store, pipeline.id) == ["pipeline_run.create", "pipeline_run.finish"]

    schedules = ScheduleStore(store)
    schedule = schedules.create("nightly", "mod:p", "0 2 * * *").schedule_id
    schedules.set_enabled("nightly", False)
    schedules.set_enabled("nightly", True)
    schedules.delete("nightly")
    assert actions(store, schedule) == [
        "schedule.create",
        "schedule.disable",
        "schedule.enable",
        "schedule.delete",
    ]


def test_the_chain_verifies_after_a_mixed_workload(store: SqlStore) -> None:
    for i in range(3):
        exp = store.create_experiment(f"mixed-{i}")
        run = store.create_run(exp).info.run_id
        store.log_batch(run, [Metric("m", 1.0, 0, 0)], [Param("p", "v")], [Tag("t", "v")])
        SqlLoggedModelStore(store).create(exp)
        store.delete_run(run)
    result = AuditLog(store).verify()
    assert result.ok and result.records == len(records(store)) == 21


def test_the_actor_is_the_os_user_unless_one_is_set(store: SqlStore) -> None:
    assert current_actor() == local_actor() and local_actor().kind == "user"
    store.create_experiment("local")
    with acting_as(AuditActor("robot", "service", "10.0.0.1", "default", "req-1")):
        store.create_experiment("remote")
    local, remote = records(store)
    assert (local.actor, local.actor_kind, local.source) == (local_actor().name, "user", None)
    assert (remote.actor, remote.actor_kind, remote.source, remote.request_id) == (
        "robot",
        "service",
        "10.0.0.1",
        "req-1",
    )
    assert current_actor() == local_actor()


def test_requests_carry_source_and_request_id(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'server.db'}").open()
    service = TrackingService(store, ArtifactStore(str(tmp_path / "artifacts")))
    with TestClient(create_app(Settings(), service=service)) as client:
        response = client.post(
            f"{MLFLOW}/experiments/create", json={"name": "x"}, headers={"X-Request-ID": "abc"}
        )
        assert response.status_code == 200, response.text
        assert response.headers["x-request-id"] == "abc"
        generated = client.post(f"{MLFLOW}/experiments/create", json={"name": "y"})
    first, second = records(store)
    assert (first.actor, first.actor_kind, first.source, first.request_id) == (
        "anonymous",
        "anonymous",
        "testclient",
        "abc",
    )
    assert second.request_id == generated.headers["x-request-id"] != "abc"
    store.close()


def test_authenticated_requests_name_the_principal(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'auth.db'}").open()
    identity, local = IdentityService.for_store(store), RequestContext.local()
    identity.create_user("cora", local)
    identity.grant("cora", Role.CONTRIBUTOR, local)
    token = identity.issue_token("cora", local).secret
    service = TrackingService(store, ArtifactStore(str(tmp_path / "artifacts")))
    with TestClient(create_app(Settings(auth=True), service=service)) as client:
        headers = {"Authorization": f"Bearer {token}", "X-Request-ID": "req-cora"}
        response = client.post(f"{MLFLOW}/experiments/create", json={"name": "by-cora"}, headers=headers)
        assert response.status_code == 200, response.text
    created = next(r for r in records(store) if r.action == "experiment.create")
    assert (created.actor, created.actor_kind, created.source, created.request_id, created.workspace) == (
        "cora",
        "user",
        "testclient",
        "req-cora",
        "default",
    )
    store.close()


def test_the_mlflow_client_through_a_live_server_leaves_records(tmp_path: Path) -> None:
    url, process = start_server(tmp_path)
    try:
        client = mlflow.MlflowClient(tracking_uri=url)
        exp = client.create_experiment("via-mlflow")
        run = client.create_run(exp).info.run_id
        client.log_batch(run, metrics=[mlflow.entities.Metric("m", 1.0, 0, 0)])
        client.set_terminated(run)
    finally:
        stop_process(process)
    store = SqlStore(f"sqlite:///{tmp_path / 'conveyor.db'}").open()
    found = [r for r in records(store) if r.resource_id in {exp, run}]
    assert [r.action for r in found] == ["experiment.create", "run.create", "run.metrics.log", "run.update"]
    assert {(r.actor, r.source) for r in found} == {("anonymous", "127.0.0.1")}
    assert all(r.request_id for r in found)
    assert AuditLog(store).verify().ok
    store.close()
