"""An identity service on a fresh SQLite store per test, and a few principals to act as."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.identity import IdentityService, RequestContext
from conveyor.store.sql.store import SqlStore


@pytest.fixture
def sql_store(tmp_path: Path) -> Iterator[SqlStore]:
    store = SqlStore(f"sqlite:///{tmp_path / 'conveyor.db'}").open()
    yield store
    store.close()


@pytest.fixture
def identity(sql_store: SqlStore) -> IdentityService:
    return IdentityService.for_store(sql_store)


@pytest.fixture
def local() -> RequestContext:
    return RequestContext.local()
