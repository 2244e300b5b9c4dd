"""Fixtures for artifact-store tests: session-wide Azurite and S3 emulators and their buckets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.testing.azurite import AzuriteHandle, start_azurite
from conveyor.testing.s3 import S3Handle, start_s3

#: The Makefile runs ``npm install --prefix .test-tools azurite@3`` at the repository root.
TOOLS_DIR = Path(__file__).resolve().parents[2] / ".test-tools"
AZURITE_CONTAINER = "conveyor-test"
S3_BUCKET = "conveyor-test"


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


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Handle]:
    """A running moto S3 server; fails (never skips) when it cannot be started."""
    handle = start_s3(tmp_path_factory.mktemp("s3"))
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="session")
def s3_bucket(s3: S3Handle) -> str:
    """Name of a bucket that exists in ``s3``."""
    s3.create_bucket(S3_BUCKET)
    return S3_BUCKET
