"""What a run records about where it came from: user, entry point, git commit and dirt.

Source tags include the run's reproducibility record (:mod:`conveyor.tracking.reproducibility`),
captured with the same git calls.
"""

from __future__ import annotations

import getpass
import os
import platform
import sys
from pathlib import Path

from conveyor.tracking.reproducibility import capture, record_tags

USER_TAG = "mlflow.user"
SOURCE_NAME_TAG = "mlflow.source.name"
SOURCE_TYPE_TAG = "mlflow.source.type"
GIT_COMMIT_TAG = "mlflow.source.git.commit"
GIT_DIRTY_TAG = "conveyor.source.git.dirty"
PYTHON_TAG = "conveyor.python.version"


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER", "unknown")


def source_tags(folder: Path | None = None) -> dict[str, str]:
    """Tags MLflow's fluent API sets too, plus the ``conveyor.repro.*`` reproducibility record.

    The code is looked for around ``folder`` (a pipeline's file), else around the entry point.
    """
    entry = sys.argv[0] if sys.argv and sys.argv[0] else "<interactive>"
    tags = {
        USER_TAG: current_user(),
        SOURCE_NAME_TAG: entry,
        SOURCE_TYPE_TAG: "LOCAL",
        PYTHON_TAG: platform.python_version(),
    }
    if folder is None:
        folder = Path(entry).resolve().parent if Path(entry).exists() else Path.cwd()
    record = capture(folder)
    if record.commit:
        tags[GIT_COMMIT_TAG] = record.commit
        tags[GIT_DIRTY_TAG] = "true" if record.dirty else "false"
    return {**tags, **record_tags(record)}
