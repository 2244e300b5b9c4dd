"""Whether a run could be reproduced: code, environment and seeds, with a grade.

A run's record answers "could I get this model again?": the commit checked out and a
SHA-256 of any uncommitted changes to it, the Python version, a hash of the installed
packages and of the project's lock file, and the seeds the user set. :func:`grade` turns
the record into ``A`` (reproducible), ``B`` (the code is known, the environment or
randomness is not) or ``C`` (the code itself is not known), with one reason per gap, so
that an approval policy can require ``A`` and say why a version falls short.

The record is stored on the run as ``conveyor.repro.*`` tags (:func:`record_tags`) and read
back with :func:`record_from_tags`. Capturing it costs the two git calls source tags made
anyway, plus one ``git diff HEAD`` when the tree is dirty.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import platform
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Grade = Literal["A", "B", "C"]

TAG_PREFIX = "conveyor.repro."
GRADE_TAG = f"{TAG_PREFIX}grade"
REASONS_TAG = f"{TAG_PREFIX}reasons"

NO_COMMIT = "no git commit"
DIRTY = "dirty working tree"
UNPINNED = "unpinned environment (no lock file)"
NO_SEED = "no seed recorded"
REMOTE = "created by a remote client that sent no record: its working tree and environment are unknown"
#: Reasons that leave the code itself unknown: grade C. Any other reason gives B.
_CODE_UNKNOWN = frozenset({NO_COMMIT, DIRTY, REMOTE})
#: The tag MLflow's clients set to the commit of the code that started the run.
MLFLOW_COMMIT_TAG = "mlflow.source.git.commit"

#: Lock files that pin every package by construction, in the order they are looked for.
_LOCK_FILES = ("uv.lock", "poetry.lock", "Pipfile.lock", "pdm.lock")

#: Seeds set in this process, by what they seeded: see :func:`record_seed`.
_seeds: dict[str, int] = {}


@dataclass(frozen=True, slots=True)
class ReproRecord:
    """What a run needs to be reproduced, as found when it started."""

    commit: str | None
    dirty: bool
    #: SHA-256 of ``git diff HEAD`` (changes to tracked files), when dirty.
    diff_sha256: str | None
    untracked_files: int
    python_version: str
    packages_sha256: str
    #: The lock file found at the project's root (``uv.lock``), and its SHA-256.
    lock_file: str | None
    lock_sha256: str | None
    seeds: dict[str, int] = field(default_factory=dict)
    #: Written by the server for a client that recorded nothing (an ``mlflow`` client).
    remote: bool = False


def run_git(args: list[str], cwd: Path) -> str | None:
    """Git's output, or None when git is missing, slow, or fails (not a repository)."""
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def capture(folder: Path) -> ReproRecord:
    """The record of the code around ``folder`` and of this process's environment."""
    top = run_git(["rev-parse", "--show-toplevel", "HEAD"], folder)
    root, commit = top.splitlines() if top and len(top.splitlines()) == 2 else (None, None)
    tracked, untracked = _status(folder) if commit else (0, 0)
    lock = _lock_file(Path(root) if root else folder)
    return ReproRecord(
        commit=commit,
        dirty=tracked > 0,
        diff_sha256=_diff_sha256(folder) if tracked else None,
        untracked_files=untracked,
        python_version=platform.python_version(),
        packages_sha256=packages_hash(),
        lock_file=lock.name if lock else None,
        lock_sha256=hashlib.sha256(lock.read_bytes()).hexdigest() if lock else None,
        seeds=dict(_seeds),
    )


def grade(record: ReproRecord) -> tuple[Grade, list[str]]:
    """``A`` with no reasons, else ``B`` or ``C`` (code unknown) and one reason per gap."""
    reasons = [
        *([REMOTE] if record.remote else []),
        *([NO_COMMIT] if record.commit is None else []),
        *([DIRTY] if record.dirty else []),
        *([f"{record.untracked_files} untracked file(s)"] if record.untracked_files else []),
        *([UNPINNED] if record.lock_file is None else []),
        *([NO_SEED] if not record.seeds else []),
    ]
    if not reasons:
        return "A", reasons
    return ("C" if _CODE_UNKNOWN.intersection(reasons) else "B"), reasons


def record_tags(record: ReproRecord) -> dict[str, str]:
    """The record as ``conveyor.repro.*`` run tags, grade and reasons included."""
    letter, reasons = grade(record)
    values = {
        "commit": record.commit or "",
        "dirty": "true" if record.dirty else "false",
        "diff_sha256": record.diff_sha256 or "",
        "untracked_files": str(record.untracked_files),
        "python_version": record.python_version,
        "packages_sha256": record.packages_sha256,
        "lock_file": record.lock_file or "",
        "lock_sha256": record.lock_sha256 or "",
        "seeds": json.dumps(record.seeds, sort_keys=True),
        "remote": "true" if record.remote else "false",
        "grade": letter,
        "reasons": json.dumps(reasons),
    }
    return {TAG_PREFIX + key: value for key, value in values.items()}


def record_from_tags(tags: Mapping[str, str]) -> ReproRecord | None:
    """The record stored by :func:`record_tags`, or None for a run that has none."""
    if GRADE_TAG not in tags:
        return None

    def get(key: str) -> str | None:
        return tags.get(TAG_PREFIX + key) or None

    return ReproRecord(
        commit=get("commit"),
        dirty=get("dirty") == "true",
        diff_sha256=get("diff_sha256"),
        untracked_files=int(get("untracked_files") or 0),
        python_version=get("python_version") or "",
        packages_sha256=get("packages_sha256") or "",
        lock_file=get("lock_file"),
        lock_sha256=get("lock_sha256"),
        seeds={str(k): int(v) for k, v in json.loads(get("seeds") or "{}").items()},
        remote=get("remote") == "true",
    )


def remote_record_tags(client_tags: Mapping[str, str]) -> dict[str, str]:
    """The record the server keeps for a run whose client sent none (grade C).

    Only what the client declared is known: the commit MLflow's fluent API tags runs with.
    Whether that tree was clean, and which packages ran, are not, and the grade says so.
    """
    record = ReproRecord(
        commit=client_tags.get(MLFLOW_COMMIT_TAG) or None,
        dirty=False,
        diff_sha256=None,
        untracked_files=0,
        python_version="",
        packages_sha256="",
        lock_file=None,
        lock_sha256=None,
        remote=True,
    )
    return record_tags(record)


def record_seed(name: str, seed: int) -> dict[str, int]:
    """Remember that ``name`` (``random``, ``numpy``, ``torch``, yours) was seeded with ``seed``.

    Runs started afterwards carry it; returns every seed recorded so far.
    """
    _seeds[name] = int(seed)
    return dict(_seeds)


def with_seeds(record: ReproRecord, seeds: Mapping[str, int]) -> ReproRecord:
    """``record`` with ``seeds`` added: for a run that set its seeds after it started."""
    return dataclasses.replace(record, seeds={**record.seeds, **seeds})


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


def _status(folder: Path) -> tuple[int, int]:
    """How many tracked files changed, and how many untracked (not ignored) files exist."""
    lines = (run_git(["status", "--porcelain", "--untracked-files=all"], folder) or "").splitlines()
    untracked = sum(line.startswith("??") for line in lines)
    return len(lines) - untracked, untracked


def _diff_sha256(folder: Path) -> str | None:
    """SHA-256 of the uncommitted changes to tracked files: equal hashes, equal changes."""
    try:
        done = subprocess.run(
            ["git", "diff", "HEAD", "--binary"], cwd=folder, capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return hashlib.sha256(done.stdout).hexdigest() if done.returncode == 0 else None


def _lock_file(root: Path) -> Path | None:
    """The project's lock file: a known one, or a ``requirements*.txt`` pinning every line."""
    for name in _LOCK_FILES:
        if (root / name).is_file():
            return root / name
    return next((p for p in sorted(root.glob("requirements*.txt")) if _fully_pinned(p)), None)


def _fully_pinned(path: Path) -> bool:
    """Every requirement is ``name==version``; option lines (``--hash``, ``-r``) are allowed."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    lines = [line.split("#", 1)[0].strip() for line in text.replace("\\\n", " ").splitlines()]
    requirements = [line for line in lines if line and not line.startswith(("--", "-r", "-c"))]
    return bool(requirements) and all("==" in line for line in requirements)
