"""A canned-response HTTP server: the MLflow client's own cost, with no server work at all.

Every request is answered at once with a body stored for its path (``{}`` by default), so
timing a workload against this stub measures only the client side: the MLflow client
building and parsing protobuf-JSON, ``requests``, and the loopback round trip. That is
the floor under any server's figure, so ``MLflow time / stub time`` is the best ratio any
server could reach over MLflow through the MLflow client on this machine.

Bodies are stored with ``PUT /__canned__/<path>`` (the raw response bytes, usually
captured from the Conveyor server for the same request); ``PUT /__file__`` with a local
file's path as body serves that file for every GET of a path ending in its name (artifact
downloads). Request bodies over 1 MiB are read and dropped (artifact uploads). Run as a subprocess:
``python stub.py PORT``; it prints ``ready`` when listening.
"""

from __future__ import annotations

import asyncio
import sys

CANNED_PREFIX = "/__canned__"
FILE_PATH = "/__file__"


#: Size of the writes of a large response.
OUT_CHUNK = 1024 * 1024
#: Request bodies larger than this are counted and dropped as they arrive (artifact uploads).
KEEP_BODY_LIMIT = 1024 * 1024


class Stub(asyncio.Protocol):
    #: Response bodies by request path (query ignored), shared by every connection.
    canned: dict[str, bytes] = {}  # noqa: RUF012
    #: File contents served for any GET whose path ends with ``/<name>``.
    files: dict[str, bytes] = {}  # noqa: RUF012

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.buffer = bytearray()
        self.request: tuple[str, str] | None = None
        self.remaining = 0
        self.keep = True
        #: What is left of a large response, written as the socket drains (flow control).
        self.outgoing: memoryview | None = None
        self.paused = False

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.drain()

    def drain(self) -> None:
        while self.outgoing is not None and not self.paused:
            chunk, rest = self.outgoing[:OUT_CHUNK], self.outgoing[OUT_CHUNK:]
            self.outgoing = rest if len(rest) else None
            self.transport.write(chunk)  # type: ignore[attr-defined]
            if self.outgoing is None and self.buffer:
                while self.step():
                    pass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.outgoing is None and self.step():
            pass

    def step(self) -> bool:
        """Advance through one request as far as the bytes so far allow; True to go on."""
        if self.request is None:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return False
            head = self.buffer[:head_end].decode("latin-1").split("\r\n")
            del self.buffer[: head_end + 4]
            method, target, _ = head[0].split(" ", 2)
            self.request = (method, target.split("?", 1)[0])
            self.remaining = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    self.remaining = int(value.strip())
            self.keep = self.remaining <= KEEP_BODY_LIMIT
            self.body = bytearray()
        take = min(self.remaining, len(self.buffer))
        if self.keep:
            self.body += self.buffer[:take]
        del self.buffer[:take]
        self.remaining -= take
        if self.remaining:
            return False
        method, path = self.request
        self.request = None
        self.respond(method, path, bytes(self.body))
        return bool(self.buffer)

    def respond(self, method: str, path: str, body: bytes) -> None:
        payload: bytes | memoryview = b"{}"
        if method == "PUT" and path.startswith(CANNED_PREFIX):
            self.canned[path[len(CANNED_PREFIX) :]] = body
        elif method == "PUT" and path == FILE_PATH:
            with open(body.decode(), "rb") as f:
                self.files[body.decode().rsplit("/", 1)[-1]] = f.read()
        elif path in self.canned:
            payload = self.canned[path]
        elif method == "GET" and (content := self.files.get(path.rsplit("/", 1)[-1])) is not None:
            payload = memoryview(content)
        self.transport.write(  # type: ignore[attr-defined]
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(payload)}\r\n\r\n".encode()
        )
        # Written a chunk at a time as the socket drains: one huge write would make asyncio
        # buffer it all and shift the buffer after every send.
        self.outgoing = memoryview(payload)
        self.drain()


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Stub, "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
