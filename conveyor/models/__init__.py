"""Packaged models: save a model into a verified directory, log it to a run, load it back.

Object model::

    model directory
    ├── conveyor-model.yaml      manifest: flavor, framework and Python versions, pip
    │                            requirements, signature, input example, SHA-256 and size
    │                            of every file, and the model digest
    ├── model.skops | model.ubj | model.txt | model.onnx | model.pkl   (the flavor's files)
    └── input_example.parquet | .npy | .npz                            (optional)

- :func:`save` writes a directory; :func:`log_model` writes one under a run's artifacts
  (``runs:/<run_id>/<name>``); :func:`load` verifies every file and returns a
  :class:`LoadedModel` whose ``predict`` enforces the :class:`Signature`.
- Flavors (:mod:`conveyor.models.flavors`) pick the format by the model's type: skops
  for scikit-learn, native files for XGBoost and LightGBM, ONNX, and pickle only for
  ``python_function`` with ``allow_pickle=True``.
- URIs: a path, ``file://``, ``runs:/``; ``models:/<name>/<version>`` and
  ``models:/<name>@<alias>`` once the registry registers its resolver
  (:func:`register_resolver`).
- Directories written by the ``mlflow`` client (an ``MLmodel`` file) load too, in the
  ``sklearn`` and ``xgboost`` flavors.

Example::

    from conveyor import models

    info = models.save(pipeline, "out/churn", input_example=X.head())
    model = models.load(info.uri)
    model.predict(X)  # checked against the signature first
"""

from __future__ import annotations

from conveyor.models._manifest import MANIFEST_NAME, FileEntry, ModelManifest
from conveyor.models._packaging import LoadedModel, ModelInfo, load, read_model_manifest, save
from conveyor.models._runs import log_model
from conveyor.models._signature import FieldSpec, Schema, Signature, infer_schema, infer_signature
from conveyor.models._uris import (
    ResolvedModel,
    Resolver,
    ResolveRequest,
    parse_models_uri,
    register_resolver,
    resolve,
    resolvers,
)
from conveyor.models.flavors import Flavor, LoadOptions, PickleWarning, default_registry

__all__ = [
    "MANIFEST_NAME",
    "FieldSpec",
    "FileEntry",
    "Flavor",
    "LoadOptions",
    "LoadedModel",
    "ModelInfo",
    "ModelManifest",
    "PickleWarning",
    "ResolveRequest",
    "ResolvedModel",
    "Resolver",
    "Schema",
    "Signature",
    "infer_schema",
    "infer_signature",
    "load",
    "log_model",
    "parse_models_uri",
    "read_model_manifest",
    "register_flavor",
    "register_resolver",
    "resolve",
    "resolvers",
    "save",
]


def register_flavor(flavor: Flavor, *, clobber: bool = False) -> None:
    """Add ``flavor`` to the registry ``save`` and ``load`` use; see ``FlavorRegistry.register``."""
    default_registry.register(flavor, clobber=clobber)
