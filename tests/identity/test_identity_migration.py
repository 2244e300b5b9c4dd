"""Revision 0006 adds the identity tables with a ``default`` workspace, and removes them again."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import create_engine, inspect

from conveyor.store.sql import migrations

IDENTITY_TABLES = {"principals", "api_tokens", "passwords", "workspaces", "role_bindings"}


def test_upgrade_to_0006_and_back(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    with engine.connect() as conn:
        command.upgrade(migrations.alembic_config(conn), "0005")
        conn.commit()
        assert not IDENTITY_TABLES & set(inspect(conn).get_table_names())
        command.upgrade(migrations.alembic_config(conn), "0006")
        conn.commit()
        assert set(inspect(conn).get_table_names()) >= IDENTITY_TABLES
        assert conn.exec_driver_sql("SELECT name FROM workspaces").scalars().all() == ["default"]
        command.downgrade(migrations.alembic_config(conn), "0005")
        conn.commit()
        assert not IDENTITY_TABLES & set(inspect(conn).get_table_names())
    engine.dispose()
