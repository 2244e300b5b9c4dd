"""What a serving process serves: the deployment, from a YAML file or from model URIs.

A deployment names one or more models; each model has one or more *variants* (a model
URI and a traffic weight: a canary is two variants), an optional *shadow* that receives
a copy of some traffic, and the knobs of its data path (batching, timeout, body limit,
validation policy). Everything is validated by pydantic with unknown keys refused, so a
typo in a YAML file is an error that names its place (``models[0].variants[1].weight``),
not a setting silently ignored.

Example::

    models:
      - name: churn
        variants:
          - {name: champion, uri: "models:/churn@champion", weight: 90}
          - {name: challenger, uri: "models:/churn@challenger", weight: 10}
        shadow: {name: candidate, uri: "models:/churn/7", mirror: 0.2}
        batching: {max_batch_size: 256, max_wait_ms: 2}
    prediction_log: {enabled: true, sample_rate: 0.1}
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from conveyor.errors import InvalidInput

__all__ = [
    "DEPLOYMENT_VARIABLE",
    "BatchingConfig",
    "Deployment",
    "ModelConfig",
    "PredictionLogConfig",
    "ShadowConfig",
    "VariantConfig",
    "deployment_from_environment",
    "deployment_from_uris",
    "load_deployment",
]

#: The variable ``conveyor serve`` writes the deployment into (as JSON) before uvicorn
#: starts, so that every worker process builds the same app from the environment.
DEPLOYMENT_VARIABLE = "CONVEYOR_SERVING_DEPLOYMENT"
#: Model and variant names travel in URL paths and metric labels.
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BatchingConfig(_Strict):
    """Adaptive batching: concurrent requests merged by rows into one ``predict`` call."""

    #: None: on for flavors that vectorize (scikit-learn, XGBoost, LightGBM, ONNX).
    enabled: bool | None = None
    #: Most rows in one merged call; a larger single request still runs, alone. A tabular
    #: model's call costs mostly the same whatever the rows (a 100-tree forest: 3.1 ms for
    #: one row, 4.5 ms for 3,200), so large merged batches pay; lower it for a model whose
    #: cost grows with the rows, to bound the latency of a merged batch.
    max_batch_size: int = Field(default=4096, ge=1, le=1_000_000)
    #: Extra wait for more requests once a batch has started to form. 0: none; batches
    #: still form under load, from the requests that queue while a batch predicts.
    max_wait_ms: float = Field(default=0.0, ge=0, le=10_000)
    #: A ``predict`` expected (from warm-up timings) to take less runs on the event loop
    #: instead of in a worker thread: a thread hand-off costs more than a tiny model's
    #: prediction. 0: always in a thread.
    inline_max_ms: float = Field(default=1.0, ge=0, le=1_000)


class VariantConfig(_Strict):
    """One model URI that takes a share of the model's traffic."""

    name: str = Field(pattern=_NAME)
    uri: str = Field(min_length=1)
    #: Relative share of traffic; 0 serves only callers pinned with ``X-Conveyor-Variant``.
    weight: float = Field(default=1.0, ge=0)


class ShadowConfig(_Strict):
    """A variant that sees a copy of a share of the traffic; its answers are never returned."""

    name: str = Field(default="shadow", pattern=_NAME)
    uri: str = Field(min_length=1)
    #: Share of requests mirrored to the shadow, in (0, 1].
    mirror: float = Field(default=1.0, gt=0, le=1)


class ModelConfig(_Strict):
    """One served model name, its variants and the knobs of its data path."""

    name: str = Field(pattern=_NAME)
    #: Shorthand for a single variant named ``default``.
    uri: str | None = None
    variants: tuple[VariantConfig, ...] = ()
    shadow: ShadowConfig | None = None
    batching: BatchingConfig = BatchingConfig()
    #: Per-request limit, queueing included; past it the caller gets 504.
    timeout_s: float = Field(default=60.0, gt=0, le=3600)
    #: Largest accepted request body; larger ones get 413.
    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    #: Columns the signature does not name: refuse the request (400), or drop them.
    unknown_columns: Literal["reject", "ignore"] = "reject"
    #: Where NaN (JSON null, an empty CSV cell) may appear: None lets the flavor decide
    #: (XGBoost and LightGBM treat it as missing, so everywhere; otherwise only optional
    #: columns), True/False for every column, or a list of column names.
    allow_nan: bool | tuple[str, ...] | None = None
    #: Needed for ``python_function`` models (pickle runs code from the file).
    allow_pickle: bool = False
    #: Extra types a skops file may contain (``mypkg.Clipper``).
    trusted_types: tuple[str, ...] = ()
    #: Write this model's requests to the prediction log when the deployment enables it.
    log_predictions: bool = True

    @model_validator(mode="after")
    def _one_way_to_name_variants(self) -> ModelConfig:
        if (self.uri is None) == (not self.variants):
            raise ValueError("give either 'uri' or 'variants', not both and not neither")
        names = [v.name for v in self.served_variants()]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique, got {names}")
        if self.shadow is not None and self.shadow.name in names:
            raise ValueError(f"the shadow's name {self.shadow.name!r} is also a variant's")
        if sum(v.weight for v in self.served_variants()) <= 0:
            raise ValueError("at least one variant needs a weight above 0")
        return self

    def served_variants(self) -> tuple[VariantConfig, ...]:
        """The variants, the ``uri`` shorthand expanded."""
        if self.uri is not None:
            return (VariantConfig(name="default", uri=self.uri),)
        return self.variants


class PredictionLogConfig(_Strict):
    """Where and how much of the traffic the prediction log keeps (see ``serving.predlog``)."""

    enabled: bool = False
    #: Folder or URL of the log; default ``<artifact root>/predictions``.
    root_url: str | None = None
    sample_rate: float = Field(default=1.0, ge=0, le=1)
    max_queue_rows: int = Field(default=100_000, ge=1)
    flush_interval_s: float = Field(default=1.0, gt=0)


class Deployment(_Strict):
    """Everything one ``conveyor serve`` process serves; see the module docstring."""

    models: tuple[ModelConfig, ...] = Field(min_length=1)
    #: The model ``POST /invocations`` (MLflow's one-model route) answers for; default the first.
    default_model: str | None = None
    prediction_log: PredictionLogConfig = PredictionLogConfig()
    #: How often to ask the registry where the aliases in ``models:/name@alias`` URIs point.
    poll_interval_s: float = Field(default=10.0, gt=0)
    #: Seed of the traffic split, for reproducible routing in tests; None: random.
    seed: int | None = None
    #: Threads that run ``predict`` (batches of different variants run in parallel).
    predict_threads: int = Field(default=4, ge=1, le=256)
    #: Write one JSON line per request to the ``conveyor.serving.access`` logger.
    access_log: bool = True

    @model_validator(mode="after")
    def _names_are_unique(self) -> Deployment:
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique, got {names}")
        if self.default_model is not None and self.default_model not in names:
            raise ValueError(f"default_model {self.default_model!r} is not one of {names}")
        return self

    def model(self, name: str) -> ModelConfig:
        return next(m for m in self.models if m.name == name)

    @property
    def default(self) -> str:
        return self.default_model or self.models[0].name

    def to_json(self) -> str:
        return self.model_dump_json(exclude_defaults=True)


def load_deployment(path: str | os.PathLike[str]) -> Deployment:
    """The deployment in a YAML (or JSON) file.

    Raises:
        InvalidInput: the file is missing, not YAML, or not a valid deployment; the
            message names each wrong key by its place in the file.
    """
    import yaml

    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInput(f"Cannot read the deployment file {file}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise InvalidInput(f"The deployment file {file} is not valid YAML: {exc}") from None
    return parse_deployment(data, source=str(file))


def parse_deployment(data: Any, *, source: str = "deployment") -> Deployment:
    """A :class:`Deployment` from already-parsed YAML/JSON data.

    Raises:
        InvalidInput: the data is not a valid deployment (each problem named).
    """
    if not isinstance(data, dict):
        raise InvalidInput(f"{source}: expected a mapping with a 'models' list, got {type(data).__name__}")
    try:
        return Deployment.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(f"{source} is not a valid deployment: {_describe(exc)}") from None


def deployment_from_uris(uris: list[str], **options: Any) -> Deployment:
    """A deployment serving each URI as a model of its own, named after it.

    ``models:/churn@champion`` is served as ``churn``; a folder by its last path part.

    Raises:
        InvalidInput: no URI, or two URIs that would get the same name.
    """
    if not uris:
        raise InvalidInput("Name at least one model URI (models:/churn@champion) or pass --config")
    models = [{"name": model_name_of(uri), "uri": uri} for uri in uris]
    return parse_deployment({"models": models, **options}, source="the model URIs")


def deployment_from_environment() -> Deployment:
    """The deployment ``conveyor serve`` put in :data:`DEPLOYMENT_VARIABLE`, for each worker.

    Raises:
        InvalidInput: the variable is not set or does not hold a valid deployment.
    """
    import orjson

    text = os.environ.get(DEPLOYMENT_VARIABLE)
    if not text:
        raise InvalidInput(f"{DEPLOYMENT_VARIABLE} is not set: start the server with `conveyor serve`")
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"{DEPLOYMENT_VARIABLE} does not hold JSON: {exc}") from None
    return parse_deployment(data, source=DEPLOYMENT_VARIABLE)


def model_name_of(uri: str) -> str:
    """The name a model URI is served under: the registry name, else the folder's name."""
    parts = uri_alias(uri)
    if parts is not None:
        return parts[0]
    tail = uri.rstrip("/").rsplit("/", 1)[-1]
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", tail).lstrip("-_.") or "model"
    return name[:100]


def uri_alias(uri: str) -> tuple[str, str | None, str | None] | None:
    """``(name, version, alias)`` of a ``models:/`` URI, None for any other URI.

    Raises:
        InvalidInput: a ``models:/`` URI of neither registry form.
    """
    from conveyor.models import parse_models_uri

    return parse_models_uri(uri) if uri.startswith("models:/") else None


def _describe(exc: ValidationError) -> str:
    """Pydantic's errors as ``place: message`` items, the place written as in the file."""
    items = []
    for err in exc.errors():
        place = ""
        for part in err["loc"]:
            place += f"[{part}]" if isinstance(part, int) else f".{part}" if place else str(part)
        message = str(err["msg"]).removeprefix("Value error, ")
        items.append(f"{place}: {message}" if place else message)
    return "; ".join(items)
