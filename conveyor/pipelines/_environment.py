"""What a pipeline run records about the machine and code it ran on."""

from __future__ import annotations

import platform
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from conveyor.tracking.context import current_user
from conveyor.tracking.reproducibility import packages_hash, record_from_tags


@dataclass(frozen=True)
class Environment:
    host: str
    user: str
    python_version: str
    packages_hash: str
    git_commit: str | None
    git_dirty: bool | None


def describe_environment(tracking_tags: Mapping[str, str]) -> Environment:
    """The run's environment, its code version read from the tags of the pipeline's tracking
    run: they were captured moments before, and asking git again would cost two more
    subprocesses per run."""
    record = record_from_tags(tracking_tags)
    commit = record.commit if record else None
    return Environment(
        host=socket.gethostname(),
        user=current_user(),
        python_version=platform.python_version(),
        packages_hash=record.packages_sha256 if record and record.packages_sha256 else packages_hash(),
        git_commit=commit,
        git_dirty=record.dirty if commit and record else None,
    )
