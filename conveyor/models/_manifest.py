"""The model manifest ``conveyor-model.yaml``: what a model directory holds, and proof of it.

The manifest lists every other file of the directory with its SHA-256 and size, and a
``digest`` that identifies the whole model::

    digest = sha256( for each file, sorted by path:  "<path>\\0<sha256>\\n"
                     then                             "conveyor-model.yaml\\0<sha256 of metadata>\\n" )

where the metadata is every manifest field except ``files``, ``digest`` and (from format
version 2) ``created``, as JSON with sorted keys and no spaces. Covering the metadata too
means that editing the signature or the flavor fields (which steer loading) changes the
digest, not only editing a file; a registry that records the digest at registration
detects either. ``created`` is left out because the digest names the model, not the
moment it was saved: the same model saved twice gets the same digest, so re-registering
an identical model is recognisable. Format 1 manifests covered ``created``; their digests
are still checked that way.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor.artifacts import safe_relpath
from conveyor.errors import IntegrityError, InvalidInput
from conveyor.models._signature import Signature

__all__ = [
    "MANIFEST_NAME",
    "FileEntry",
    "ModelManifest",
    "compute_digest",
    "files_under",
    "hash_file",
    "read_manifest",
    "verify_folder",
]

MANIFEST_NAME = "conveyor-model.yaml"
#: Bumped when the layout or the digest changes incompatibly; :func:`read_manifest`
#: refuses newer ones. Version 2 keeps ``created`` out of the digest.
FORMAT_VERSION = 2
_BLOCK = 1 << 20


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of a model directory as the manifest records it."""

    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class ModelManifest:
    """The parsed ``conveyor-model.yaml``; see the module docstring for ``digest``."""

    #: Flavor name (``sklearn``, ``xgboost``, ...), the key to the loader.
    flavor: str
    #: Flavor-specific fields (``model_class``, ``model_format``, ...).
    flavor_fields: Mapping[str, Any]
    #: Distribution name and installed version of the framework that built the model.
    framework: str
    framework_version: str
    python_version: str
    #: ``name==version`` lines that reproduce the environment the model needs.
    pip_requirements: tuple[str, ...]
    signature: Signature | None
    #: ``{"path": ..., "kind": "dataframe" | "tensor" | "tensors"}`` or None.
    input_example: Mapping[str, str] | None
    #: ISO 8601 UTC time of saving.
    created: str
    files: Mapping[str, FileEntry] = field(default_factory=dict)
    digest: str = ""
    format_version: int = FORMAT_VERSION

    def metadata(self) -> dict[str, Any]:
        """Every field except ``files`` and ``digest``, YAML- and JSON-ready."""
        return {
            "format_version": self.format_version,
            "flavor": {"name": self.flavor, **dict(self.flavor_fields)},
            "framework": {"name": self.framework, "version": self.framework_version},
            "python_version": self.python_version,
            "pip_requirements": list(self.pip_requirements),
            "signature": self.signature.to_dict() if self.signature else None,
            "input_example": dict(self.input_example) if self.input_example else None,
            "created": self.created,
        }

    def digested_metadata(self) -> dict[str, Any]:
        """The metadata the digest covers: :meth:`metadata` less ``created`` (format 2 on).

        The save time would make every save of one model a different model; format 1
        manifests did include it, so theirs is kept to check their recorded digests.
        """
        meta = self.metadata()
        if self.format_version >= 2:
            del meta["created"]
        return meta

    def to_dict(self) -> dict[str, Any]:
        files = {path: {"sha256": e.sha256, "size": e.size} for path, e in sorted(self.files.items())}
        return {**self.metadata(), "files": files, "digest": self.digest}

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelManifest:
        """Rebuild a manifest from its parsed YAML.

        Raises:
            InvalidInput: a required field is missing or malformed, or the format
                version is newer than this Conveyor reads.
        """
        try:
            version = int(data["format_version"])
            if version > FORMAT_VERSION:
                raise InvalidInput(
                    f"The model was saved in format version {version}; this Conveyor reads up to "
                    f"{FORMAT_VERSION}. Upgrade Conveyor to load it."
                )
            flavor = dict(data["flavor"])
            signature = data.get("signature")
            return cls(
                flavor=str(flavor.pop("name")),
                flavor_fields=flavor,
                framework=str(data["framework"]["name"]),
                framework_version=str(data["framework"]["version"]),
                python_version=str(data["python_version"]),
                pip_requirements=tuple(str(r) for r in data.get("pip_requirements") or ()),
                signature=Signature.from_dict(signature) if signature else None,
                input_example=data.get("input_example"),
                created=str(data["created"]),
                files={
                    safe_relpath(p): FileEntry(str(e["sha256"]), int(e["size"]))
                    for p, e in data["files"].items()
                },
                digest=str(data["digest"]),
                format_version=version,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, InvalidInput):
                raise
            raise InvalidInput(f"{MANIFEST_NAME} is malformed ({type(exc).__name__}: {exc})") from exc


def compute_digest(files: Mapping[str, FileEntry], metadata: Mapping[str, Any]) -> str:
    """The model digest over the files and ``metadata`` (:meth:`ModelManifest.digested_metadata`)."""
    meta = json.dumps(metadata, sort_keys=True, separators=(",", ":")).encode()
    lines = [f"{path}\0{files[path].sha256}\n" for path in sorted(files)]
    lines.append(f"{MANIFEST_NAME}\0{hashlib.sha256(meta).hexdigest()}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def read_manifest(folder: Path) -> ModelManifest:
    """Parse ``folder/conveyor-model.yaml`` (safe YAML: plain data only, no Python tags).

    Raises:
        InvalidInput: the file is not valid YAML or not a manifest.
    """
    import yaml

    try:
        data = yaml.safe_load((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{MANIFEST_NAME} in {folder} is not valid YAML: {exc}") from exc
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{MANIFEST_NAME} in {folder} is not a mapping")
    return ModelManifest.from_dict(data)


def verify_folder(folder: Path, manifest: ModelManifest, *, expected_digest: str | None = None) -> None:
    """Check that ``folder`` holds exactly the manifest's files, byte for byte.

    Run before anything is deserialized: a file that was swapped after saving may be
    crafted to exploit the loader, so it must be refused before a loader opens it.

    Raises:
        IntegrityError: a file is missing, unlisted (extra), or differs in size or
            SHA-256 (the message names it); the recomputed digest differs from the
            manifest's (its metadata was edited) or from ``expected_digest``.
    """
    present = set(files_under(folder))
    listed = set(manifest.files)
    if extra := sorted(present - listed):
        raise IntegrityError(
            f"Model directory {folder} holds files its manifest does not list: {extra}. "
            "A model directory must contain only what was saved; remove them or re-save the model."
        )
    if missing := sorted(listed - present):
        raise IntegrityError(f"Model directory {folder} is missing files its manifest lists: {missing}")
    for path in sorted(listed):
        _verify_file(folder, path, manifest.files[path])
    digest = compute_digest(manifest.files, manifest.digested_metadata())
    if digest != manifest.digest:
        raise IntegrityError(
            f"{MANIFEST_NAME} in {folder} was edited after saving: its digest is {manifest.digest}, "
            f"its contents hash to {digest}"
        )
    if expected_digest is not None and digest != expected_digest:
        raise IntegrityError(f"Model at {folder} has digest {digest}, expected {expected_digest}")


def hash_file(path: Path) -> FileEntry:
    """SHA-256 and size of the file at ``path``, read in blocks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
            size += len(block)
    return FileEntry(digest.hexdigest(), size)


def files_under(folder: Path) -> list[str]:
    """Sorted relative POSIX paths of every file below ``folder`` except the manifest."""
    found = []
    for dirpath, _dirs, names in os.walk(folder):
        for name in names:
            rel = (Path(dirpath) / name).relative_to(folder).as_posix()
            if rel != MANIFEST_NAME:
                found.append(rel)
    return sorted(found)


def _verify_file(folder: Path, path: str, entry: FileEntry) -> None:
    found = hash_file(folder / path)
    if found != entry:
        raise IntegrityError(
            f"Model file {path!r} in {folder} does not match its manifest: expected sha256 {entry.sha256} "
            f"({entry.size} bytes), found {found.sha256} ({found.size} bytes). Refusing to load it."
        )
