"""Reference profiles of registered model versions: build from data, store with the version, load.

The profile uses the prediction log's column names, so a window compares with it
directly: a reference column ``age`` is profiled as ``input.age``; the model's outputs
(computed with ``predictions_from_model=True``, or given as ``output.*`` columns) as
``output.prediction`` and ``output.proba_<class>``; the label column keeps its name.
With labels and probabilities, a CBPE calibration is fitted on a uniform sample of the
reference (at most :data:`CALIBRATION_ROWS` rows) and stored beside the profile, so
monitor runs can estimate performance before labels arrive.

Data is streamed: Parquet one batch at a time with ``pre_buffer=False`` (pyarrow's
pre-buffering keeps reading ahead and memory grows with the file), so memory is bounded
by a batch plus the profile's sketches.

Example::

    profile_version(ctx, "models:/churn/3", "validation.parquet",
                    predictions_from_model=True, labels_column="churned")
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from conveyor.errors import InvalidInput
from conveyor.monitoring import _columns as cols
from conveyor.monitoring._job_window import PREDICTION, PROBA_PREFIX, RowSample
from conveyor.monitoring.builder import ProfileBuilder
from conveyor.monitoring.context import MonitorContext
from conveyor.monitoring.estimation import CBPE, fit_cbpe
from conveyor.monitoring.profile import ReferenceProfile
from conveyor.store.base import now_ms
from conveyor.store.entities import ArtifactRecord
from conveyor.store.sql.monitoring_entities import ProfileRecord
from conveyor.tracking.context import current_user

__all__ = [
    "CALIBRATION_ROWS",
    "StoredProfile",
    "load_profile",
    "profile_version",
    "register_with_profile",
]

#: Reference rows kept (a uniform sample) to fit CBPE's calibration.
CALIBRATION_ROWS = 200_000
#: Include the numeric samples in the stored JSON while they take at most this many bytes.
SAMPLES_BUDGET = 16 << 20
BATCH_ROWS = 65_536

Data: TypeAlias = "str | os.PathLike[str] | cols.Chunk | Iterable[cols.Chunk]"


@dataclass(frozen=True)
class StoredProfile:
    """A version's profile as stored: the record (path, SHA-256, task), the profile, its CBPE."""

    record: ProfileRecord
    profile: ReferenceProfile
    cbpe: CBPE | None


def profile_version(
    ctx: MonitorContext,
    uri: str,
    data: Data,
    *,
    predictions_from_model: bool = False,
    labels_column: str | None = None,
    kinds: dict[str, str] | None = None,
    include_samples: bool | None = None,
    actor: str | None = None,
) -> StoredProfile:
    """Profile ``data`` as the reference of the version ``uri`` names, and store it with the version.

    Args:
        uri: ``models:/<name>/<version>`` or ``models:/<name>@<alias>``.
        data: a Parquet file or folder of Parquet files, or Tables, batches or DataFrames.
        predictions_from_model: load the version and profile its predictions (and
            probabilities, for classifiers) on ``data``.
        labels_column: the true labels, if ``data`` has them: profiled, and used with
            probabilities to fit CBPE.
        kinds: column kind overrides, by reference column name.
        include_samples: store numeric samples (exact KS and Wasserstein); default when
            they fit in :data:`SAMPLES_BUDGET`.

    Raises:
        NotFound: no such model or version. InvalidInput: bad data or columns.
    """
    version = ctx.registry.resolve(uri)
    model = _load_model(ctx, version) if predictions_from_model else None
    batches = _batches(data)
    first = next(batches, None)
    if first is None:
        raise InvalidInput(f"The reference data for {uri} has no rows")
    names = list(first.schema.names)
    if labels_column is not None and labels_column not in names:
        raise InvalidInput(f"No label column {labels_column!r} in the reference data; it has {names}")
    outputs = _output_names(names, model)
    builder = ProfileBuilder(
        predictions=outputs,
        labels=labels_column,
        kinds={_logged(n, labels_column): k for n, k in (kinds or {}).items()},
    )
    proba = [n for n in outputs if n.startswith(PROBA_PREFIX)]
    sample = RowSample(CALIBRATION_ROWS, np.random.default_rng([0, 3]))
    for batch in _chain(first, batches):
        table = _with_outputs(batch, model, labels_column)
        builder.update(table)
        if labels_column is not None and proba:
            sample.add(table.select([*proba, labels_column]))
    profile = builder.finish()
    cbpe = _fit_cbpe(sample.table, proba, labels_column, model)
    return _store(ctx, version.name, version.version, profile, cbpe, labels_column, include_samples, actor)


def register_with_profile(
    ctx: MonitorContext,
    name: str,
    source: str,
    reference_data: Data,
    *,
    predictions_from_model: bool = True,
    labels_column: str | None = None,
    run_id: str | None = None,
    description: str | None = None,
    tags: dict[str, str] | None = None,
    actor: str | None = None,
) -> StoredProfile:
    """Register ``source`` as the next version of ``name`` and store its reference profile.

    The version is registered first (``RegistryService.create_version``, unchanged), then
    profiled; if profiling fails the version stays registered and the error is raised,
    so the profile can be made later with :func:`profile_version`.
    """
    created = ctx.registry.create_version(
        name, source, run_id=run_id, description=description, tags=tags, actor=actor
    )
    return profile_version(
        ctx,
        f"models:/{created.name}/{created.version}",
        reference_data,
        predictions_from_model=predictions_from_model,
        labels_column=labels_column,
        actor=actor,
    )


def load_profile(ctx: MonitorContext, model: str, version: int | str) -> StoredProfile:
    """The stored profile of a version, its bytes checked against the recorded SHA-256.

    Raises:
        NotFound: the version has no profile. IntegrityError: the file changed since.
    """
    record = ctx.records.get_profile(model, version)
    text = ctx.registry.artifacts.read_verified(record.path, record.sha256)
    cbpe = None if record.cbpe is None else CBPE.from_dict(record.cbpe)
    return StoredProfile(record, ReferenceProfile.from_json(text), cbpe)


def profile_path(model: str, version: int) -> str:
    """``registry/<model>/versions/<v>/profile.json``: beside the version's cards."""
    if model in (".", ".."):
        raise InvalidInput(f"Model name {model!r} cannot name a folder")
    return f"registry/{model}/versions/{version}/profile.json"


# -- reading ---------------------------------------------------------------------------------


def _batches(data: Data) -> Iterator[pa.RecordBatch]:
    if isinstance(data, str | os.PathLike):
        return _parquet_batches(Path(data))
    return cols.iter_batches(data)


def _parquet_batches(path: Path) -> Iterator[pa.RecordBatch]:
    """Batches of a Parquet file, or of every ``*.parquet`` under a folder in name order."""
    if path.is_dir():
        files = sorted(path.rglob("*.parquet"))
    elif path.is_file():
        files = [path]
    else:
        raise InvalidInput(f"No reference data at {path}: give a Parquet file or a folder of them")
    for file in files:
        with pq.ParquetFile(file, pre_buffer=False) as reader:
            yield from reader.iter_batches(batch_size=BATCH_ROWS)


def _chain(first: pa.RecordBatch, rest: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    yield first
    yield from rest


# -- columns and predictions -----------------------------------------------------------------


def _logged(name: str, labels_column: str | None) -> str:
    """The name a reference column has in the prediction log."""
    if name == labels_column or name.startswith(("input.", "output.")):
        return name
    return f"input.{name}"


def _model_classes(model: Any) -> list[Any] | None:
    raw = getattr(model, "raw", None)
    classes = getattr(raw, "classes_", None)
    if classes is None or not callable(getattr(raw, "predict_proba", None)):
        return None
    return np.asarray(classes).tolist()


def _output_names(names: Sequence[str], model: Any) -> list[str]:
    if model is None:
        return [n for n in names if n.startswith("output.")]
    classes = _model_classes(model) or []
    return [PREDICTION, *(f"{PROBA_PREFIX}{c}" for c in classes)]


def _with_outputs(batch: pa.RecordBatch, model: Any, labels_column: str | None) -> pa.Table:
    """The batch under logged names, plus the model's outputs when it is given."""
    features = [n for n in batch.schema.names if n != labels_column and not n.startswith("output.")]
    columns = {_logged(n, labels_column): batch.column(n) for n in batch.schema.names}
    if model is not None:
        for name in [n for n in columns if n.startswith("output.")]:
            del columns[name]  # the model's own outputs replace any given ones
        frame = batch.select(features).to_pandas()
        frame.columns = [n.removeprefix("input.") for n in frame.columns]
        columns[PREDICTION] = pa.array(np.asarray(model.predict(frame)).reshape(len(frame), -1)[:, 0])
        classes = _model_classes(model)
        if classes is not None:
            proba = np.asarray(model.raw.predict_proba(_enforced(model, frame)), dtype=float)
            columns |= {f"{PROBA_PREFIX}{c}": pa.array(proba[:, i]) for i, c in enumerate(classes)}
    return pa.table(columns)


def _enforced(model: Any, frame: Any) -> Any:
    """The frame as ``LoadedModel.predict`` gives it to the model (signature enforced)."""
    signature = model.signature
    return frame if signature is None else signature.inputs.enforce(frame)


def _load_model(ctx: MonitorContext, version: Any) -> Any:
    """The version's model, its files checked against the digest recorded at registration."""
    import tempfile

    from conveyor import models
    from conveyor.errors import IntegrityError

    with tempfile.TemporaryDirectory(prefix="conveyor-profile-") as scratch:
        resolved = ctx.registry.fetch(version, Path(scratch))
        loaded = models.load(resolved.folder)
    if resolved.expected_digest and loaded.manifest.digest != resolved.expected_digest:
        raise IntegrityError(
            f"Model {version.name} version {version.version} does not match the digest recorded "
            "at registration; it was changed since"
        )
    return loaded


def _fit_cbpe(
    sample: pa.Table | None, proba: Sequence[str], labels_column: str | None, model: Any
) -> CBPE | None:
    """CBPE's calibration from the reference sample, when it has two classes or more."""
    if sample is None or labels_column is None or not proba:
        return None
    column = sample[labels_column]
    labels, keep = column.to_numpy(zero_copy_only=False), column.is_valid().to_numpy(zero_copy_only=False)
    if labels.dtype.kind == "f":
        keep &= ~np.isnan(labels)
    if len(set(labels[keep].tolist())) < 2:
        return None
    classes = _model_classes(model) or [_parse_class(n[len(PROBA_PREFIX) :], labels[keep]) for n in proba]
    scores = np.column_stack([sample[n].to_numpy(zero_copy_only=False).astype(float) for n in proba])
    return fit_cbpe(scores[keep], labels[keep], classes=classes)


def _parse_class(text: str, labels: np.ndarray) -> Any:
    """A class named in a column suffix, as the labels' type (``output.proba_1`` -> 1 for ints)."""
    example = labels[0]
    try:
        if isinstance(example, bool | np.bool_):
            return text.lower() in ("true", "1")
        if isinstance(example, int | np.integer):
            return int(text)
        if isinstance(example, float | np.floating):
            return float(text)
    except ValueError:
        pass
    return text


# -- storing ---------------------------------------------------------------------------------


def _store(
    ctx: MonitorContext,
    model: str,
    version: int,
    profile: ReferenceProfile,
    cbpe: CBPE | None,
    labels_column: str | None,
    include_samples: bool | None,
    actor: str | None,
) -> StoredProfile:
    if include_samples is None:
        include_samples = _samples_bytes(profile) <= SAMPLES_BUDGET
    text = profile.to_json(include_samples=include_samples).encode()
    path = profile_path(model, version)
    size, sha256 = ctx.registry.artifacts.write_bytes(path, text)
    ctx.store.record_artifact(ArtifactRecord(path, size, sha256, None, now_ms()))
    record = ProfileRecord(
        model=model,
        version=version,
        path=path,
        sha256=sha256,
        size=size,
        rows=profile.rows,
        columns=len(profile.columns),
        task=_task(profile, cbpe),
        label_column=labels_column,
        cbpe=None if cbpe is None else cbpe.to_dict(),
        created_by=actor or current_user(),
        created=now_ms(),
    )
    return StoredProfile(ctx.records.save_profile(record), profile, cbpe)


def _samples_bytes(profile: ReferenceProfile) -> int:
    return sum(8 * len(c.sample) for c in profile.columns.values() if c.sample is not None)


def _task(profile: ReferenceProfile, cbpe: CBPE | None) -> str | None:
    """Classification with probabilities, labels as text or a few class ids; regression otherwise."""
    outputs = profile.role("prediction")
    if cbpe is not None or any(c.name.startswith(PROBA_PREFIX) for c in outputs):
        return "classification"
    prediction = profile.columns.get(PREDICTION)
    if prediction is None:
        return None
    if prediction.kind in ("categorical", "boolean"):
        return "classification"
    bins = prediction.bins  # a few whole numbers (class ids) rather than a continuum
    if bins is not None and bins.kind == "levels" and all(float(v).is_integer() for v in bins.values):
        return "classification"
    return "regression"
