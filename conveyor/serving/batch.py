"""Batch scoring: predictions for files larger than memory, on one machine or a Dask cluster.

``conveyor predict`` and :func:`score` stream the input (Parquet by row-group batches,
CSV by blocks), predict each chunk through ``LoadedModel.predict`` (so the signature is
enforced as in serving) and append it to one Parquet file. Memory is bounded by the batch
size, not the file size. Row order is kept, passthrough columns (an id) are copied as
they are, and the output appears only when complete: it is written under a temporary
name and renamed at the end, so a failure leaves no partial file.

With a Dask scheduler address the input is split into tasks by files and Parquet row
groups. The client reads the model's files once, verified, and broadcasts them; each
worker process loads the model once (cached by digest) and writes its part beside the
output, and the client joins the parts in order. Workers therefore need the input and
the output folder (a shared file system), not access to the registry. The model URI
is resolved once, on the client, so an alias that moves during the job does not mix
two versions in one output.

Example::

    files = find_inputs("data/*.parquet")
    result = score("models:/churn@champion", files, "scores.parquet", columns_out=["id"])
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import uuid4

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from conveyor import models
from conveyor.artifacts import safe_relpath
from conveyor.errors import (
    BackendUnavailable,
    ConveyorError,
    IntegrityError,
    InvalidInput,
    NotFound,
    PermissionDenied,
)
from conveyor.serving._parquet import arrow_column

if TYPE_CHECKING:
    from conveyor.tracking.client import Client

__all__ = ["ScoreResult", "count_rows", "find_inputs", "score"]

PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv", ".csv.gz")
#: Bytes of CSV parsed at a time; the batch is then cut to ``batch_rows``.
_CSV_BLOCK = 8 << 20
#: Models a worker keeps loaded (one job at a time needs one).
_WORKER_CACHE_SIZE = 2
#: Seconds to wait for the Dask scheduler to answer.
DASK_CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """What :func:`score` wrote."""

    output: Path
    rows: int
    files: int
    #: Dask tasks run; 0 when scored in this process.
    tasks: int
    seconds: float
    model_digest: str

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


def find_inputs(spec: str | os.PathLike[str]) -> list[Path]:
    """The input files ``spec`` names, in order: one file, a folder (searched recursively) or a glob.

    Names starting with ``.`` or ``_`` (``_SUCCESS``, checksums) are skipped in folders.

    Raises:
        NotFound: nothing there, or nothing matches.
        InvalidInput: a named file is neither Parquet nor CSV.
    """
    text = os.fspath(spec)
    path = Path(text)
    if path.is_dir():
        found = sorted(
            p for p in path.rglob("*") if p.is_file() and _kind(p) and not p.name.startswith((".", "_"))
        )
        if not found:
            raise NotFound(f"No Parquet or CSV files in folder {text}")
        return found
    if glob.has_magic(text):
        found = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
        if not found:
            raise NotFound(f"No files match {text}")
    elif path.is_file():
        found = [path]
    else:
        raise NotFound(f"Input {text} does not exist")
    for file in found:
        if _kind(file) is None:
            raise InvalidInput(f"Cannot read {file}: expected Parquet ({', '.join(PARQUET_SUFFIXES)}) or CSV")
    return found


def count_rows(files: Sequence[Path]) -> int | None:
    """Rows in all ``files`` from Parquet footers; None when a CSV makes the total unknown."""
    if any(_kind(f) != "parquet" for f in files):
        return None
    return sum(_metadata(f).num_rows for f in files)


def score(
    model_uri: str,
    files: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    batch_rows: int = 65_536,
    columns_out: Sequence[str] = (),
    dask_address: str | None = None,
    allow_pickle: bool = False,
    client: Client | None = None,
    progress: Callable[[int], None] | None = None,
) -> ScoreResult:
    """Score ``files`` with the model at ``model_uri`` into the Parquet file ``output``.

    Args:
        model_uri: ``models:/name@alias``, ``models:/name/3``, ``runs:/<id>/model``, a folder.
        files: From :func:`find_inputs`.
        batch_rows: Rows predicted at once; bounds memory.
        columns_out: Input columns copied into the output before the predictions.
        dask_address: ``tcp://host:port`` of a Dask scheduler to score on.
        client: Tracking client that resolves ``runs:/`` and ``models:/`` URIs.
        progress: Called with the number of rows each finished chunk or task scored.

    Raises:
        NotFound: unknown model or input.
        IntegrityError: the model's files do not match their manifest or registered digest.
        InvalidInput: a column the model needs or ``columns_out`` names is missing (named),
            a value the signature refuses, an unreadable input, an output that cannot be written.
        BackendUnavailable: the Dask scheduler cannot be reached.
    """
    if batch_rows < 1:
        raise InvalidInput(f"batch_rows must be at least 1, got {batch_rows}")
    files = [Path(f) for f in files]
    target = _check_output(Path(output), files)
    started = time.perf_counter()
    job = _Job(batch_rows, tuple(columns_out), allow_pickle)
    if dask_address:
        payload = _model_payload(model_uri, client)
        job = replace(job, columns=_check_inputs(files, payload.signature, job.columns_out))
        rows, tasks = _score_on_dask(dask_address, payload, files, target, job, progress)
        digest = payload.digest
    else:
        model = _load(model_uri, client, allow_pickle)
        job = replace(job, columns=_check_inputs(files, model.signature, job.columns_out))
        rows, tasks, digest = _score_here(model, files, target, job, progress), 0, model.manifest.digest
    return ScoreResult(target, rows, len(files), tasks, time.perf_counter() - started, digest)


# -- planning and checks ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Job:
    """How to score, the same in this process and on a worker."""

    batch_rows: int
    columns_out: tuple[str, ...]
    allow_pickle: bool
    #: Columns to read (the signature's plus ``columns_out``); None: all.
    columns: tuple[str, ...] | None = None


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return "csv" if name.endswith(CSV_SUFFIXES) else None


def _check_output(output: Path, files: Sequence[Path]) -> Path:
    if output.name.lower().endswith(CSV_SUFFIXES):
        raise InvalidInput(f"--output {output}: batch scoring writes Parquet; name the file .parquet")
    if output.is_dir():
        raise InvalidInput(f"--output {output} is a folder; name a Parquet file")
    if not output.parent.is_dir():
        raise InvalidInput(f"Cannot write {output}: folder {output.parent} does not exist")
    if any(output.resolve() == f.resolve() for f in files):
        raise InvalidInput(f"--output {output} is also an input file")
    return output


def _check_inputs(
    files: Sequence[Path], signature: models.Signature | None, columns_out: Sequence[str]
) -> tuple[str, ...] | None:
    """Fail before any work when a file lacks a column; return the columns worth reading."""
    named = signature is not None and signature.inputs.kind == "dataframe"
    needed = [f.name for f in signature.inputs.fields if not f.optional] if named else []
    wanted = {*(str(n) for n in signature.inputs.names), *columns_out} if named else None
    for file in files:
        names = _schema(file).names
        for column in [*needed, *columns_out]:
            if column not in names:
                role = "the model's signature requires" if column in needed else "--columns-out names"
                raise InvalidInput(
                    f"{file} has no column {column!r} that {role} (it has: {', '.join(names)})"
                )
    if wanted is None:
        return None
    return tuple(n for n in _schema(files[0]).names if n in wanted)


def _schema(file: Path) -> pa.Schema:
    with _reading(file):
        if _kind(file) == "parquet":
            return pq.read_schema(file)
        from pyarrow import csv

        with csv.open_csv(file, read_options=csv.ReadOptions(block_size=1 << 20)) as reader:
            return reader.schema


def _metadata(file: Path) -> pq.FileMetaData:
    with _reading(file):
        return pq.read_metadata(file)


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turn Arrow's and the OS's read errors into one that names the file."""
    try:
        yield
    except ConveyorError:
        raise
    except (pa.ArrowException, OSError) as exc:
        raise InvalidInput(f"Cannot read {path}: {exc}") from exc


# -- the model -------------------------------------------------------------------------


def _registry_for(uri: str) -> None:
    """``models:/`` URIs resolve once :mod:`conveyor.registry` is imported: it registers the resolver."""
    if uri.startswith("models:"):
        import conveyor.registry  # noqa: F401


def _load(uri: str, client: Client | None, allow_pickle: bool) -> models.LoadedModel:
    _registry_for(uri)
    return models.load(uri, client=client, allow_pickle=allow_pickle)


@dataclass(frozen=True, slots=True)
class _ModelPayload:
    """A model's files, verified on the client, for workers to load without the registry."""

    digest: str
    signature: models.Signature | None
    files: Mapping[str, bytes]


def _model_payload(uri: str, client: Client | None) -> _ModelPayload:
    from conveyor.models import resolve

    _registry_for(uri)
    with resolve(uri, client=client) as resolved:
        manifest = models.read_model_manifest(resolved.folder)  # every file verified
        if resolved.expected_digest and manifest.digest != resolved.expected_digest:
            raise IntegrityError(f"{uri}: digest {manifest.digest} differs from the registered one")
        folder = resolved.folder
        files = {
            p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
        }
    return _ModelPayload(manifest.digest, manifest.signature, files)


_worker_models: dict[str, models.LoadedModel] = {}
_worker_lock = threading.Lock()
#: Loads per process, for tests and logs: a worker should load a job's model once.
worker_loads: Counter[str] = Counter()


def _worker_model(payload: _ModelPayload, allow_pickle: bool) -> models.LoadedModel:
    """The payload's model, loaded once per worker process and kept for the next tasks."""
    with _worker_lock:
        model = _worker_models.get(payload.digest)
        if model is None:
            model = _materialize(payload, allow_pickle)
            _worker_models[payload.digest] = model
            worker_loads[payload.digest] += 1
            while len(_worker_models) > _WORKER_CACHE_SIZE:
                _worker_models.pop(next(iter(_worker_models)))
    return model


def _materialize(payload: _ModelPayload, allow_pickle: bool) -> models.LoadedModel:
    with tempfile.TemporaryDirectory(prefix="conveyor-model-") as folder:
        for rel, data in payload.files.items():
            path = Path(folder, safe_relpath(rel))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        if models.read_model_manifest(folder).digest != payload.digest:
            raise IntegrityError(f"model {payload.digest[:12]} arrived altered on this worker")
        return models.load(folder, allow_pickle=allow_pickle)


# -- scoring chunks ----------------------------------------------------------------------


def _batches(file: Path, job: _Job, row_groups: Sequence[int] | None = None) -> Iterator[pa.RecordBatch]:
    """The file's rows in batches of at most ``job.batch_rows``, read lazily."""
    columns = list(job.columns) if job.columns is not None else None
    with _reading(file):
        if _kind(file) == "parquet":
            # pre_buffer would read every row group's bytes up front: memory would grow with the file.
            parquet = pq.ParquetFile(file, pre_buffer=False)
            yield from parquet.iter_batches(batch_size=job.batch_rows, row_groups=row_groups, columns=columns)
            return
        from pyarrow import csv

        options = csv.ConvertOptions(include_columns=columns) if columns is not None else None
        with csv.open_csv(
            file, read_options=csv.ReadOptions(block_size=_CSV_BLOCK), convert_options=options
        ) as reader:
            for block in reader:
                for start in range(0, block.num_rows, job.batch_rows):
                    yield block.slice(start, job.batch_rows)


def _score_batch(model: models.LoadedModel, batch: pa.RecordBatch, job: _Job) -> pa.Table:
    """Passthrough columns, then one column per model output (``prediction`` for a plain array)."""
    result = model.predict(batch.to_pandas())
    columns = {name: batch.column(name) for name in job.columns_out}
    for name, values in _outputs(result).items():
        if len(values) != batch.num_rows:
            raise ConveyorError(f"The model returned {len(values)} predictions for {batch.num_rows} rows")
        if name in columns:
            raise InvalidInput(f"--columns-out {name!r} clashes with the model output of the same name")
        columns[name] = arrow_column(values[:, 0] if values.ndim == 2 and values.shape[1] == 1 else values)
    return pa.table(columns)


def _outputs(result: Any) -> dict[str, np.ndarray]:
    import pandas as pd

    if isinstance(result, pd.DataFrame):
        return {str(name): result[name].to_numpy() for name in result.columns}
    if isinstance(result, pd.Series):
        return {"prediction": result.to_numpy()}
    if isinstance(result, Mapping):
        return {str(name): np.asarray(values) for name, values in result.items()}
    return {"prediction": np.asarray(result)}


class _ParquetSink:
    """One Parquet file written chunk by chunk under a temporary name, renamed by :meth:`commit`."""

    def __init__(self, target: Path, metadata: Mapping[str, str]) -> None:
        self.target = target
        self.partial = target.with_name(f".{target.name}.partial-{uuid4().hex[:12]}")
        self.metadata = metadata
        self.schema: pa.Schema | None = None
        self._writer: pq.ParquetWriter | None = None
        try:
            self.partial.touch(exist_ok=False)  # fail now, not after an hour of scoring
        except PermissionError as exc:
            raise PermissionDenied(f"Cannot write {target}: {exc.strerror}") from exc
        except OSError as exc:
            raise InvalidInput(f"Cannot write {target}: {exc.strerror or exc}") from exc

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            self.schema = table.schema.with_metadata(self.metadata)
            self._writer = pq.ParquetWriter(self.partial, self.schema, compression="zstd")
        elif not table.schema.equals(self.schema, check_metadata=False):
            table = _conform(table, self.schema)
        self._writer.write_table(table)

    def commit(self, empty: Callable[[], pa.Schema]) -> None:
        """Close and publish; with no chunk written, an empty file of schema ``empty()``."""
        if self._writer is None:
            self.write(empty().empty_table())
        if self._writer is not None:
            self._writer.close()
        os.replace(self.partial, self.target)

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self.partial.unlink(missing_ok=True)


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Cast a later chunk to the first chunk's schema, or say which column differs."""
    for field in schema:
        if field.name in table.column_names and table.schema.field(field.name).type != field.type:
            try:
                index = table.column_names.index(field.name)
                table = table.set_column(index, field, table.column(index).cast(field.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                found = table.schema.field(field.name).type
                raise InvalidInput(
                    f"Column {field.name!r} is {found} in a later chunk but {field.type} before: {exc}"
                ) from exc
    return table.select(schema.names)


def _empty_schema(files: Sequence[Path], job: _Job) -> pa.Schema:
    """The output's schema when there is no row to score: passthrough columns and a null prediction."""
    schema = _schema(files[0])
    return pa.schema([*(schema.field(n) for n in job.columns_out), pa.field("prediction", pa.null())])


def _score_here(
    model: models.LoadedModel,
    files: Sequence[Path],
    target: Path,
    job: _Job,
    progress: Callable[[int], None] | None,
) -> int:
    rows = 0
    sink = _ParquetSink(target, {"conveyor.model_digest": model.manifest.digest})
    try:
        for file in files:
            for batch in _batches(file, job):
                sink.write(_score_batch(model, batch, job))
                rows += batch.num_rows
                if progress:
                    progress(batch.num_rows)
        sink.commit(lambda: _empty_schema(files, job))
    except BaseException:
        sink.abort()
        raise
    return rows


# -- on a Dask cluster -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Task:
    index: int
    file: Path
    #: Parquet row groups of this task; None: the whole file (CSV).
    row_groups: tuple[int, ...] | None


def _plan(files: Sequence[Path], batch_rows: int) -> list[_Task]:
    """Tasks of whole row groups, at least ``batch_rows`` rows each where the groups allow."""
    tasks: list[_Task] = []
    for file in files:
        if _kind(file) != "parquet":
            tasks.append(_Task(len(tasks), file, None))
            continue
        metadata = _metadata(file)
        group: list[int] = []
        rows = 0
        for index in range(metadata.num_row_groups):
            group.append(index)
            rows += metadata.row_group(index).num_rows
            if rows >= batch_rows or index == metadata.num_row_groups - 1:
                tasks.append(_Task(len(tasks), file, tuple(group)))
                group, rows = [], 0
    return tasks


def _run_task(payload: _ModelPayload, task: _Task, job: _Job, parts: Path) -> dict[str, Any]:
    """On a worker: score one task into ``parts/part-<index>.parquet``; returns rows and who did it."""
    model = _worker_model(payload, job.allow_pickle)
    part = parts / f"part-{task.index:06d}.parquet"
    sink = _ParquetSink(part, {})
    rows = 0
    try:
        for batch in _batches(task.file, job, task.row_groups):
            sink.write(_score_batch(model, batch, job))
            rows += batch.num_rows
        sink.commit(lambda: _empty_schema([task.file], job))
    except BaseException:
        sink.abort()
        raise
    return {"index": task.index, "rows": rows, "pid": os.getpid(), "loads": worker_loads[payload.digest]}


def _score_on_dask(
    address: str,
    payload: _ModelPayload,
    files: Sequence[Path],
    target: Path,
    job: _Job,
    progress: Callable[[int], None] | None,
) -> tuple[int, int]:
    tasks = _plan(files, job.batch_rows)
    parts = target.with_name(f".{target.name}.parts-{uuid4().hex[:12]}")
    parts.mkdir()
    try:
        with _dask_client(address) as dask:
            shared = dask.scatter(payload, broadcast=True, hash=False)
            futures = [
                dask.submit(
                    _run_task, shared, task, job, parts, key=f"conveyor-predict-{parts.name}-{task.index}"
                )
                for task in tasks
            ]
            rows = _wait(dask, futures, progress)
        _assemble(parts, len(tasks), target, payload.digest, lambda: _empty_schema(files, job))
    finally:
        shutil.rmtree(parts, ignore_errors=True)
    return rows, len(tasks)


def _dask_client(address: str) -> Any:
    try:
        from distributed import Client
    except ImportError as exc:
        raise BackendUnavailable("Scoring on Dask needs 'distributed': pip install 'conveyor[dask]'") from exc
    try:
        return Client(address, timeout=DASK_CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise BackendUnavailable(f"Cannot reach the Dask scheduler at {address}: {exc}") from exc


def _wait(dask: Any, futures: list[Any], progress: Callable[[int], None] | None) -> int:
    """Wait for every task and return the rows scored; on the first failure cancel the rest and raise it."""
    from distributed import as_completed

    rows = 0
    try:
        for future in as_completed(futures, loop=dask.loop):
            done = future.result()
            rows += done["rows"]
            if progress:
                progress(done["rows"])
    except BaseException:
        dask.cancel(futures)
        raise
    return rows


def _assemble(parts: Path, count: int, target: Path, digest: str, empty: Callable[[], pa.Schema]) -> None:
    """Join the parts into ``target`` in task order, one row group at a time."""
    sink = _ParquetSink(target, {"conveyor.model_digest": digest})
    try:
        for index in range(count):
            part = pq.ParquetFile(parts / f"part-{index:06d}.parquet")
            for group in range(part.num_row_groups):
                table = part.read_row_group(group)
                if table.num_rows:
                    sink.write(table)
        sink.commit(empty)
    except BaseException:
        sink.abort()
        raise
