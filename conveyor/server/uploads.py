"""Streaming request bodies into blocking consumers without buffering whole files.

The artifact service is synchronous (fsspec, hashing), the request body arrives on the
event loop. The consumer runs in a worker thread and pulls the body from the loop in
chunks of at least 1 MiB, so a multi-gigabyte upload never sits in memory and the loop
is crossed a few times per megabyte rather than once per network read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypeVar

import anyio.from_thread
import anyio.to_thread
from fastapi import Request

T = TypeVar("T")
CHUNK = 1 << 20


async def _coalesce(stream: AsyncIterator[bytes], size: int) -> AsyncIterator[bytes]:
    pending: list[bytes] = []
    held = 0
    async for piece in stream:
        if not piece:
            continue
        pending.append(piece)
        held += len(piece)
        if held >= size:
            yield b"".join(pending)
            pending, held = [], 0
    if pending:
        yield b"".join(pending)


async def request_chunks(request: Request, consume: Callable[[Iterator[bytes]], T]) -> T:
    """Run ``consume`` in a thread over the request body's chunks and return its result."""
    stream = _coalesce(request.stream(), CHUNK)

    async def next_chunk() -> bytes | None:
        try:
            return await stream.__anext__()
        except StopAsyncIteration:
            return None

    def chunks() -> Iterator[bytes]:
        while (chunk := anyio.from_thread.run(next_chunk)) is not None:
            yield chunk

    return await anyio.to_thread.run_sync(lambda: consume(chunks()))
