"""Request bodies streamed into blocking consumers (artifact storage) without buffering whole files.

The artifact service is synchronous (fsspec, hashing); the body arrives on the event loop.
:func:`pipe_body` connects the two with a bounded pipe, so the loop keeps reading the
socket while a worker thread hashes and writes, and memory stays bounded whatever the
file size.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread
from fastapi import Request

#: Network reads are handed over in batches of about this many bytes (one thread hop each)…
BATCH_BYTES = 1 << 20
#: …and at most this many batches wait between the event loop and the storage thread.
PIPE_DEPTH = 8

T = TypeVar("T")


async def _batches(stream: AsyncIterator[bytes], size: int) -> AsyncIterator[list[bytes]]:
    """Network reads (often 64 KiB) grouped into lists of about ``size`` bytes, without copying."""
    pending: list[bytes] = []
    held = 0
    async for piece in stream:
        if not piece:
            continue
        pending.append(piece)
        held += len(piece)
        if held >= size:
            yield pending
            pending, held = [], 0
    if pending:
        yield pending


async def pipe_body(request: Request, consume: Callable[[Iterator[bytes]], T]) -> T:
    """Run ``consume`` in a worker thread over the request body's chunks and return its result.

    Why a pipe rather than the thread pulling each chunk from the loop: receiving and
    storing then overlap, up to :data:`PIPE_DEPTH` batches ahead, instead of taking
    turns. A body that ends early (the client went away) reaches ``consume`` as the
    exception that ended it, so a truncated upload is never stored as complete; if
    ``consume`` fails first, reading stops and its exception is raised here.
    """
    send, receive = anyio.create_memory_object_stream[list[bytes] | Exception](PIPE_DEPTH)

    async def produce() -> None:
        async with send:
            try:
                async for batch in _batches(request.stream(), BATCH_BYTES):
                    await send.send(batch)
            except Exception as exc:  # handed to the consumer, which raises it
                await send.send(exc)

    def chunks() -> Iterator[bytes]:
        while True:
            try:
                item = anyio.from_thread.run(receive.receive)
            except anyio.EndOfStream:
                return
            if isinstance(item, Exception):
                raise item
            yield from item

    outcome: list[T] = []
    failure: list[Exception] = []
    with receive:
        async with anyio.create_task_group() as group:
            group.start_soon(produce)
            try:
                outcome.append(await anyio.to_thread.run_sync(lambda: consume(chunks())))
            except Exception as exc:  # re-raised below, outside the task group
                failure.append(exc)
            group.cancel_scope.cancel()
    if failure:
        raise failure[0]
    return outcome[0]
