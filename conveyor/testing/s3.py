"""Start moto's S3 server, a local S3 emulator, for tests that need real S3 semantics.

Why an emulator rather than mocks: the artifact store relies on S3's multipart uploads
(an object appears only when the upload is completed, and an aborted one leaves nothing)
and on S3's flat key space behind s3fs's "folders"; only a server speaking the S3 HTTP
API, driven through s3fs and botocore exactly as in production, can prove that.

moto is a Python package (``pip install 'moto[server]'``, part of Conveyor's ``test``
extra). :func:`start_s3` runs its standalone server as a separate process of the current
interpreter (``python -m moto.server``), bound to 127.0.0.1 on a free port. It never
skips: if the server cannot start, :class:`S3EmulatorError` says why.

Example (a session fixture)::

    handle = start_s3(tmp_path_factory.mktemp("s3"))
    handle.create_bucket("conveyor-test")
    store = ArtifactStore("s3://conveyor-test/prefix", handle.storage_options)
    yield handle
    handle.stop()
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor.testing.processes import ServiceHandle, free_port, log_tail

__all__ = [
    "S3_ACCESS_KEY",
    "S3_REGION",
    "S3_SECRET_KEY",
    "S3EmulatorError",
    "S3Handle",
    "start_s3",
]

#: moto accepts any credentials; these are the ones its documentation uses.
S3_ACCESS_KEY = "testing"
S3_SECRET_KEY = "testing"
S3_REGION = "us-east-1"
#: What to install when moto is missing.
MOTO_PACKAGE = "moto[server]"
_START_TIMEOUT_S = 60.0


class S3EmulatorError(RuntimeError):
    """moto's S3 server could not be started; the message says what to do."""


@dataclass
class S3Handle(ServiceHandle):
    """A running moto S3 server on 127.0.0.1."""

    access_key: str = S3_ACCESS_KEY
    secret_key: str = field(default=S3_SECRET_KEY, repr=False)
    region: str = S3_REGION

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def storage_options(self) -> dict[str, Any]:
        """``storage_options`` for s3fs (and so for ``ArtifactStore("s3://...")``)."""
        return {
            "key": self.access_key,
            "secret": self.secret_key,
            "client_kwargs": {"endpoint_url": self.endpoint_url, "region_name": self.region},
        }

    def client(self) -> Any:
        """A boto3 S3 client for this server, for setting things up behind the store's back."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )

    def create_bucket(self, name: str) -> None:
        """Create bucket ``name`` unless it exists (needs ``boto3``, which moto brings)."""
        client = self.client()
        try:
            existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
            if name not in existing:
                client.create_bucket(Bucket=name)
        finally:
            client.close()


def start_s3(tmpdir: str | os.PathLike[str]) -> S3Handle:
    """Start moto's S3 server on a free port of 127.0.0.1, logging under ``tmpdir``.

    The server keeps everything in memory; ``tmpdir`` only holds its log.

    Returns:
        A handle whose endpoint already answers HTTP requests.

    Raises:
        S3EmulatorError: moto is not installed, or its server did not come up.
    """
    if importlib.util.find_spec("moto") is None:
        raise S3EmulatorError(
            f"moto is not installed in {sys.executable}; run "
            f"`pip install '{MOTO_PACKAGE}'` (or install Conveyor's `test` extra)."
        )
    location = Path(tmpdir)
    location.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = location / "moto.log"
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    # Fake credentials in the environment too, so nothing in the server or a stray client
    # ever looks for real AWS ones.
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY,
        "AWS_DEFAULT_REGION": S3_REGION,
    }
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    handle = S3Handle(process=process, port=port)
    try:
        _wait_until_answering(handle, log_path)
    except BaseException:
        handle.stop()
        raise
    return handle


def _wait_until_answering(handle: S3Handle, log_path: Path) -> None:
    """Poll until the server answers an HTTP request (any status), not merely listens."""
    # No proxies: a proxy from the environment must not answer for 127.0.0.1.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    url = f"{handle.endpoint_url}/moto-api/"
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if handle.process.poll() is not None:
            raise S3EmulatorError(
                f"moto's server exited with code {handle.process.returncode} before answering "
                f"on port {handle.port}. Its output:\n{log_tail(log_path)}"
            )
        try:
            with opener.open(url, timeout=1.0):
                return
        except urllib.error.HTTPError:
            return  # an HTTP answer, even an error, means the server is up
        except OSError:
            time.sleep(0.1)
    raise S3EmulatorError(
        f"moto's server did not answer on port {handle.port} within {_START_TIMEOUT_S:.0f}s. "
        f"Its output:\n{log_tail(log_path)}"
    )
