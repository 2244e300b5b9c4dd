"""``/api/3.0/mlflow/server-info``: the capabilities MLflow 3 clients ask for before uploading.

Clients probe it per artifact repository to decide on multipart transfers, and cache only
successful answers; a 404 would cost an extra round trip for every repository they open.
Conveyor streams every file through its proxy (hashing it on the way), so multipart and
presigned transfers are advertised as off and the client sends plain PUT/GET requests.
"""

from __future__ import annotations

from fastapi import Request, Response

from conveyor.server.mlflow_api.routing import Context, Endpoint
from conveyor.server.mlflow_api.wire import ok

CAPABILITIES = {
    # MLflow names its own back ends here (FileStore, SqlStore); Conveyor is neither.
    "store_type": None,
    "workspaces_enabled": True,
    "trace_archival_enabled": False,
    "multipart_uploads_enabled": False,
    "multipart_downloads_enabled": False,
    "presigned_upload_run_id_supported": False,
    "presigned_upload_model_id_supported": False,
    "features_enabled": {"gateway": False},
}


def endpoints(_ctx: Context) -> list[Endpoint]:
    async def get_server_info(_request: Request) -> Response:
        return ok(CAPABILITIES)

    return [
        Endpoint(
            "GET",
            "/mlflow/server-info",
            get_server_info,
            "Server capabilities (multipart and presigned transfers are off)",
            version="3.0",
        )
    ]
