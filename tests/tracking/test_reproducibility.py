"""The reproducibility record and grade, on a scratch git repository."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import conveyor as cv
from conveyor.tracking import reproducibility
from conveyor.tracking.reproducibility import (
    DIRTY,
    GRADE_TAG,
    NO_COMMIT,
    NO_SEED,
    UNPINNED,
    capture,
    grade,
    record_from_tags,
    record_seed,
    record_tags,
)


def git(repo: Path, *args: str) -> None:
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", *identity, *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture(autouse=True)
def no_seeds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Seeds are process-wide: each test starts without any."""
    monkeypatch.setattr(reproducibility, "_seeds", {})


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A clean repository with a training script and a uv lock file, committed."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "train.py").write_text("print('training')\n")
    (root / "uv.lock").write_text("version = 1\n")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "initial")
    return root


def test_clean_locked_seeded_repository_is_grade_a(repo: Path) -> None:
    record_seed("random", 7)
    record = capture(repo)
    assert record.commit and not record.dirty and record.diff_sha256 is None
    assert (record.lock_file, record.seeds, record.untracked_files) == ("uv.lock", {"random": 7}, 0)
    assert grade(record) == ("A", [])
    assert record_from_tags(record_tags(record)) == record


def test_edited_tracked_file_is_dirty_and_hashed_by_content(repo: Path) -> None:
    record_seed("random", 7)
    (repo / "train.py").write_text("print('tuned')\n")
    first = capture(repo)
    assert first.dirty and first.diff_sha256
    assert grade(first) == ("C", [DIRTY])
    assert capture(repo).diff_sha256 == first.diff_sha256
    (repo / "train.py").write_text("print('tuned again')\n")
    assert capture(repo).diff_sha256 != first.diff_sha256


def test_untracked_files_are_counted(repo: Path) -> None:
    record_seed("random", 7)
    (repo / "notes.txt").write_text("scratch\n")
    record = capture(repo)
    assert (record.dirty, record.untracked_files) == (False, 1)
    assert grade(record) == ("B", ["1 untracked file(s)"])


@pytest.mark.parametrize(
    ("requirements", "locked"),
    [
        ("numpy==2.1.0 \\\n    --hash=sha256:abc\n# a comment\n\npandas==2.2.3\n", True),
        ("numpy==2.1.0\npandas>=2\n", False),
    ],
)
def test_requirements_count_as_a_lock_only_when_every_line_is_pinned(
    tmp_path: Path, requirements: str, locked: bool
) -> None:
    (tmp_path / "requirements.txt").write_text(requirements)
    record = capture(tmp_path)
    assert (record.lock_file is not None) is locked
    reasons = grade(record)[1]
    assert (UNPINNED in reasons) is not locked
    assert record.commit is None and NO_COMMIT in reasons and NO_SEED in reasons


def test_set_seed_is_recorded_and_regrades_the_active_run(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(sys, "argv", [str(repo / "train.py")])
    cv.set_tracking_uri(f"sqlite:///{tmp_path / 'runs.db'}")
    try:
        with cv.start_run() as run:
            started = dict(cv.get_client().get_run(run.run_id).tags)
            seeds = cv.set_seed(11)
        tags = cv.get_client().get_run(run.run_id).tags
    finally:
        cv.set_tracking_uri(None)
    assert (started[GRADE_TAG], started["conveyor.repro.reasons"]) == ("B", f'["{NO_SEED}"]')
    assert seeds == {"random": 11, "numpy": 11}
    assert tags[GRADE_TAG] == "A"
    assert tags["conveyor.repro.lock_file"] == "uv.lock"
    assert record_from_tags(tags).seeds == seeds  # type: ignore[union-attr]


def test_client_create_run_captures_the_record(tmp_path: Path) -> None:
    client = cv.Client(f"sqlite:///{tmp_path / 'c.db'}")
    experiment = client.create_experiment("repro")
    run = client.create_run(experiment, tags={"team": "a"})
    assert run.tags[GRADE_TAG] in {"A", "B", "C"}
    assert record_from_tags(run.tags) is not None
    assert run.tags["team"] == "a" and run.info.user_id


def test_runs_from_an_mlflow_client_get_a_server_side_record_graded_c(live_server: str) -> None:
    import mlflow

    client = mlflow.MlflowClient(live_server)
    experiment = client.create_experiment(f"repro-{Path(live_server).name}-{id(client)}")
    commit = "0123456789abcdef0123456789abcdef01234567"
    run = client.create_run(experiment, tags={"mlflow.source.git.commit": commit})
    tags = client.get_run(run.info.run_id).data.tags
    assert tags[GRADE_TAG] == "C"
    assert reproducibility.REMOTE in tags["conveyor.repro.reasons"]
    record = record_from_tags(tags)
    assert record is not None and record.remote and record.commit == commit
    assert grade(record)[0] == "C"
