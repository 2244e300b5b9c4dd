"""What a pipeline run records about the machine and code it ran on."""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import platform
import socket
from dataclasses import dataclass
from pathlib import Path

from conveyor.tracking.context import current_user, git_state


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


@functools.cache
def packages_hash() -> str:
    """SHA-256 over the sorted ``name==version`` of every installed distribution.

    Two runs with the same hash ran with the same installed packages; the list itself is
    what ``pip freeze`` prints, so the hash is enough to tell environments apart.
    """
    names = sorted(
        f"{(d.metadata['Name'] or '').lower()}=={d.version}" for d in importlib.metadata.distributions()
    )
    return hashlib.sha256("\n".join(names).encode()).hexdigest()
