"""A webhook receiver for tests: a real HTTP server on 127.0.0.1 that records what it is sent.

Deliveries go through the network stack like any receiver's, so tests check the bytes and
signatures the dispatcher really sent. Statuses can be scripted (``statuses``, first in,
first out; 200 once they run out) to test retries.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["WebhookReceiver", "verified"]


class WebhookReceiver:
    """Records every POST as ``(lower-cased headers, raw body)``; use as a context manager."""

    def __init__(self, path: str = "/hook") -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{path}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.requests]

    def events(self) -> list[str]:
        return [headers["x-conveyor-event"] for headers, _ in self.requests]

    def wait_for(self, count: int, secret: str, timeout: float = 15.0) -> list[dict[str, Any]]:
        """The first ``count`` bodies, each after checking its signature with ``secret``."""
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(self.requests) >= count, f"got {len(self.requests)} deliveries, expected {count}"
        return [verified(secret, headers, body) for headers, body in self.requests[:count]]


def verified(secret: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """The receiver's check from docs/registry.md: HMAC-SHA256 of the raw body, in constant time."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, headers["x-conveyor-signature"]):
        raise AssertionError("bad webhook signature")
    return json.loads(body)
