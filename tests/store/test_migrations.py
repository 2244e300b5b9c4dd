"""The Alembic history builds exactly the schema in ``schema.py``, and upgrades keep data."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, make_url
from sqlalchemy import exc as sa_exc

from conveyor.errors import BackendUnavailable
from conveyor.store.sql import migrations
from conveyor.store.sql.audit import AuditEvent, AuditLog, append_events
from conveyor.store.sql.logged_models import SqlLoggedModelStore
from conveyor.store.sql.schema import metadata
from conveyor.store.sql.store import SqlStore


@pytest.fixture
def empty_postgres_url(postgres_url: str) -> Iterator[str]:
    """A database of this test's own beside the session's, for walks that start below head."""
    name = f"conveyor_walk_{uuid.uuid4().hex[:10]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _schema_drift(url: str) -> list[object]:
    engine = create_engine(url)
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_migrations_match_models(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    SqlStore(url).open().close()
    assert _schema_drift(url) == []


def test_every_revision_upgrades_with_data_kept(tmp_path: Path) -> None:
    """Data written by the first released schema survives every later migration."""
    url = f"sqlite:///{tmp_path / 'walk.db'}"
    engine = create_engine(url)
    first = list(ScriptDirectory.from_config(migrations.alembic_config()).walk_revisions())[-1]
    with engine.connect() as conn:
        command.upgrade(migrations.alembic_config(conn), first.revision)
        conn.exec_driver_sql(
            "INSERT INTO runs (id, run_uuid, experiment_id, name, user_id, status, start_time, "
            "artifact_uri, lifecycle_stage) VALUES (7, 'a1b2c3', 0, 'old', 'ana', 'FINISHED', 5, "
            "'mlflow-artifacts:/0/a1b2c3/artifacts', 'active')"
        )
        conn.exec_driver_sql("INSERT INTO params (run_id, key, value) VALUES (7, 'p', 'v')")
        conn.exec_driver_sql(
            "INSERT INTO metrics (run_id, key, step, timestamp, value, is_nan) VALUES (7, 'm', 0, 1, 2.5, 0)"
        )
        conn.commit()
    store = SqlStore(url).open(upgrade=True)
    run = store.get_run("a1b2c3")
    assert (run.info.run_name, run.params) == ("old", {"p": "v"})
    assert [m.value for m in store.get_metric_history("a1b2c3", "m").items] == [2.5]
    with engine.connect() as conn:
        assert migrations.current_revision(conn) == migrations.head_revision()
    store.close()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_upgrade_from_0001_backfills_run_outputs(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Models logged before run outputs had a table stay their source run's outputs, at step 0."""
    url = (
        f"sqlite:///{tmp_path / 'outputs.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("empty_postgres_url")
    )
    engine = create_engine(url)
    with engine.connect() as conn:
        command.upgrade(migrations.alembic_config(conn), "0001")
        conn.exec_driver_sql(
            "INSERT INTO runs (id, run_uuid, experiment_id, name, user_id, status, start_time, "
            "artifact_uri, lifecycle_stage) VALUES (7, 'a1b2c3', 0, 'old', 'ana', 'FINISHED', 5, "
            "'mlflow-artifacts:/0/a1b2c3/artifacts', 'active')"
        )
        for model_id, source in [("m-1", "'a1b2c3'"), ("m-2", "NULL"), ("m-3", "'gone'")]:
            conn.exec_driver_sql(
                "INSERT INTO logged_models (model_id, experiment_id, name, artifact_location, status, "
                "source_run_id, creation_time, last_updated_time, lifecycle_stage) VALUES "
                f"('{model_id}', 0, 'model', 'mlflow-artifacts:/0/models/{model_id}/artifacts', 'READY', "
                f"{source}, 5, 5, 'active')"
            )
        conn.commit()
    store = SqlStore(url).open(upgrade=True)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT run_id, model_id, step FROM run_outputs").all()
    assert [tuple(r) for r in rows] == [(7, "m-1", 0)]
    assert SqlLoggedModelStore(store).outputs_for_runs(["a1b2c3"]) == {"a1b2c3": [("m-1", 0)]}
    store.close()
    engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_upgrade_0003_to_0004_adds_an_append_only_audit_log(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Existing data stays, the log starts empty at seq 1, and its triggers are in place."""
    url = (
        f"sqlite:///{tmp_path / 'audit.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("empty_postgres_url")
    )
    engine = create_engine(url)
    with engine.connect() as conn:
        command.upgrade(migrations.alembic_config(conn), "0003")
        conn.exec_driver_sql(
            "INSERT INTO runs (id, run_uuid, experiment_id, name, user_id, status, start_time, "
            "artifact_uri, lifecycle_stage) VALUES (7, 'a1b2c3', 0, 'old', 'ana', 'FINISHED', 5, "
            "'mlflow-artifacts:/0/a1b2c3/artifacts', 'active')"
        )
        conn.commit()
    store = SqlStore(url).open(upgrade=True)
    assert store.get_run("a1b2c3").info.run_name == "old"
    log = AuditLog(store)
    record = log.append(
        AuditEvent(
            actor="ana", actor_kind="user", action="run.update", resource_type="run", resource_id="a1b2c3"
        )
    )
    assert (record.seq, log.verify().records) == (1, 1)
    with pytest.raises(sa_exc.DBAPIError, match="append-only"), engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM audit_log")
    store.close()
    with engine.connect() as conn:
        command.downgrade(migrations.alembic_config(conn), "0003")
        conn.commit()
        assert "audit_log" not in inspect(conn).get_table_names()
        assert migrations.current_revision(conn) == "0003"
        command.upgrade(migrations.alembic_config(conn), "head")  # the downgrade left nothing behind
        conn.commit()
    engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_0009_drops_audit_indexes_and_keeps_records_and_triggers(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Plain DROP INDEX: no table rebuild, so the records and the append-only triggers stay."""
    url = (
        f"sqlite:///{tmp_path / 'a.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("empty_postgres_url")
    )
    engine = create_engine(url)
    with engine.connect() as conn:
        command.upgrade(migrations.alembic_config(conn), "0008")
        conn.commit()
    event = AuditEvent(
        actor="ana", actor_kind="user", action="run.update", resource_type="run", resource_id="r"
    )
    with engine.begin() as conn:
        append_events(conn, [event])
    with engine.connect() as conn:
        command.upgrade(migrations.alembic_config(conn), "0009")
        conn.commit()
        names = {ix["name"] for ix in inspect(conn).get_indexes("audit_log")}
        assert names == {"ix_audit_log_resource_type_resource_id"}
    with pytest.raises(sa_exc.DBAPIError, match="append-only"), engine.begin() as conn:
        conn.exec_driver_sql("UPDATE audit_log SET actor = 'mallory'")
    store = SqlStore(url).open()  # to head, which a downgrade then unwinds as well
    assert AuditLog(store).verify().records == 1
    store.close()
    with engine.connect() as conn:
        command.downgrade(migrations.alembic_config(conn), "0008")
        conn.commit()
        assert {"ix_audit_log_actor", "ix_audit_log_time"} <= {
            ix["name"] for ix in inspect(conn).get_indexes("audit_log")
        }
    engine.dispose()


def test_outdated_schema_without_upgrade_names_the_command(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.connect() as conn:
        command.upgrade(migrations.alembic_config(conn), "head")
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'f00dfeed'")
        conn.commit()
    with pytest.raises(BackendUnavailable, match="conveyor db upgrade"):
        SqlStore(url).open(upgrade=False)


def test_0010_puts_existing_data_in_the_default_workspace_and_downgrades_without_loss(
    tmp_path: Path,
) -> None:
    """Old experiments join ``default``; the SQLite downgrade rebuilds ``experiments`` without
    cascading the rebuild's DROP into the runs that point at it."""
    url = f"sqlite:///{tmp_path / 'w.db'}"
    engine = create_engine(url)
    with engine.connect() as conn:
        command.upgrade(migrations.alembic_config(conn), "0009")
        conn.exec_driver_sql(
            "INSERT INTO runs (id, run_uuid, experiment_id, name, user_id, status, start_time, "
            "artifact_uri, lifecycle_stage) VALUES (7, 'a1b2c3', 0, 'old', 'ana', 'FINISHED', 5, "
            "'mlflow-artifacts:/0/a1b2c3/artifacts', 'active')"
        )
        conn.commit()
        command.upgrade(migrations.alembic_config(conn), "0010")
        conn.commit()
        assert conn.exec_driver_sql("SELECT workspace FROM experiments").scalars().all() == ["default"]
        command.downgrade(migrations.alembic_config(conn), "0009")
        conn.commit()
        assert "workspace" not in {c["name"] for c in inspect(conn).get_columns("experiments")}
        assert conn.exec_driver_sql("SELECT run_uuid FROM runs").scalars().all() == ["a1b2c3"]
    engine.dispose()


def test_0011_moves_require_reproducible_out_of_the_metrics_json(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    engine = create_engine(url)
    folded = (
        '{"thresholds": [{"metric": "holdout/auc", "op": ">=", "value": 0.8}], "require_reproducible": true}'
    )
    with engine.connect() as conn:
        command.upgrade(migrations.alembic_config(conn), "0010")
        for alias, metrics in [("champion", folded), ("production", "[]")]:
            conn.exec_driver_sql(
                "INSERT INTO alias_policies (scope, alias, protected, metrics, require_model_card, "
                "expiry_hours, updated_by, updated_at) "
                f"VALUES ('*', '{alias}', 1, '{metrics}', 0, 72, 'ana', 1)"
            )
        conn.commit()
        command.upgrade(migrations.alembic_config(conn), "0011")
        conn.commit()
        rows = dict(conn.exec_driver_sql("SELECT alias, require_reproducible FROM alias_policies").all())
        assert rows == {"champion": 1, "production": 0}
        metrics = conn.exec_driver_sql(
            "SELECT metrics FROM alias_policies WHERE alias = 'champion'"
        ).scalar_one()
        assert metrics == '[{"metric": "holdout/auc", "op": ">=", "value": 0.8}]'
        command.downgrade(migrations.alembic_config(conn), "0010")
        conn.commit()
        restored = conn.exec_driver_sql(
            "SELECT metrics FROM alias_policies WHERE alias = 'champion'"
        ).scalar_one()
        assert '"require_reproducible": true' in restored
    engine.dispose()
