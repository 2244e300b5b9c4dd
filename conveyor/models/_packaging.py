"""Saving a model into a verified directory, and loading one back (Conveyor or MLflow format)."""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import uuid4

from conveyor.artifacts import ArtifactStore
from conveyor.errors import ConveyorError, InvalidInput, NotFound
from conveyor.models._examples import read_example, write_example
from conveyor.models._manifest import (
    MANIFEST_NAME,
    FileEntry,
    ModelManifest,
    compute_digest,
    read_manifest,
    verify_folder,
)
from conveyor.models._signature import Signature, infer_signature
from conveyor.models._uris import resolve
from conveyor.models.flavors import default_registry
from conveyor.models.flavors._base import Flavor, LoadOptions, installed_version

if TYPE_CHECKING:
    from conveyor.tracking.client import Client

__all__ = ["LoadedModel", "ModelInfo", "load", "load_folder", "read_model_manifest", "save"]

#: The file an MLflow model directory is recognised by.
MLFLOW_MANIFEST = "MLmodel"


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What ``save`` or ``log_model`` wrote."""

    #: Where to load it from: the folder for ``save``, ``runs:/<run>/<name>`` for ``log_model``.
    uri: str
    manifest: ModelManifest
    #: The run it was logged to, for ``log_model``.
    run_id: str | None = None

    @property
    def digest(self) -> str:
        """SHA-256 identifying the model (files and metadata); see ``conveyor.models._manifest``."""
        return self.manifest.digest

    @property
    def flavor(self) -> str:
        return self.manifest.flavor

    @property
    def signature(self) -> Signature | None:
        return self.manifest.signature


@dataclass(slots=True)
class LoadedModel:
    """A loaded model: the native object, its manifest, and a ``predict`` that checks input."""

    #: The framework's own object (estimator, booster, ``InferenceSession``...).
    raw: Any
    manifest: ModelManifest
    flavor: Flavor
    #: The saved input example, or None.
    input_example: Any = field(default=None, repr=False)

    @property
    def signature(self) -> Signature | None:
        return self.manifest.signature

    def predict(self, data: Any) -> Any:
        """The model's predictions for ``data``, after enforcing the input signature.

        Without a signature the data goes to the model as it is. With one, see
        :meth:`Schema.enforce`: extra columns are dropped, columns are reordered and
        safely cast, absent optional columns are filled with missing values.

        Raises:
            InvalidInput: ``data`` does not fit the signature (the message names the
                column or array and the problem).
        """
        if self.manifest.signature is not None:
            data = self.manifest.signature.inputs.enforce(data)
        return self.flavor.predict(self.raw, data)


def save(
    model: Any,
    path: str | os.PathLike[str],
    *,
    signature: Signature | None = None,
    input_example: Any = None,
    flavor: str | None = None,
    pip_requirements: Sequence[str] | None = None,
    allow_pickle: bool = False,
    created: datetime | None = None,
) -> ModelInfo:
    """Write ``model`` into a new model directory at ``path``.

    The directory holds the flavor's files, the input example if given, and
    ``conveyor-model.yaml`` listing each file's SHA-256 (computed by the artifact store
    as it writes) and the model digest. It is built beside ``path`` and renamed into
    place, so a failed save never leaves a half-written model under that name.

    Args:
        model: A fitted model of a supported framework; see :mod:`conveyor.models.flavors`.
        path: A local folder that does not exist yet, or is empty.
        signature: Input (and output) schema enforced by ``LoadedModel.predict``;
            inferred from ``input_example`` when omitted.
        input_example: A DataFrame, array or dict of arrays like the model's input.
        flavor: Force a flavor by name instead of picking one by the model's type.
        pip_requirements: Overrides the inferred ``name==version`` list.
        allow_pickle: Needed for the ``python_function`` flavor, which pickles.
        created: The save time the manifest records (default: now). Outside the digest;
            pipelines fix it so that equal models are stored as equal bytes.

    Raises:
        InvalidInput: no flavor takes the model (or only a pickling one and
            ``allow_pickle`` is false), ``path`` is not empty, or the example is unusable.
        ConveyorError: the flavor's framework package is not installed (with the hint).
    """
    target = Path(path)
    _check_target(target)
    chosen = default_registry.for_model(model, name=flavor, allow_pickle=allow_pickle)
    if signature is None and input_example is not None:
        signature = infer_signature(input_example)
    partial = target.with_name(f".conveyor-partial-{uuid4().hex[:16]}")
    try:
        when = created or datetime.now(UTC)
        manifest = _write_folder(partial, model, chosen, signature, input_example, pip_requirements, when)
        partial.replace(target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return ModelInfo(str(target), manifest)


def load(
    uri_or_path: str | os.PathLike[str],
    *,
    allow_pickle: bool = False,
    trusted_types: Iterable[str] = (),
    client: Client | None = None,
) -> LoadedModel:
    """Load the model at a path or URI, after verifying every file against its manifest.

    Args:
        uri_or_path: A folder, ``file://...``, ``runs:/<run_id>/<path>``, or a scheme a
            resolver was registered for (``models:/`` once a registry is configured).
        allow_pickle: Allow pickle-based models (``python_function``, MLflow
            pickle/cloudpickle). Loading a pickle runs code from the file.
        trusted_types: Type names a skops file may contain beyond scikit-learn, NumPy
            and SciPy.
        client: Tracking client for ``runs:/`` URIs (default: ``Client()``).

    Raises:
        NotFound: no model directory there.
        IntegrityError: a file is missing, extra or altered, or the manifest was edited.
        InvalidInput: a bad URI, a pickle without ``allow_pickle``, untrusted skops types.
        ConveyorError: the flavor's framework package is not installed (with the hint).
    """
    options = LoadOptions(allow_pickle=allow_pickle, trusted_types=tuple(trusted_types))
    with resolve(os.fspath(uri_or_path), client=client) as resolved:
        return load_folder(resolved.folder, options, expected_digest=resolved.expected_digest)


def load_folder(folder: Path, options: LoadOptions, *, expected_digest: str | None = None) -> LoadedModel:
    """Load a local model directory; see :func:`load`."""
    if (folder / MANIFEST_NAME).is_file():
        manifest = read_manifest(folder)
        verify_folder(folder, manifest, expected_digest=expected_digest)
        chosen = default_registry.by_name(manifest.flavor)
        with _needs_library(chosen):
            raw = chosen.load(folder, manifest.flavor_fields, options)
        return LoadedModel(raw, manifest, chosen, read_example(folder, manifest.input_example))
    if (folder / MLFLOW_MANIFEST).is_file():
        from conveyor.models._mlflow import load_mlflow_folder

        return load_mlflow_folder(folder, options, expected_digest=expected_digest)
    raise NotFound(
        f"No model at {folder}: it has neither {MANIFEST_NAME} nor an MLflow {MLFLOW_MANIFEST} file"
    )


def read_model_manifest(folder: str | os.PathLike[str]) -> ModelManifest:
    """The manifest of a local model directory, every file verified, the model not loaded.

    For a registry recording what it registers: the returned ``digest`` is the one
    :func:`load` checks ``expected_digest`` against, for Conveyor and MLflow directories
    alike, and nothing in the folder is deserialized (pickles are never opened).

    Raises:
        NotFound: no model directory there.
        IntegrityError: a file is missing, extra or altered, or the manifest was edited.
        InvalidInput: a malformed manifest or ``MLmodel``.
    """
    path = Path(folder)
    if (path / MANIFEST_NAME).is_file():
        manifest = read_manifest(path)
        verify_folder(path, manifest)
        return manifest
    if (path / MLFLOW_MANIFEST).is_file():
        from conveyor.models._mlflow import mlflow_manifest

        return mlflow_manifest(path)
    raise NotFound(f"No model at {path}: it has neither {MANIFEST_NAME} nor an MLflow {MLFLOW_MANIFEST} file")


@contextmanager
def _needs_library(flavor: Flavor) -> Iterator[None]:
    """Turn a missing framework package into an install hint instead of a bare ImportError."""
    try:
        yield
    except ModuleNotFoundError as exc:
        raise ConveyorError(
            f"The {flavor.name!r} model flavor needs the Python package {exc.name!r}, which is not "
            "installed; install the models extra: pip install 'conveyor[models]'"
        ) from exc


def _check_target(target: Path) -> None:
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InvalidInput(f"Cannot save a model to {target}: it exists and is not an empty folder")


def _write_folder(
    folder: Path,
    model: Any,
    chosen: Flavor,
    signature: Signature | None,
    input_example: Any,
    pip_requirements: Sequence[str] | None,
    created: datetime,
) -> ModelManifest:
    """Stage the flavor's files, copy them through the artifact store (hashing), add the manifest."""
    store = ArtifactStore(str(folder.resolve()))
    with tempfile.TemporaryDirectory(prefix="conveyor-model-") as tmp:
        staging = Path(tmp)
        with _needs_library(chosen):
            fields = chosen.dump(model, staging)
        example = write_example(staging, input_example) if input_example is not None else None
        files = {}
        for rel in sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file()):
            size, sha256 = store.write_file(rel, staging / rel)
            files[rel] = FileEntry(sha256, size)
    manifest = ModelManifest(
        flavor=chosen.name,
        flavor_fields=fields,
        framework=chosen.framework,
        framework_version=installed_version(chosen.framework) or "unknown",
        python_version=platform.python_version(),
        pip_requirements=tuple(
            pip_requirements if pip_requirements is not None else chosen.pinned_requirements()
        ),
        signature=signature,
        input_example=example,
        created=created.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        files=files,
    )
    manifest = replace(manifest, digest=compute_digest(files, manifest.digested_metadata()))
    store.write_bytes(MANIFEST_NAME, manifest.to_yaml().encode("utf-8"))
    return manifest
