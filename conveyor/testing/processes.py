"""What every test service launcher needs: a free port, a log tail, a clean stop."""

from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

STOP_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log_tail(path: Path, limit: int = 2000) -> str:
    """The end of a service's log, for error messages about why it did not start."""
    try:
        return path.read_text(errors="replace")[-limit:] or "(empty)"
    except OSError:
        return "(no log)"


def stop_process(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_S) -> None:
    """Terminate, and kill what does not exit within ``timeout`` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class ServiceHandle:
    """A service process listening on 127.0.0.1; a context manager that stops it."""

    process: subprocess.Popen[bytes]
    port: int

    def stop(self) -> None:
        stop_process(self.process)

    def __enter__(self) -> ServiceHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
