"""Session-wide fixtures: a scratch PostgreSQL database and a live Conveyor server.

PostgreSQL runs on 127.0.0.1:5432 on developer machines and in CI; each test session
creates its own database and drops it at the end, so runs never see each other's data.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from conveyor.testing.processes import stop_process
from conveyor.testing.servers import start_server

PG_ADMIN_DSN = os.environ.get("CONVEYOR_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    name = f"conveyor_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG_ADMIN_DSN, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is required on {PG_ADMIN_DSN} for the store tests: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    dsn = PG_ADMIN_DSN.rsplit("/", 1)[0]
    yield f"postgresql+psycopg://{dsn.split('://', 1)[1]}/{name}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url, process = start_server(tmp_path_factory.mktemp("live-server"))
    yield url
    stop_process(process)
