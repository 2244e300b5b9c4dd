"""Artifact endpoints: the run listing (``/mlflow/artifacts/list``) and the ``mlflow-artifacts`` proxy.

Runs and logged models get ``mlflow-artifacts:/…`` locations, so MLflow clients send every
file through these routes and Conveyor hashes and indexes each one on the way in
(:meth:`TrackingService.put_artifact`). Uploads stream from the socket to storage in
1 MiB chunks; downloads are verified against their SHA-256 before the first byte goes
out, then streamed. Paths that could leave the artifact root are refused with MLflow's
exact answer, ``{"error_code": "INVALID_PARAMETER_VALUE", "message": "Invalid path"}``.
"""

from __future__ import annotations

import mimetypes
import posixpath
import re
import unicodedata
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypeVar
from urllib.parse import quote

import anyio
import anyio.from_thread
import anyio.to_thread
from fastapi import Request, Response
from fastapi.responses import StreamingResponse
from starlette.requests import ClientDisconnect

from conveyor.errors import InvalidInput
from conveyor.server.mlflow_api.routing import Context, Endpoint, call
from conveyor.server.mlflow_api.wire import artifact_path, ok, read_fields
from conveyor.tracking.service import FileInfo

#: Served as ``text/plain`` whatever their registered type, as MLflow does, so browsers
#: show configs, logs and MLmodel files instead of running or downloading them.
_CONFIG_EXTENSIONS = ("cfg", "conf", "cnf", "cf", "ini", "properties", "prop", "hocon", "toml", "yaml", "yml")
_CODE_EXTENSIONS = ("xml", "json", "js", "py", "py3", "csv", "tsv", "md", "rst", "ipynb")
_TEXT_EXTENSIONS = frozenset(
    ("txt", "log", "err", "MLmodel", "MLproject", *_CONFIG_EXTENSIONS, *_CODE_EXTENSIONS)
)
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
#: Upload pieces handed to the storage thread, and how many may wait between the two.
CHUNK_BYTES = 1 << 20
PIPE_DEPTH = 8

T = TypeVar("T")


async def _coalesce(stream: AsyncIterator[bytes], size: int) -> AsyncIterator[bytes]:
    """Network reads (often 64 KiB) joined into pieces of at least ``size`` bytes."""
    pending: list[bytes] = []
    held = 0
    async for piece in stream:
        pending.append(piece)
        held += len(piece)
        if held >= size:
            yield b"".join(pending)
            pending, held = [], 0
    if pending:
        yield b"".join(pending)


async def pipe_body(request: Request, consume: Callable[[Iterator[bytes]], T]) -> T:
    """Run ``consume`` in a worker thread over the request body, receiving and storing at once.

    Why a pipe: the event loop keeps reading the socket while the thread hashes and
    writes, up to :data:`PIPE_DEPTH` MiB ahead, so network and disk overlap instead of
    taking turns; memory stays bounded whatever the file size. A body that ends early
    (the client went away) reaches ``consume`` as the exception that ended it, so a
    truncated upload is never stored as complete.
    """
    send, receive = anyio.create_memory_object_stream[bytes | Exception](PIPE_DEPTH)

    async def produce() -> None:
        async with send:
            try:
                async for piece in _coalesce(request.stream(), CHUNK_BYTES):
                    await send.send(piece)
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
            yield item

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


def guess_mime_type(name: str) -> str:
    base = posixpath.basename(name)
    extension = posixpath.splitext(base)[1].lstrip(".") or base
    if extension in _TEXT_EXTENSIONS:
        return "text/plain"
    return mimetypes.guess_type(base)[0] or "application/octet-stream"


def content_disposition(name: str) -> str:
    """``attachment; filename=…``, with an RFC 5987 ``filename*`` for non-ASCII names."""
    if name.isascii():
        return f"attachment; filename={_header_value(name)}"
    fallback = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode() or "download"
    encoded = quote(name, safe="!#$&+-.^_`|~")
    return f"attachment; filename={_header_value(fallback)}; filename*=UTF-8''{encoded}"


def _header_value(value: str) -> str:
    if _TOKEN.match(value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _file_json(info: FileInfo, parent: str = "") -> dict[str, object]:
    entry: dict[str, object] = {
        "path": posixpath.join(parent, info.path) if parent else info.path,
        "is_dir": info.is_dir,
    }
    if info.file_size is not None:
        entry["file_size"] = info.file_size
    return entry


def endpoints(ctx: Context) -> list[Endpoint]:
    service = ctx.service

    def list_run_artifacts(run_id: str, path: str) -> dict[str, object]:
        run = service.store.get_run(run_id)
        root = service.run_artifact_root(run)
        files = service.list_artifacts(posixpath.join(root, path) if path else root)
        return {"root_uri": run.info.artifact_uri, "files": [_file_json(i, path) for i in files]}

    async def list_artifacts(request: Request) -> Response:
        f = await read_fields(request)
        run_id = f.run_id()
        path = f.text("path") or ""
        if path:
            path = artifact_path(path)
        return ok(await call(list_run_artifacts, run_id, path))

    async def upload_artifact(request: Request) -> Response:
        path = artifact_path(request.path_params["artifact_path"])
        try:
            await pipe_body(request, lambda chunks: service.put_artifact(path, chunks))
        except ClientDisconnect:
            # Not a server fault, so no 500 and traceback: the client is gone and nothing was stored.
            raise InvalidInput(f"The upload of '{path}' ended early; nothing was stored.") from None
        return ok()

    async def download_artifact(request: Request) -> Response:
        path = artifact_path(request.path_params["artifact_path"])
        record, chunks = await call(service.stream_artifact, path)
        name = posixpath.basename(path)
        headers = {
            "Content-Type": guess_mime_type(name),
            "Content-Disposition": content_disposition(name),
            "Content-Length": str(record.size),
            "X-Content-Type-Options": "nosniff",
        }
        return StreamingResponse(chunks, headers=headers)

    async def delete_artifact(request: Request) -> Response:
        path = artifact_path(request.path_params["artifact_path"])
        await call(service.delete_artifact, path)
        return ok()

    async def list_proxied(request: Request) -> Response:
        f = await read_fields(request)
        path = f.text("path") or ""
        files = await call(service.list_artifacts, artifact_path(path) if path else "")
        return ok({"files": [_file_json(info) for info in files]})

    proxied = "/mlflow-artifacts/artifacts/{artifact_path:path}"
    return [
        Endpoint(
            "GET",
            "/mlflow/artifacts/list",
            list_artifacts,
            "List a run's artifacts under a folder",
            {"run_id": "string", "path": "string", "page_token": "string"},
        ),
        Endpoint("PUT", proxied, upload_artifact, "Upload one artifact file (streamed request body)"),
        Endpoint(
            "GET", proxied, download_artifact, "Download one artifact file, verified against its SHA-256"
        ),
        Endpoint("DELETE", proxied, delete_artifact, "Delete an artifact file or folder"),
        Endpoint(
            "GET",
            "/mlflow-artifacts/artifacts",
            list_proxied,
            "List artifacts under a path relative to the artifact root",
            {"path": "string"},
        ),
    ]
