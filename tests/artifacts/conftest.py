"""Fixtures for artifact-store tests: a session-wide Azurite and its test container."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.testing.azurite import AzuriteHandle, start_azurite

#: The Makefile runs ``npm install --prefix .test-tools azurite@3`` at the repository root.
TOOLS_DIR = Path(__file__).resolve().parents[2] / ".test-tools"
AZURITE_CONTAINER = "conveyor-test"


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteHandle]:
    """A running Azurite; fails (never skips) when it cannot be installed or started."""
    handle = start_azurite(tmp_path_factory.mktemp("azurite"), tools_dir=TOOLS_DIR)
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="session")
def azurite_container(azurite: AzuriteHandle) -> str:
    """Name of a blob container that exists in ``azurite``."""
    azurite.create_container(AZURITE_CONTAINER)
    return AZURITE_CONTAINER
