"""The store conformance suite over every back end: SQLite, PostgreSQL, REST (in-process and live)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from conveyor.artifacts import ArtifactStore
from conveyor.server.app import create_app
from conveyor.store import open_store
from conveyor.store.base import TrackingStore
from conveyor.store.rest import RestStore
from conveyor.testing.store_checks import TrackingStoreChecks
from conveyor.tracking.service import TrackingService


@pytest.fixture(scope="module")
def sqlite_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrackingStore]:
    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'conveyor.db'}")
    yield store
    store.close()


class TestSqlite(TrackingStoreChecks):
    @pytest.fixture
    def store(self, sqlite_store: TrackingStore) -> TrackingStore:
        return sqlite_store


@pytest.fixture(scope="module")
def postgres_store(postgres_url: str) -> Iterator[TrackingStore]:
    store = open_store(postgres_url)
    yield store
    store.close()


@pytest.fixture(scope="module")
def in_process_rest_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrackingStore]:
    home: Path = tmp_path_factory.mktemp("rest")
    backing = open_store(f"sqlite:///{home / 'conveyor.db'}")
    app = create_app(service=TrackingService(backing, ArtifactStore(str(home / "artifacts"))))
    rest = RestStore("http://testserver")
    with TestClient(app) as client:
        rest._client = client
        yield rest
    backing.close()


@pytest.fixture(scope="module")
def live_rest_store(live_server: str) -> Iterator[TrackingStore]:
    rest = RestStore(live_server)
    yield rest
    rest.close()


@pytest.mark.postgres
class TestPostgres(TrackingStoreChecks):
    @pytest.fixture
    def store(self, postgres_store: TrackingStore) -> TrackingStore:
        return postgres_store


class TestRestInProcess(TrackingStoreChecks):
    """The REST client against the app in this process: fast, same code path as production."""

    @pytest.fixture
    def store(self, in_process_rest_store: TrackingStore) -> TrackingStore:
        return in_process_rest_store


@pytest.mark.slow
class TestRestLive(TrackingStoreChecks):
    """The REST client against a real ``uvicorn`` server process over TCP."""

    @pytest.fixture
    def store(self, live_rest_store: TrackingStore) -> TrackingStore:
        return live_rest_store
