"""Loading model directories written by the ``mlflow`` client (an ``MLmodel`` file).

Supported flavors: ``sklearn`` (skops, or pickle/cloudpickle with ``allow_pickle=True``)
and ``xgboost`` (native formats). MLflow records no file hashes, so nothing can be
verified against the author's intent; the files are hashed here to give the model a
digest (``flavor_fields["source_format"] == "mlflow"`` marks it), and a model fetched
through ``runs:/`` is still verified against the hashes the tracking store recorded.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from conveyor.artifacts import safe_relpath
from conveyor.errors import IntegrityError, InvalidInput
from conveyor.models._manifest import ModelManifest, compute_digest, files_under, hash_file
from conveyor.models._packaging import MLFLOW_MANIFEST, LoadedModel
from conveyor.models._signature import FieldSpec, Schema, Signature
from conveyor.models.flavors import default_registry
from conveyor.models.flavors._base import LoadOptions, check_choice, refuse_pickle
from conveyor.models.flavors._skops import load_skops
from conveyor.models.flavors._xgboost import MODEL_CLASSES, MODEL_FORMATS, load_xgboost

__all__ = ["load_mlflow_folder", "mlflow_manifest", "mlflow_signature"]

#: MLflow column types -> the dtypes Conveyor signatures use.
_COLUMN_TYPES = {
    "double": "float64",
    "float": "float32",
    "long": "int64",
    "integer": "int32",
    "boolean": "bool",
    "string": "string",
    "datetime": "datetime64[ns]",
}


def load_mlflow_folder(
    folder: Path, options: LoadOptions, *, expected_digest: str | None = None
) -> LoadedModel:
    """Load an MLflow model directory in the ``sklearn`` or ``xgboost`` flavor.

    The digest is checked before anything is deserialized: a swapped file may be
    crafted to exploit the loader.

    Raises:
        InvalidInput: another flavor, a malformed ``MLmodel``, a pickle without
            ``allow_pickle``, or untrusted skops types.
        IntegrityError: ``expected_digest`` is given and differs.
    """
    mlmodel = _read_mlmodel(folder)
    name = _flavor_name(mlmodel)
    if name not in _LOADERS:
        raise InvalidInput(
            f"The MLflow model in {folder} has flavors {sorted(mlmodel.get('flavors') or {})}; Conveyor "
            "loads MLflow models in the sklearn and xgboost flavors"
        )
    manifest = _manifest(folder, mlmodel, name, mlmodel["flavors"][name])
    if expected_digest is not None and manifest.digest != expected_digest:
        raise IntegrityError(
            f"MLflow model at {folder} has digest {manifest.digest}, expected {expected_digest}. "
            "Refusing to load it."
        )
    raw = _LOADERS[name](folder, mlmodel["flavors"][name], options)
    return LoadedModel(raw, manifest, default_registry.by_name(name))


def mlflow_manifest(folder: Path) -> ModelManifest:
    """The manifest Conveyor derives for an MLflow model directory, without loading it.

    Its digest is what :func:`load_mlflow_folder` checks ``expected_digest`` against, so
    a registry can record it at registration. Flavors Conveyor cannot load still get a
    digest (over their first flavor), so they can be registered and verified.

    Raises:
        InvalidInput: a malformed ``MLmodel`` or one without flavors.
    """
    mlmodel = _read_mlmodel(folder)
    name = _flavor_name(mlmodel)
    return _manifest(folder, mlmodel, name, mlmodel["flavors"][name])


def _flavor_name(mlmodel: Mapping[str, Any]) -> str:
    """The flavor Conveyor uses: sklearn or xgboost if present, else the first native one."""
    flavors = mlmodel.get("flavors")
    if not isinstance(flavors, Mapping) or not flavors:
        raise InvalidInput(f"{MLFLOW_MANIFEST} lists no flavors")
    for name in (*_LOADERS, *(f for f in flavors if f != "python_function"), "python_function"):
        if name in flavors:
            return str(name)
    raise InvalidInput(f"{MLFLOW_MANIFEST} lists no usable flavor")


def mlflow_signature(data: Mapping[str, Any] | None) -> Signature | None:
    """A Conveyor signature from an ``MLmodel`` ``signature`` entry (JSON strings inside).

    Raises:
        InvalidInput: the entry is malformed.
    """
    if not data or not data.get("inputs"):
        return None
    try:
        outputs = _schema(json.loads(data["outputs"])) if data.get("outputs") else None
        return Signature(_schema(json.loads(data["inputs"])), outputs)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidInput(f"The MLflow signature is malformed ({type(exc).__name__}: {exc})") from exc


def _read_mlmodel(folder: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load((folder / MLFLOW_MANIFEST).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{MLFLOW_MANIFEST} in {folder} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidInput(f"{MLFLOW_MANIFEST} in {folder} is not a mapping")
    return data


def _model_file(folder: Path, conf: Mapping[str, Any], key: str) -> Path:
    """The file ``conf[key]`` names, which must stay inside ``folder``."""
    name = conf.get(key)
    if not isinstance(name, str):
        raise InvalidInput(f"{MLFLOW_MANIFEST} flavor entry lacks {key!r}")
    return folder / safe_relpath(name)


def _load_sklearn(folder: Path, conf: Mapping[str, Any], options: LoadOptions) -> Any:
    serialization = check_choice(conf, "serialization_format", ("skops", "pickle", "cloudpickle"))
    path = _model_file(folder, conf, "pickled_model")
    if serialization == "skops":
        return load_skops(path, options)
    refuse_pickle(f"The MLflow scikit-learn model in {folder} ({serialization})", options)
    with open(path, "rb") as handle:
        return pickle.load(handle)  # the caller opted in above


def _load_xgboost(folder: Path, conf: Mapping[str, Any]) -> Any:
    check_choice(conf, "model_format", MODEL_FORMATS)
    model_class = check_choice(
        {"model_class": conf.get("model_class", "xgboost.core.Booster")}, "model_class", MODEL_CLASSES
    )
    return load_xgboost(_model_file(folder, conf, "data"), model_class)


_LOADERS = {
    "sklearn": _load_sklearn,
    "xgboost": lambda folder, conf, _options: _load_xgboost(folder, conf),
}


def _schema(specs: list[Mapping[str, Any]]) -> Schema:
    if specs and all(s.get("type") == "tensor" for s in specs):
        fields = tuple(
            FieldSpec(s.get("name"), s["tensor-spec"]["dtype"], tuple(s["tensor-spec"]["shape"]))
            for s in specs
        )
        return Schema("tensor" if len(fields) == 1 and fields[0].name is None else "tensors", fields)
    return Schema(
        "dataframe",
        tuple(
            FieldSpec(
                str(s.get("name", i)),
                _COLUMN_TYPES.get(s.get("type", ""), "object"),
                None,
                not s.get("required", True),
            )
            for i, s in enumerate(specs)
        ),
    )


def _manifest(folder: Path, mlmodel: Mapping[str, Any], name: str, conf: Mapping[str, Any]) -> ModelManifest:
    if not isinstance(conf, Mapping):
        raise InvalidInput(f"{MLFLOW_MANIFEST} flavor {name!r} is not a mapping")
    files = {rel: hash_file(folder / rel) for rel in files_under(folder)}
    requirements = folder / "requirements.txt"
    manifest = ModelManifest(
        flavor=name,
        flavor_fields={**{k: v for k, v in conf.items() if v is not None}, "source_format": "mlflow"},
        framework={"sklearn": "scikit-learn", "xgboost": "xgboost"}.get(name, name),
        framework_version=str(conf.get("sklearn_version") or conf.get("xgb_version") or "unknown"),
        python_version=str(
            (mlmodel["flavors"].get("python_function") or {}).get("python_version", "unknown")
        ),
        pip_requirements=tuple(_requirements(requirements)) if requirements.is_file() else (),
        signature=mlflow_signature(mlmodel.get("signature")),
        input_example=None,
        created=str(mlmodel.get("utc_time_created", "")),
        files=files,
        # Digested as format 1 (``created`` included) so digests recorded when MLflow
        # models were registered still match; ``MLmodel``'s own bytes hold that time anyway.
        format_version=1,
    )
    return replace(manifest, digest=compute_digest(files, manifest.digested_metadata()))


def _requirements(path: Path) -> list[str]:
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]
