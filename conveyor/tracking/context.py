"""What a run records about where it came from: user, entry point, git commit and dirt."""

from __future__ import annotations

import getpass
import os
import platform
import subprocess
import sys
from pathlib import Path

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


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state(folder: Path) -> tuple[str | None, bool | None]:
    """The commit checked out around ``folder`` and whether tracked files have changes since."""
    commit = _git(["rev-parse", "HEAD"], folder)
    if not commit:
        return None, None
    return commit, bool(_git(["status", "--porcelain", "--untracked-files=no"], folder))


def source_tags() -> dict[str, str]:
    """Tags MLflow's fluent API sets too, plus whether the working tree had uncommitted changes."""
    entry = sys.argv[0] if sys.argv and sys.argv[0] else "<interactive>"
    tags = {
        USER_TAG: current_user(),
        SOURCE_NAME_TAG: entry,
        SOURCE_TYPE_TAG: "LOCAL",
        PYTHON_TAG: platform.python_version(),
    }
    folder = Path(entry).resolve().parent if Path(entry).exists() else Path.cwd()
    commit, dirty = git_state(folder)
    if commit:
        tags[GIT_COMMIT_TAG] = commit
        tags[GIT_DIRTY_TAG] = "true" if dirty else "false"
    return tags
