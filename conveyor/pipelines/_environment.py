"""What a pipeline run records about the machine and code it ran on."""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import socket
import sys
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
    """SHA-256 over the installed distributions, as ``name-version`` per import path.

    Two runs with the same hash ran with the same installed packages. Read from the names
    of the ``*.dist-info`` / ``*.egg-info`` folders (``numpy-2.4.6.dist-info``), which
    carry name and version: listing a folder costs a millisecond, parsing every
    distribution's metadata a few hundred.
    """
    entries = []
    for folder in dict.fromkeys(sys.path):
        try:
            names = os.listdir(folder or ".")
        except OSError:
            continue
        entries += sorted(n for n in names if n.endswith((".dist-info", ".egg-info")))
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()
