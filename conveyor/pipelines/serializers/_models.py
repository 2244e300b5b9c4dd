"""Fitted models in Conveyor's model format: safe to load, verified, and byte-stable.

A step that returns a fitted model (scikit-learn, XGBoost, LightGBM, ONNX) has it stored
as a Conveyor model directory (:func:`conveyor.models.save`: skops for scikit-learn,
native files for the others) packed into one zip. Loading unpacks it and goes through
:func:`conveyor.models.load`, which checks every file against the manifest's SHA-256 and
refuses anything but the framework's own types, so reading a pipeline's model output
runs no code from the artifact beyond constructing the types the model was made of
(unlike the ``joblib`` serializer it comes before, which now only takes models no flavor
handles).

Deterministic: the zip lists the files in name order with fixed timestamps, and the
manifest records a fixed save time (the run record says when the step ran), so equal
models give equal bytes and a cached model's digest is the model's digest.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from conveyor.errors import ConveyorError
from conveyor.pipelines.serializers._base import Serializer, as_file

__all__ = ["ModelSerializer"]

#: Outside the digest; fixed so the bytes depend on the model only.
_SAVED_AT = datetime(2000, 1, 1, tzinfo=UTC)
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class ModelSerializer(Serializer):
    """A model one of :mod:`conveyor.models`'s non-pickling flavors takes, as a zipped model directory."""

    name = "conveyor-model"
    version = 1
    extension = ".model.zip"

    def accepts(self, value: object) -> bool:
        if isinstance(value, type) or not callable(getattr(value, "predict", None)):
            return False
        from conveyor.models.flavors import default_registry

        try:
            default_registry.for_model(value)
        except ConveyorError:
            return False
        return True

    def dump(self, value: Any) -> Iterator[bytes]:
        from conveyor import models

        with tempfile.TemporaryDirectory(prefix="conveyor-model-out-") as tmp:
            folder = Path(tmp) / "model"
            models.save(value, folder, created=_SAVED_AT)
            yield _zip(folder)

    def load(self, data: bytes | BinaryIO) -> Any:
        from conveyor import models

        with tempfile.TemporaryDirectory(prefix="conveyor-model-in-") as tmp:
            folder = Path(tmp) / "model"
            with zipfile.ZipFile(as_file(data)) as archive:
                _unzip(archive, folder)
            # Types beyond the framework's that the step's own model held (a custom
            # transformer); the artifact's SHA-256 was checked before this runs.
            own = models.read_model_manifest(folder).flavor_fields.get("skops_types", [])
            return models.load(folder, trusted_types=own).raw


def _zip(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(path.relative_to(folder).as_posix(), date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def _unzip(archive: zipfile.ZipFile, folder: Path) -> None:
    """Extract member by member, refusing names that would land outside ``folder``."""
    root = folder.resolve()
    for member in archive.infolist():
        target = (folder / member.filename).resolve()
        if not target.is_relative_to(root) or member.is_dir():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(archive.read(member))
