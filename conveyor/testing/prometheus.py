"""Start a real Prometheus server for tests that must prove a scrape works end to end.

Why a real one: the exposition format, label escaping, content type and the way
Prometheus turns an empty label into no label are easy to get subtly wrong, and only a
server that scrapes and answers queries shows what a dashboard will see.

Prometheus 2 comes from Debian's ``prometheus`` package (it also brings ``promtool``).
:func:`find_or_install` looks on ``PATH`` and in ``/usr/bin``, then runs
``apt-get install -y --no-install-recommends prometheus`` itself (as root, or through
``sudo -n``), after ``apt-get update`` if the package is unknown. If that is impossible,
:class:`PrometheusError` says why, so a test can skip with that reason.

Example (a fixture)::

    handle = start_prometheus(tmp_path, {"conveyor": ["127.0.0.1:5000"]})
    handle.wait_for("conveyor_monitoring_share_drifted")
    handle.stop()
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from conveyor.testing.processes import ServiceHandle, free_port, log_tail

__all__ = ["PrometheusError", "PrometheusHandle", "find_or_install", "start_prometheus"]

PACKAGE = "prometheus"
_START_TIMEOUT_S = 30.0
_APT_TIMEOUT_S = 900.0


class PrometheusError(RuntimeError):
    """Prometheus could not be installed or started; the message says what to do."""


@dataclass
class PrometheusHandle(ServiceHandle):
    """A running Prometheus on 127.0.0.1, with its HTTP query API."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector ``expr`` gives now: ``[{"metric": {...}, "value": [t, "v"]}]``."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10.0)
        response.raise_for_status()
        body = response.json()
        if body.get("status") != "success":
            raise PrometheusError(f"query {expr!r} failed: {body}")
        return body["data"]["result"]

    def targets(self) -> list[dict[str, Any]]:
        """The active scrape targets with their health and last error."""
        response = httpx.get(f"{self.url}/api/v1/targets", timeout=10.0)
        response.raise_for_status()
        return response.json()["data"]["activeTargets"]

    def wait_for(self, expr: str, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Poll ``expr`` until it returns series; on timeout, say what the targets report."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.query(expr)
            if result:
                return result
            time.sleep(0.2)
        raise PrometheusError(f"{expr!r} returned nothing within {timeout:.0f}s; targets: {self.targets()}")


def start_prometheus(
    tmpdir: str | os.PathLike[str],
    jobs: Mapping[str, Sequence[str]],
    *,
    scrape_interval: str = "1s",
    rule_files: Sequence[str | os.PathLike[str]] = (),
) -> PrometheusHandle:
    """Start Prometheus on a free local port, scraping each job's ``host:port`` targets.

    Args:
        tmpdir: folder for the configuration, the TSDB and the log; use a fresh one.
        jobs: job name -> targets (``/metrics`` over plain HTTP).
        scrape_interval: how often to scrape (and evaluate ``rule_files``).
        rule_files: recording or alerting rule files to load.

    Raises:
        PrometheusError: it cannot be installed, or did not become ready.
    """
    binary = find_or_install("prometheus")
    folder = Path(tmpdir)
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "prometheus.yml"
    config.write_text(yaml.safe_dump(_config(jobs, scrape_interval, rule_files)))
    port = free_port()
    log_path = folder / "prometheus.log"
    command = [
        str(binary),
        f"--config.file={config}",
        f"--storage.tsdb.path={folder / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    handle = PrometheusHandle(process=process, port=port)
    try:
        _wait_ready(handle, log_path)
    except BaseException:
        handle.stop()
        raise
    return handle


def _config(
    jobs: Mapping[str, Sequence[str]], interval: str, rule_files: Sequence[str | os.PathLike[str]]
) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(Path(f).resolve()) for f in rule_files],
        "scrape_configs": [
            {"job_name": name, "static_configs": [{"targets": list(targets)}]}
            for name, targets in jobs.items()
        ],
    }


def find_or_install(tool: str = "prometheus") -> Path:
    """Path of ``prometheus`` or ``promtool``: on ``PATH`` or in /usr/bin, else installed now.

    Raises:
        PrometheusError: not installed and Debian's package cannot be installed here.
    """
    found = _find(tool)
    if found is not None:
        return found
    _apt_install()
    found = _find(tool)
    if found is None:
        raise PrometheusError(f"apt-get installed {PACKAGE} but {tool} is still not found")
    return found


def _find(tool: str) -> Path | None:
    on_path = shutil.which(tool)
    if on_path:
        return Path(on_path)
    debian = Path("/usr/bin") / tool
    return debian if debian.exists() else None


def _apt_install() -> None:
    apt = shutil.which("apt-get")
    if apt is None:
        raise PrometheusError(
            "Prometheus is not installed and apt-get is not available: install Prometheus 2.x "
            "so that `prometheus` and `promtool` are on PATH."
        )
    if os.geteuid() == 0:
        prefix: list[str] = []
    elif shutil.which("sudo"):
        prefix = ["sudo", "-n"]
    else:
        raise PrometheusError(
            f"Prometheus is not installed, and installing it needs root: run `apt-get install {PACKAGE}`."
        )
    install = [*prefix, apt, "install", "-y", "--no-install-recommends", PACKAGE]
    if _run(install).returncode == 0:
        return
    # A fresh machine may not have package lists yet.
    _run([*prefix, apt, "update"])
    result = _run(install)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout)[-2000:]
        raise PrometheusError(f"`{' '.join(install)}` failed (exit {result.returncode}):\n{tail}")


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        return subprocess.run(
            command, capture_output=True, text=True, timeout=_APT_TIMEOUT_S, check=False, env=env
        )
    except subprocess.TimeoutExpired as exc:
        raise PrometheusError(f"`{' '.join(command)}` timed out after {_APT_TIMEOUT_S:.0f}s") from exc


def _wait_ready(handle: PrometheusHandle, log_path: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if handle.process.poll() is not None:
            raise PrometheusError(
                f"Prometheus exited with code {handle.process.returncode} before becoming ready. "
                f"Its output:\n{log_tail(log_path)}"
            )
        try:
            if httpx.get(f"{handle.url}/-/ready", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise PrometheusError(
        f"Prometheus was not ready on port {handle.port} within {_START_TIMEOUT_S:.0f}s. "
        f"Its output:\n{log_tail(log_path)}"
    )
