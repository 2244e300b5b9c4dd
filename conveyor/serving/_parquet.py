"""Parquet files in Hive-style folders under an artifact root: the storage of predictions and labels.

Shared by the prediction log (:mod:`conveyor.serving.predlog`) and the feedback store
(:mod:`conveyor.serving.feedback`): files are published atomically through the artifact
store, listings hide files still being written, and reads see the union of the files'
schemas, so a column added later reads as nulls in older files.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any
from uuid import uuid4

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from conveyor.artifacts import ArtifactStore
from conveyor.artifacts.registry import open_location

if TYPE_CHECKING:
    from conveyor.artifacts.registry import Location

__all__ = ["ParquetFolders", "arrow_column"]


def arrow_column(values: np.ndarray) -> pa.Array:
    """An Arrow column for a NumPy array; rows of 2+ dimensions become fixed-size lists of their values."""
    if values.ndim == 1:
        return pa.array(values)
    flat = values.reshape(len(values), -1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat.ravel()), flat.shape[1])


class ParquetFolders:
    """Parquet files in Hive-style ``key=value`` folders under one artifact root.

    Shared by the prediction log and the feedback store: atomic writes through
    :class:`~conveyor.artifacts.ArtifactStore`, listings that hide in-flight files, and a
    dataset over chosen files whose schema is the union of theirs.
    """

    def __init__(self, root_url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        self.root_url = root_url
        self.storage_options = storage_options

    @cached_property
    def _store(self) -> ArtifactStore:
        return ArtifactStore(self.root_url, self.storage_options)

    @cached_property
    def _location(self) -> Location:
        return open_location(self.root_url, self.storage_options)

    def write(self, folder: str, table: pa.Table) -> str:
        """Publish ``table`` as a new file in ``folder`` (relative); returns its relative path."""
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        now = datetime.now(UTC)
        path = f"{folder}/part-{now:%Y%m%dT%H%M%S%fZ}-{uuid4().hex[:12]}.parquet"
        self._store.write_bytes(path, memoryview(sink.getvalue()))
        return path

    def subfolders(self, folder: str, key: str) -> list[str]:
        """Values of the ``key=value`` folders directly in ``folder``, sorted."""
        prefix = f"{key}="
        entries = self._store.list(folder)
        names = (path.rsplit("/", 1)[-1] for path, is_dir, _ in entries if is_dir)
        return sorted(name[len(prefix) :] for name in names if name.startswith(prefix))

    def files(self, folder: str) -> list[str]:
        """Relative paths of the Parquet files directly in ``folder``, sorted (by time, by their names)."""
        return [
            path for path, is_dir, _ in self._store.list(folder) if not is_dir and path.endswith(".parquet")
        ]

    def dataset(
        self, files: Sequence[str], partitions: Sequence[str], extra: Sequence[str] = ()
    ) -> ds.Dataset:
        """A dataset over ``files`` with string partition columns and the union of their schemas.

        Types are promoted where Arrow can (int64 and float64 give float64); a column that
        is text in one file and numbers in another is read as text. ``extra`` names
        columns no file has, added as nulls.
        """
        import pyarrow.fs as pafs

        location = self._location
        local = location.spec.write_mode == "local"
        filesystem = pafs.LocalFileSystem() if local else pafs.PyFileSystem(pafs.FSSpecHandler(location.fs))
        options = ds.FileSystemFactoryOptions(
            partition_base_dir=location.root,
            partitioning=ds.partitioning(pa.schema([(p, pa.string()) for p in partitions]), flavor="hive"),
        )
        paths = [f"{location.root}/{path}" for path in files]
        factory = ds.FileSystemDatasetFactory(filesystem, paths, ds.ParquetFileFormat(), options)
        try:
            schema = factory.inspect(promote_options="permissive")
        except (pa.ArrowTypeError, pa.ArrowInvalid):
            schema = _as_text_where_mixed(filesystem, paths, partitions)
        for name in extra:
            if schema.get_field_index(name) < 0:
                schema = schema.append(pa.field(name, pa.null()))
        return factory.finish(schema)


def _as_text_where_mixed(filesystem: Any, paths: Sequence[str], partitions: Sequence[str]) -> pa.Schema:
    """The union schema when a column has incompatible types across files: that column becomes text."""
    schemas = [pq.read_schema(path, filesystem=filesystem) for path in paths]
    types: dict[str, set[pa.DataType]] = defaultdict(set)
    for schema in schemas:
        for field in schema:
            types[field.name].add(field.type)
    fixed = [
        pa.schema([pa.field(f.name, pa.string() if len(types[f.name]) > 1 else f.type) for f in schema])
        for schema in schemas
    ]
    merged = pa.unify_schemas(fixed, promote_options="permissive")
    return pa.schema([*merged, *(pa.field(p, pa.string()) for p in partitions)])
