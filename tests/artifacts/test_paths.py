"""safe_relpath and join: the only gate between a user's path and the storage root."""

from __future__ import annotations

import pytest

from conveyor.artifacts import safe_relpath
from conveyor.artifacts.paths import join
from conveyor.errors import InvalidInput
from conveyor.testing.artifact_checks import UNSAFE_PATHS


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("model.pkl", "model.pkl"),
        ("a/b/c.txt", "a/b/c.txt"),
        ("./a/./b", "a/b"),
        ("a/.hidden", "a/.hidden"),
        ("a/...", "a/..."),
        ("a..b/c", "a..b/c"),
        ("100%.txt", "100%.txt"),
        ("a%20b.txt", "a%20b.txt"),
        ("model:v1/MLmodel", "model:v1/MLmodel"),
        ("ünïcode/файл", "ünïcode/файл"),
    ],
)
def test_accepts_and_normalises(path: str, expected: str) -> None:
    assert safe_relpath(path) == expected


@pytest.mark.parametrize(
    "path",
    [
        *UNSAFE_PATHS,
        "..",
        ".",
        "./.",
        "a/./../b",
        "\\\\server\\share",
        "c:relative",
        "s3://bucket/key",
        "a/%2E%2E/b",
        "a%5cb",
        "a/%2e/b",
        "a%252fb",
        "a\nb",
        "a\x7fb",
    ],
)
def test_rejects(path: str) -> None:
    with pytest.raises(InvalidInput, match=r"^Invalid path"):
        safe_relpath(path)


def test_message_names_the_path() -> None:
    with pytest.raises(InvalidInput, match=r"Invalid path '\.\./x': '\.\.' segments"):
        safe_relpath("../x")


def test_rejects_non_strings() -> None:
    with pytest.raises(InvalidInput, match="expected a string"):
        safe_relpath(b"a/b")  # type: ignore[arg-type]


def test_invalid_input_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        safe_relpath("../x")


def test_join() -> None:
    assert join("1", "abc", "artifacts", "model/MLmodel") == "1/abc/artifacts/model/MLmodel"
    assert join("", "a", "", "b") == "a/b"
    with pytest.raises(InvalidInput, match=r"^Invalid path"):
        join("a", "..", "b")
    with pytest.raises(InvalidInput, match=r"^Invalid path"):
        join("", "")
