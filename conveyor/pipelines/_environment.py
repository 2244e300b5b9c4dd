"""What a pipeline run records about the machine and code it ran on."""

from __future__ import annotations

import platform
import socket
from dataclasses import dataclass
from pathlib import Path

from conveyor.tracking.context import current_user, git_state
from conveyor.tracking.reproducibility import packages_hash


@dataclass(frozen=True)
class Environment:
    host: str
    user: str
    python_version: str
    packages_hash: str
    git_commit: str | None
    git_dirty: bool | None


def describe_environment(folder: Path) -> Environment:
    commit, dirty = git_state(folder)
    return Environment(
        host=socket.gethostname(),
        user=current_user(),
        python_version=platform.python_version(),
        packages_hash=packages_hash(),
        git_commit=commit,
        git_dirty=dirty,
    )
