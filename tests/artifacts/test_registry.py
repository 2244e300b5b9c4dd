"""The scheme registry and the error translation at the storage boundary."""

from __future__ import annotations

import subprocess
import sys
from typing import Any
from uuid import uuid4

import pytest
from fsspec import AbstractFileSystem

from conveyor.artifacts import ArtifactStore
from conveyor.artifacts.registry import SchemeSpec, register_scheme, registry, scheme_of
from conveyor.errors import BackendUnavailable, InvalidInput, PermissionDenied

#: Schemes with a conformance suite in this folder; a new scheme must be added here.
TESTED_SCHEMES = {
    "file": "test_local.py",
    "memory": "test_memory.py",
    "az": "test_azurite.py",
    "abfs": "test_azurite.py",
    "abfss": "test_azurite.py",
    "s3": "test_s3.py",
}
#: Registered schemes without a suite yet, and why.
KNOWN_GAPS: dict[str, str] = {}


class UnreachableFileSystem(AbstractFileSystem):
    """A file system whose service is down: every call fails as the SDKs do."""

    protocol = "conveyor-down"
    error: type[Exception] = ConnectionRefusedError

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        raise self.error(path)

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> Any:
        raise self.error(path)


class RefusingFileSystem(UnreachableFileSystem):
    protocol = "conveyor-refused"
    error = PermissionError


def _scheme_for(cls: type[AbstractFileSystem]) -> str:
    scheme = f"test{uuid4().hex[:8]}"
    register_scheme(scheme, SchemeSpec(f"{__name__}.{cls.__name__}"))
    return scheme


def test_every_registered_scheme_is_tested_or_a_known_gap() -> None:
    builtin = {s for s in registry if not s.startswith("test")}
    assert builtin == set(TESTED_SCHEMES) | set(KNOWN_GAPS)


@pytest.mark.parametrize(
    ("uri", "scheme"),
    [
        ("/srv/artifacts", "file"),
        ("relative/dir", "file"),
        ("file:///srv/a", "file"),
        ("C:\\mlruns", "file"),
        ("AZ://container/x", "az"),
        ("abfss://c@acct.dfs.core.windows.net/x", "abfss"),
        ("s3://bucket/x", "s3"),
        ("memory://x", "memory"),
    ],
)
def test_scheme_of(uri: str, scheme: str) -> None:
    assert scheme_of(uri) == scheme


def test_unknown_scheme_lists_known_ones() -> None:
    store = ArtifactStore("gopher://host/x")
    with pytest.raises(InvalidInput, match=r"'gopher'.*registered schemes are: .*az.*file.*s3"):
        store.write_bytes("a", b"x")


def test_registry_is_read_only() -> None:
    with pytest.raises(TypeError):
        registry["evil"] = registry["file"]  # type: ignore[index]


def test_register_refuses_silent_overwrite() -> None:
    with pytest.raises(InvalidInput, match=r"already registered.*clobber=True"):
        register_scheme("file", SchemeSpec("somewhere.Else"))
    register_scheme("file", registry["file"], clobber=True)


def test_missing_package_gives_install_hint() -> None:
    scheme = f"test{uuid4().hex[:8]}"
    register_scheme(scheme, SchemeSpec("not_installed_pkg.FS", "pip install 'conveyor[nope]'"))
    with pytest.raises(BackendUnavailable, match=r"'not_installed_pkg'.*conveyor\[nope\]"):
        ArtifactStore(f"{scheme}://x").read_bytes("a")


def test_unreachable_service_is_backend_unavailable() -> None:
    store = ArtifactStore(f"{_scheme_for(UnreachableFileSystem)}://bucket")
    with pytest.raises(BackendUnavailable, match="Cannot reach") as info:
        store.read_bytes("a/b")
    assert isinstance(info.value.__cause__, ConnectionRefusedError)
    for call in (store.list, store.exists, store.delete_prefix, store.delete):
        with pytest.raises(BackendUnavailable):
            call("a")  # not "missing": a down service must not look like an empty one


def test_refused_credentials_are_permission_denied() -> None:
    store = ArtifactStore(f"{_scheme_for(RefusingFileSystem)}://bucket")
    with pytest.raises(PermissionDenied, match="check the credentials"):
        store.write_bytes("a/b", b"x")


def test_import_does_not_load_cloud_sdks() -> None:
    code = (
        "import sys, conveyor.artifacts\n"
        "from conveyor.artifacts import ArtifactStore\n"
        "ArtifactStore('az://c/p', {'account_key': 'k'})\n"
        "heavy = {'adlfs', 's3fs', 'azure', 'botocore', 'aiobotocore'}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
