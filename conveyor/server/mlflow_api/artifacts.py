"""Artifact endpoints: the run listing (``/mlflow/artifacts/list``) and the ``mlflow-artifacts`` proxy.

Runs and logged models get ``mlflow-artifacts:/…`` locations, so MLflow clients send every
file through these routes and Conveyor hashes and indexes each one on the way in
(:meth:`TrackingService.put_artifact`). Uploads stream from the socket to storage
(:mod:`.streaming`); downloads are verified against their SHA-256 before the first byte goes
out, then streamed. Paths that could leave the artifact root are refused with MLflow's
exact answer, ``{"error_code": "INVALID_PARAMETER_VALUE", "message": "Invalid path"}``.
"""

from __future__ import annotations

import mimetypes
import posixpath
import re
import unicodedata
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.responses import StreamingResponse
from starlette.requests import ClientDisconnect

from conveyor.errors import InvalidInput
from conveyor.server.mlflow_api.routing import Context, Endpoint, call
from conveyor.server.mlflow_api.wire import artifact_path, ok, read_fields
from conveyor.server.streaming import pipe_body
from conveyor.tracking.service import FileInfo

#: Served as ``text/plain`` whatever their registered type, as MLflow does, so browsers
#: show configs, logs and MLmodel files instead of running or downloading them.
_CONFIG_EXTENSIONS = ("cfg", "conf", "cnf", "cf", "ini", "properties", "prop", "hocon", "toml", "yaml", "yml")
_CODE_EXTENSIONS = ("xml", "json", "js", "py", "py3", "csv", "tsv", "md", "rst", "ipynb")
_TEXT_EXTENSIONS = frozenset(
    ("txt", "log", "err", "MLmodel", "MLproject", *_CONFIG_EXTENSIONS, *_CODE_EXTENSIONS)
)
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
#: Download pieces: measured through the MLflow client, 256 KiB beat 1 and 4 MiB (smaller
#: writes keep uvicorn's send buffer draining while the next piece is read).
DOWNLOAD_CHUNK_BYTES = 256 * 1024


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
        record, chunks = await call(service.stream_artifact, path, DOWNLOAD_CHUNK_BYTES)
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
