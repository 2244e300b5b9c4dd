"""Tokens verified moments ago, so a busy client is not checked against the database per request.

An MLflow client logging metrics sends hundreds of requests a second with one token; each
database check costs more than the write it guards. A verified token is remembered for
:data:`TTL_S` seconds (keyed by a digest of the token, never the token), with its
principal and roles as they were then. The service forgets everything at once when it
revokes a token, disables a principal or changes roles itself; a change made through
another process (another worker, the CLI on the database) applies within ``TTL_S``.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict

from conveyor.store.sql.identity import Principal

#: How long a verification is trusted without asking the database again.
TTL_S = 2.0
_SIZE = 4096


class RecentTokens:
    """A small, thread-safe, time-bounded map of token digest -> principal."""

    def __init__(self, ttl_s: float = TTL_S) -> None:
        self.ttl_s = ttl_s
        self._entries: OrderedDict[str, tuple[float, int | None, Principal]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, token: str, now_ms: int) -> Principal | None:
        """The principal ``token`` proved recently, unless that was too long ago or it expired since."""
        key = _key(token)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            until, expires_at, principal = entry
            if time.monotonic() > until or (expires_at is not None and now_ms >= expires_at):
                del self._entries[key]
                return None
            return principal

    def put(self, token: str, principal: Principal, expires_at: int | None) -> None:
        key = _key(token)
        with self._lock:
            self._entries[key] = (time.monotonic() + self.ttl_s, expires_at, principal)
            self._entries.move_to_end(key)
            while len(self._entries) > _SIZE:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
