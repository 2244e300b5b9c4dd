"""Where a version's bytes live, and fetching them into a local folder, verified.

A source is one of:

- ``runs:/<run_id>/<path>``: a folder under a run's artifacts (``log_model``);
- ``mlflow-artifacts:/<path>``: any folder under the managed artifact root (what MLflow
  clients send, e.g. a logged model's location);
- ``models:/<model_id>``: an MLflow 3 logged model, by its ``m-…`` id;
- a local path or ``file://`` URI, only where the service allows local sources (the
  embedded Python API; never the server, which must not read its own disk on request).

Managed folders are downloaded file by file through the artifact index, so every byte is
checked against the SHA-256 recorded at upload before the model's own manifest is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from conveyor.artifacts import ArtifactStore, safe_relpath
from conveyor.errors import InvalidInput, NotFound
from conveyor.store.base import MANAGED_ARTIFACT_SCHEME
from conveyor.store.sql.logged_models import SqlLoggedModelStore
from conveyor.store.sql.store import SqlStore
from conveyor.tracking.service import TrackingService

_RUNS = re.compile(r"^runs:/(?P<run>[0-9a-f]{32})/(?P<path>.+)$")
_LOGGED_MODEL = re.compile(r"^models:/(?P<id>m-[0-9a-f]{32})/?$")


@dataclass(frozen=True, slots=True)
class Source:
    """A parsed source: a folder under the artifact root, or a local folder."""

    #: Relative path under the managed artifact root, or None for a local folder.
    managed: str | None
    local: Path | None
    #: The run the source belongs to, when the URI names one.
    run_id: str | None = None


def parse_source(uri: str, store: SqlStore, artifacts: ArtifactStore, *, allow_local: bool) -> Source:
    """Where ``uri`` points; see the module docstring for the forms.

    Raises:
        InvalidInput: an unknown form, an unsafe path, or a local path where refused.
        NotFound: the run or logged model does not exist.
    """
    tracking = TrackingService(store, artifacts)
    if match := _RUNS.match(uri):
        return Source(tracking.run_artifact_path(match["run"], match["path"].strip("/")), None, match["run"])
    if uri.startswith(MANAGED_ARTIFACT_SCHEME):
        return Source(safe_relpath(uri[len(MANAGED_ARTIFACT_SCHEME) :].strip("/")), None)
    if match := _LOGGED_MODEL.match(uri):
        model = SqlLoggedModelStore(store).get(match["id"])
        if not model.artifact_location.startswith(MANAGED_ARTIFACT_SCHEME):
            raise InvalidInput(f"Logged model {model.model_id} stores its files outside the artifact root")
        location = model.artifact_location[len(MANAGED_ARTIFACT_SCHEME) :].strip("/")
        return Source(safe_relpath(location), None, model.source_run_id)
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:", uri) and not uri.startswith("file:"):
        raise InvalidInput(
            f"Unsupported model source {uri!r}: use runs:/<run_id>/<path>, mlflow-artifacts:/<path>, "
            "models:/<logged model id>, or a local folder"
        )
    if not allow_local:
        raise InvalidInput(
            f"Model source {uri!r} is a local path; this server registers only models stored in its "
            "artifact store (runs:/<run_id>/<path> or mlflow-artifacts:/<path>)"
        )
    return Source(None, Path(uri[len("file://") :] if uri.startswith("file://") else uri))


def fetch(source: Source, store: SqlStore, artifacts: ArtifactStore, scratch: Path) -> Path:
    """A local folder with the source's files: the folder itself, or a verified download.

    Raises:
        NotFound: nothing is stored under the source.
        IntegrityError: a stored file no longer matches its recorded SHA-256.
    """
    if source.local is not None:
        return source.local
    assert source.managed is not None
    prefix = source.managed.rstrip("/") + "/"
    records = store.list_artifact_records(prefix)
    if not records:
        raise NotFound(f"No model files under {MANAGED_ARTIFACT_SCHEME}/{source.managed}")
    target = scratch / "model"
    for record in records:
        local = target / record.path[len(prefix) :]
        local.parent.mkdir(parents=True, exist_ok=True)
        artifacts.download(record.path, str(local), record.sha256)
    return target
