"""Start Azurite, Microsoft's Azure Blob emulator, for tests that need real blob semantics.

Why an emulator rather than mocks: the artifact store relies on Azure's block-commit
behaviour for atomic writes, and only a server that implements it can prove that.

Azurite is an npm package. :func:`start_azurite` looks for ``azurite-blob`` under
``<tools_dir>/node_modules/.bin`` (the Makefile installs it with
``npm install --prefix .test-tools azurite@3``), then on ``PATH``, and otherwise runs that
``npm install`` itself. It never skips: if Azurite cannot start, :class:`AzuriteError`
says why.

Example (a session fixture)::

    handle = start_azurite(tmp_path_factory.mktemp("azurite"))
    handle.create_container("conveyor-test")
    yield handle
    handle.stop()
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from conveyor.testing.processes import ServiceHandle, free_port, log_tail

__all__ = [
    "AZURITE_ACCOUNT_KEY",
    "AZURITE_ACCOUNT_NAME",
    "AzuriteError",
    "AzuriteHandle",
    "start_azurite",
]

#: Azurite's published development account; not a secret (see Azurite's README).
AZURITE_ACCOUNT_NAME = "devstoreaccount1"
AZURITE_ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
#: What the Makefile installs; the fallback install uses the same spec.
AZURITE_PACKAGE = "azurite@3"
_START_TIMEOUT_S = 60.0
_NPM_TIMEOUT_S = 600.0


class AzuriteError(RuntimeError):
    """Azurite could not be installed or started; the message says what to do."""


@dataclass
class AzuriteHandle(ServiceHandle):
    """A running Azurite blob service on 127.0.0.1."""

    account_name: str = AZURITE_ACCOUNT_NAME
    account_key: str = field(default=AZURITE_ACCOUNT_KEY, repr=False)

    @property
    def blob_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self.account_name}"

    @property
    def connection_string(self) -> str:
        return (
            "DefaultEndpointsProtocol=http;"
            f"AccountName={self.account_name};AccountKey={self.account_key};"
            f"BlobEndpoint={self.blob_endpoint};"
        )

    def create_container(self, name: str) -> None:
        """Create blob container ``name`` unless it exists (needs ``azure-storage-blob``)."""
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import BlobServiceClient

        client = BlobServiceClient.from_connection_string(self.connection_string)
        with client, suppress(ResourceExistsError):
            client.create_container(name)


def start_azurite(tmpdir: str | os.PathLike[str], tools_dir: Path | None = None) -> AzuriteHandle:
    """Start ``azurite-blob`` on a free local port, storing its data under ``tmpdir``.

    Args:
        tmpdir: Folder for Azurite's data and its log; use a fresh temporary folder.
        tools_dir: Where ``npm install --prefix`` puts Azurite; defaults to
            ``$CONVEYOR_TEST_TOOLS`` or ``./.test-tools``.

    Returns:
        A handle whose port already accepts connections.

    Raises:
        AzuriteError: npm is missing, the install failed, or Azurite did not come up.
    """
    binary = find_or_install_azurite(tools_dir or _default_tools_dir())
    location = Path(tmpdir)
    location.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = location / "azurite.log"
    command = [
        str(binary),
        "--blobHost", "127.0.0.1",
        "--blobPort", str(port),
        "--location", str(location),
        "--skipApiVersionCheck",
        "--loose",
        "--silent",
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    handle = AzuriteHandle(process=process, port=port)
    try:
        _wait_for_port(handle, log_path)
    except BaseException:
        handle.stop()
        raise
    return handle


def find_or_install_azurite(tools_dir: Path) -> Path:
    """Path of ``azurite-blob``: from ``tools_dir``, else ``PATH``, else installed now."""
    local = tools_dir / "node_modules" / ".bin" / "azurite-blob"
    if local.exists():
        return local
    on_path = shutil.which("azurite-blob")
    if on_path:
        return Path(on_path)
    _npm_install(tools_dir)
    if not local.exists():
        raise AzuriteError(f"npm install finished but {local} is missing")
    return local


def _default_tools_dir() -> Path:
    return Path(os.environ.get("CONVEYOR_TEST_TOOLS", ".test-tools")).resolve()


def _npm_install(tools_dir: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise AzuriteError(
            "Azurite is not installed and npm is not on PATH. Install Node.js, then run "
            f"`npm install --prefix {tools_dir} {AZURITE_PACKAGE}` (or `make test-tools`)."
        )
    command = [npm, "install", "--prefix", str(tools_dir), "--no-audit", "--no-fund", AZURITE_PACKAGE]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=_NPM_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise AzuriteError(f"`{' '.join(command)}` timed out after {_NPM_TIMEOUT_S:.0f}s") from exc
    if result.returncode != 0:
        tail = (result.stderr or result.stdout)[-2000:]
        raise AzuriteError(f"`{' '.join(command)}` failed (exit {result.returncode}):\n{tail}")


def _wait_for_port(handle: AzuriteHandle, log_path: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if handle.process.poll() is not None:
            raise AzuriteError(
                f"Azurite exited with code {handle.process.returncode} before listening on "
                f"port {handle.port}. Its output:\n{log_tail(log_path)}"
            )
        try:
            with socket.create_connection(("127.0.0.1", handle.port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AzuriteError(
        f"Azurite did not listen on port {handle.port} within {_START_TIMEOUT_S:.0f}s. "
        f"Its output:\n{log_tail(log_path)}"
    )
