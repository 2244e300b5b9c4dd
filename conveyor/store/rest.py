"""The tracking store as a client of a Conveyor server's native API.

Not a second storage engine: every call is one HTTP request to ``/api/conveyor/v1`` on a
kept-alive connection (MLflow #1867: a TLS handshake per call). Transient failures —
connection errors, 429 and 503 — are retried with exponential backoff; errors the
server reports come back as the same ``ConveyorError`` subclass it raised. Given a
token, every request carries ``Authorization: Bearer <token>`` (servers run with ``--auth``),
and with ``CONVEYOR_WORKSPACE`` set, ``X-Conveyor-Workspace`` names the workspace to work in.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from conveyor.errors import BackendUnavailable, ConveyorError, error_from_json
from conveyor.store import codec
from conveyor.store.actor import current_workspace
from conveyor.store.base import TrackingStore
from conveyor.store.entities import (
    ArtifactRecord,
    DatasetInput,
    Experiment,
    Metric,
    Page,
    Param,
    Run,
    RunInfo,
    RunStatus,
    Tag,
    ViewType,
)

API = "/api/conveyor/v1"
_RETRY_STATUS = {429, 502, 503, 504}
#: Failures after which the server cannot have acted on the request, so sending it again
#: cannot apply it twice (a kept-alive connection the server had closed counts too).
_NOT_RECEIVED = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError)


class RestStore(TrackingStore):
    """Tracking store behind ``http(s)://host:port`` (a running ``conveyor server``)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 120.0,
        max_retries: int = 5,
        transport: httpx.BaseTransport | None = None,
        token: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.transport = transport
        self.token = token
        self._client: httpx.Client | None = None

    def __repr__(self) -> str:
        # Never the token: reprs end up in logs and tracebacks.
        return f"RestStore({self.base_url!r})"

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            if workspace := current_workspace():
                headers["X-Conveyor-Workspace"] = workspace
            self._client = httpx.Client(
                base_url=self.base_url, timeout=self.timeout, transport=self.transport, headers=headers
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def request(self, method: str, path: str, *, json: Any = None, **kwargs: Any) -> httpx.Response:
        """One API call with retries on transient failures; raises the server's error class."""
        if json is not None:
            kwargs["content"] = orjson.dumps(json)
            kwargs["headers"] = {"Content-Type": "application/json", **kwargs.get("headers", {})}
        for attempt in range(self.max_retries + 1):
            try:
                response = self.client.request(method, f"{API}{path}", **kwargs)
            except _NOT_RECEIVED as exc:
                if attempt == self.max_retries or not _replayable(kwargs):
                    raise BackendUnavailable(
                        f"Cannot reach the Conveyor server at {self.base_url}: {exc}"
                    ) from exc
            except httpx.TransportError as exc:
                raise BackendUnavailable(f"Request to {self.base_url} failed: {exc}") from exc
            else:
                if response.status_code not in _RETRY_STATUS or attempt == self.max_retries:
                    break
            time.sleep(min(0.1 * 2**attempt, 5.0))
        if response.status_code >= 400:
            raise _error(response)
        return response

    def _call(self, method: str, path: str, json: Any = None, **kwargs: Any) -> Any:
        return orjson.loads(self.request(method, path, json=json, **kwargs).content)

    # -- experiments -----------------------------------------------------------------------

    def _create_experiment(self, name: str, artifact_location: str | None, tags: dict[str, str]) -> str:
        body = {"name": name, "artifact_location": artifact_location, "tags": tags}
        return self._call("POST", "/experiments", body)["experiment_id"]

    def _get_experiment(self, experiment_id: str) -> Experiment:
        return codec.decode_experiment(self._call("GET", f"/experiments/{experiment_id}"))

    def _get_experiment_by_name(self, name: str) -> Experiment | None:
        try:
            return codec.decode_experiment(self._call("GET", "/experiments/by-name", params={"name": name}))
        except LookupError:
            return None

    def _search_experiments(
        self,
        view_type: ViewType,
        filter_string: str,
        order_by: list[str],
        max_results: int,
        page_token: str | None,
    ) -> Page[Experiment]:
        body = {
            "view_type": view_type.value,
            "filter": filter_string,
            "order_by": order_by,
            "max_results": max_results,
            "page_token": page_token,
        }
        data = self._call("POST", "/experiments/search", body)
        return Page([codec.decode_experiment(e) for e in data["experiments"]], data["next_page_token"])

    def _rename_experiment(self, experiment_id: str, new_name: str) -> None:
        self._call("PATCH", f"/experiments/{experiment_id}", {"name": new_name})

    def _delete_experiment(self, experiment_id: str) -> None:
        self._call("POST", f"/experiments/{experiment_id}/delete")

    def _restore_experiment(self, experiment_id: str) -> None:
        self._call("POST", f"/experiments/{experiment_id}/restore")

    def _set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        self._call("PUT", f"/experiments/{experiment_id}/tags/{quote(key)}", {"value": value})

    def _delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        self._call("DELETE", f"/experiments/{experiment_id}/tags/{quote(key)}")

    # -- runs ------------------------------------------------------------------------------

    def _create_run(
        self, experiment_id: str, user_id: str, start_time: int, tags: list[Tag], run_name: str | None
    ) -> Run:
        body = {
            "experiment_id": experiment_id,
            "user_id": user_id,
            "start_time": start_time,
            "tags": {t.key: t.value for t in tags},
            "run_name": run_name,
        }
        return codec.decode_run(self._call("POST", "/runs", body))

    def _get_run(self, run_id: str) -> Run:
        return codec.decode_run(self._call("GET", f"/runs/{run_id}"))

    def _update_run_info(
        self, run_id: str, status: RunStatus | None, end_time: int | None, run_name: str | None
    ) -> RunInfo:
        body = {"status": status and status.value, "end_time": end_time, "run_name": run_name}
        return codec.decode_run_info(self._call("PATCH", f"/runs/{run_id}", body))

    def _delete_run(self, run_id: str) -> None:
        self._call("POST", f"/runs/{run_id}/delete")

    def _restore_run(self, run_id: str) -> None:
        self._call("POST", f"/runs/{run_id}/restore")

    def _log_batch(self, run_id: str, metrics: list[Metric], params: list[Param], tags: list[Tag]) -> None:
        if metrics and not params and not tags:
            self._call("POST", f"/runs/{run_id}/metrics", {"metrics": codec.encode_metrics(metrics)})
            return
        body = {
            "metrics": codec.encode_metrics(metrics),
            "params": {p.key: p.value for p in params},
            "tags": {t.key: t.value for t in tags},
        }
        self._call("POST", f"/runs/{run_id}/batch", body)

    def _delete_tag(self, run_id: str, key: str) -> None:
        self._call("DELETE", f"/runs/{run_id}/tags/{quote(key)}")

    def _log_inputs(self, run_id: str, inputs: list[DatasetInput]) -> None:
        self._call(
            "POST", f"/runs/{run_id}/inputs", {"inputs": [codec.encode_dataset_input(i) for i in inputs]}
        )

    def _get_metric_history(
        self, run_id: str, key: str, max_results: int | None, page_token: str | None
    ) -> Page[Metric]:
        params = {
            k: v for k, v in (("max_results", max_results), ("page_token", page_token)) if v is not None
        }
        data = self._call("GET", f"/runs/{run_id}/metrics/{quote(key)}", params=params)
        return Page(codec.decode_metrics(data["metrics"]), data["next_page_token"])

    def _search_runs(
        self,
        experiment_ids: list[str],
        filter_string: str,
        view_type: ViewType,
        max_results: int,
        order_by: list[str],
        page_token: str | None,
    ) -> Page[Run]:
        body = {
            "experiment_ids": experiment_ids,
            "filter": filter_string,
            "run_view_type": view_type.value,
            "max_results": max_results,
            "order_by": order_by,
            "page_token": page_token,
        }
        data = self._call("POST", "/runs/search", body)
        return Page([codec.decode_run(r) for r in data["runs"]], data["next_page_token"])

    def _count_runs(self, experiment_ids: list[str], filter_string: str, view_type: ViewType) -> int:
        body = {"experiment_ids": experiment_ids, "filter": filter_string, "run_view_type": view_type.value}
        return self._call("POST", "/runs/count", body)["count"]

    # -- artifact index and garbage collection ---------------------------------------------

    def _record_artifact(self, record: ArtifactRecord) -> None:
        self._call("PUT", "/artifact-index", codec.encode_artifact(record))

    def _get_artifact_record(self, path: str) -> ArtifactRecord | None:
        records = self._call("GET", "/artifact-index", params={"path": path})["records"]
        return codec.decode_artifact(records[0]) if records else None

    def _list_artifact_records(self, prefix: str) -> list[ArtifactRecord]:
        records = self._call("GET", "/artifact-index", params={"prefix": prefix})["records"]
        return [codec.decode_artifact(r) for r in records]

    def _delete_artifact_records(self, prefix: str) -> int:
        return self._call("DELETE", "/artifact-index", params={"prefix": prefix})["deleted"]

    def _deleted_run_ids(self, older_than_ms: int | None) -> list[str]:
        params = {} if older_than_ms is None else {"older_than": older_than_ms}
        return self._call("GET", "/runs/deleted", params=params)["run_ids"]

    def _hard_delete_run(self, run_id: str) -> None:
        self._call("DELETE", f"/runs/{run_id}")


def _replayable(kwargs: dict[str, Any]) -> bool:
    """A request whose body is bytes can be sent again; a consumed stream cannot."""
    content = kwargs.get("content")
    return content is None or isinstance(content, bytes)


def _error(response: httpx.Response) -> ConveyorError:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = {"message": response.text[:500] or f"HTTP {response.status_code}"}
    if not isinstance(body, dict):
        body = {"message": str(body)[:500]}
    return error_from_json(body, response.status_code)
