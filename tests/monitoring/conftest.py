"""Fixtures of the monitoring tests."""

from __future__ import annotations

import pytest

from tests.monitoring.frames import Frame, mixed_frame


@pytest.fixture
def frame() -> Frame:
    return mixed_frame
