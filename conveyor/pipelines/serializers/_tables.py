"""pandas DataFrames and Arrow tables as Parquet files, written with fixed settings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, BinaryIO

from conveyor.errors import InvalidInput
from conveyor.pipelines.serializers._base import ChunkSink, Serializer, is_instance_of
from conveyor.pipelines.serializers._json import json_problem

__all__ = ["ParquetSerializer"]

#: Schema metadata key of Conveyor's own notes: what to rebuild and how.
_NOTES_KEY = b"conveyor"
#: Prefix of the keys holding, per non-string dictionary column, its dictionary (Arrow IPC).
_DICTIONARY_KEY = b"conveyor.dictionary."
#: Aim for row groups of about this many uncompressed bytes (estimated from the schema).
_ROW_GROUP_BYTES = 64 << 20
#: Every writer option that affects the bytes, pinned rather than left to pyarrow's
#: defaults, which change between releases.
_WRITE_OPTIONS: dict[str, Any] = {
    "version": "2.6",
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "write_statistics": True,
    "data_page_version": "1.0",
    "data_page_size": 1 << 20,
    "dictionary_pagesize_limit": 1 << 20,
    "write_batch_size": 1024,
    "use_byte_stream_split": False,
    "use_compliant_nested_type": False,  # keeps Arrow's list field name "item"
    "store_schema": True,
    "write_page_index": False,
    "write_page_checksum": False,
}
#: Column label kinds (``pandas.api.types.infer_dtype``) that Parquet gives back unchanged.
_LABEL_KINDS = frozenset({"string", "integer", "floating", "datetime64", "empty"})
#: Kinds of values in an ``object`` column that come back as the same Python objects.
_OBJECT_KINDS = frozenset({"bytes", "date", "decimal", "empty"})


class ParquetSerializer(Serializer):
    """A ``pandas.DataFrame`` or ``pyarrow.Table`` as one Parquet file (zstd, format 2.6).

    A table loads as a table and a frame as a frame. For frames, pyarrow's pandas
    metadata restores dtypes (extension dtypes such as ``Int64``, ``boolean`` and
    ``str``, time zones, periods, intervals), the index (``RangeIndex`` included) and
    its names, column labels of one kind (``str``, ``int``, ``float``, timestamps) with
    the name of the column axis, and ``DataFrame.attrs`` (kept as JSON, so they must be
    JSON data). Categorical columns keep their categories, order and ``ordered`` flag:
    Parquet readers rebuild dictionaries only for strings, so other dictionaries are
    saved beside the data and re-applied on load.

    Refused, because they would come back different (convert them, or opt in to pickle):

    - duplicate column labels, labels of mixed kinds or of other kinds (``bool``,
      tuples in a flat index, categorical or timedelta labels), non-``str`` index names,
      ``attrs`` that are not JSON data;
    - ``object`` columns holding anything but ``bytes``, ``datetime.date``, ``Decimal``
      or only missing values (or ``str`` under pandas 2, where strings load as objects):
      under pandas 3 strings would come back as dtype ``str``; lists come back as arrays.

    Determinism: the bytes depend only on the value and on the pyarrow version, which
    Parquet records in the file footer (``created_by``) and pandas metadata records too;
    chunking and memory layout do not matter. Upgrading pyarrow or pandas therefore
    changes the hash of an equal table, which makes later steps miss the cache once.
    Streaming: the Arrow table is built in memory, then encoded and handed to the store
    one row group at a time.
    """

    name = "parquet"
    version = 1
    extension = ".parquet"
    types = ("pandas.DataFrame", "pyarrow.Table")

    def accepts(self, value: object) -> bool:
        return super().accepts(value) and self.refusal(value) is None

    def refusal(self, value: object) -> str | None:
        if is_instance_of(value, ("pandas.DataFrame",)):
            return _frame_problem(value)
        if is_instance_of(value, ("pyarrow.Table",)):
            reserved = [key for key in value.schema.metadata or {} if key.startswith(_NOTES_KEY)]  # type: ignore[attr-defined]
            if reserved:
                return f"schema metadata keys starting with b'conveyor' are reserved: {reserved}"
        return None

    def dump(self, value: Any) -> Iterator[bytes]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        notes: dict[str, Any] = {"type": "arrow" if isinstance(value, pa.Table) else "pandas"}
        if isinstance(value, pa.Table):
            table = value
        else:
            table = _from_pandas(value)
            # pyarrow keeps attrs only from version 16 on; keep them the same way everywhere.
            notes["attrs"] = value.attrs
            if _is_range(value.columns):  # pyarrow restores a RangeIndex for rows only
                notes["range_columns"] = [value.columns.start, value.columns.stop, value.columns.step]
        # One dictionary per column across all chunks, so every row group carries the same.
        table = table.unify_dictionaries()
        metadata = {
            **(table.schema.metadata or {}),
            _NOTES_KEY: json.dumps(notes, sort_keys=True, separators=(",", ":")).encode(),
        }
        metadata.update(_saved_dictionaries(table))
        table = table.replace_schema_metadata(metadata)

        sink = ChunkSink()
        rows = _rows_per_group(table.schema)
        try:
            writer = pq.ParquetWriter(sink, table.schema, **_WRITE_OPTIONS)
            try:
                for start in range(0, table.num_rows, rows):
                    # One chunk per row group, whatever the input's chunking.
                    writer.write_table(table.slice(start, rows).combine_chunks(), row_group_size=rows)
                    yield b"".join(sink.drain())  # pages arrive as many small writes
            finally:
                writer.close()
        except pa.ArrowException as exc:
            raise InvalidInput(f"Cannot write this {_kind(value)} as Parquet: {exc}") from exc
        yield b"".join(sink.drain())

    def load(self, data: bytes | BinaryIO) -> Any:
        import pyarrow as pa
        import pyarrow.parquet as pq

        source = pa.BufferReader(data) if isinstance(data, bytes | bytearray | memoryview) else data
        table = pq.read_table(source)
        metadata = dict(table.schema.metadata or {})
        notes = json.loads(metadata.pop(_NOTES_KEY, b'{"type": "arrow"}'))
        for key in [key for key in metadata if key.startswith(_DICTIONARY_KEY)]:
            index = int(key[len(_DICTIONARY_KEY) :])
            table = _reapply_dictionary(table, index, metadata.pop(key))
        table = table.replace_schema_metadata(metadata or None)
        if notes["type"] != "pandas":
            return table
        frame = table.to_pandas()
        frame.attrs = notes.get("attrs", {})
        if "range_columns" in notes:
            import pandas as pd

            frame.columns = pd.RangeIndex(*notes["range_columns"], name=frame.columns.name)
        return frame


def _kind(value: object) -> str:
    return "DataFrame" if is_instance_of(value, ("pandas.DataFrame",)) else "Arrow table"


def _frame_problem(frame: Any) -> str | None:
    """Why ``frame`` would not come back equal from Parquet, or None."""
    from pandas.api.types import infer_dtype

    columns = frame.columns
    if not columns.is_unique:
        duplicates = sorted({repr(label) for label in columns[columns.duplicated()]})
        return f"duplicate column labels {', '.join(duplicates)}; rename them"
    levels = columns.levels if columns.nlevels > 1 else [columns]
    for level in levels:
        kind = infer_dtype(level, skipna=True)
        if kind not in _LABEL_KINDS:
            return (
                f"column labels of kind {kind!r} ({list(level[:3])!r}...) would come back as "
                "strings; use str, int, float or timestamp labels"
            )
    if (problem := json_problem(frame.attrs, "DataFrame.attrs")) is not None:
        return f"{problem} (attrs are stored as JSON)"
    for name in frame.index.names:
        if name is not None and not isinstance(name, str):
            return f"index name {name!r} is not a str and would come back as one"
    for label, column in frame.items():
        if column.dtype == object and (kind := _object_kind(column)) is not None:
            return (
                f"object column {label!r} holds {kind} values, which would come back with another "
                "dtype or element type; convert it (e.g. .astype('str'))"
            )
    for position in range(frame.index.nlevels):
        level = frame.index.get_level_values(position)
        if level.dtype == object and (kind := _object_kind(level)) is not None:
            return f"the object index holds {kind} values, which would come back with another dtype"
    return None


def _object_kind(values: Any) -> str | None:
    """The kind of values in an ``object`` column if Parquet would not give them back, else None."""
    import pyarrow as pa
    from pandas.api.types import infer_dtype

    kind = infer_dtype(values, skipna=True)
    if kind in _OBJECT_KINDS:
        return None
    # Strings load as dtype object under pandas 2 but as dtype str under pandas 3 (or with
    # future.infer_string); ask pyarrow which, rather than copying its version rules.
    if kind == "string" and pa.array(["probe"]).to_pandas().dtype == object:
        return None
    return str(kind)


def _is_range(index: Any) -> bool:
    return is_instance_of(index, ("pandas.RangeIndex",))


def _from_pandas(frame: Any) -> Any:
    import pyarrow as pa

    try:
        return pa.Table.from_pandas(frame, preserve_index=None)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise InvalidInput(
            f"Cannot convert this DataFrame to Arrow for Parquet: {exc}. Give each column values of one type."
        ) from exc


def _rows_per_group(schema: Any) -> int:
    """Rows per row group, from the schema alone so that it never depends on chunking."""
    width = 0
    for field in schema:
        try:
            width += max(1, field.type.bit_width // 8)
        except ValueError:  # variable width: strings, lists, structs
            width += 32
    return max(1024, min(1 << 20, _ROW_GROUP_BYTES // max(1, width)))


def _saved_dictionaries(table: Any) -> dict[bytes, bytes]:
    """Metadata entries holding the dictionary of each top-level non-string dictionary column.

    Each value is an Arrow IPC stream of one empty dictionary array: its type carries the
    index type and the ``ordered`` flag, and its dictionary is saved whole, unused
    entries and order included. ``table`` must have unified dictionaries.
    """
    import pyarrow as pa

    saved = {}
    for index, field in enumerate(table.schema):
        kind = field.type
        if not pa.types.is_dictionary(kind) or _is_binary_like(kind.value_type):
            continue
        column = table.column(index)
        dictionary = column.chunk(0).dictionary if column.num_chunks else pa.array([], kind.value_type)
        empty = pa.DictionaryArray.from_arrays(
            pa.array([], kind.index_type), dictionary, ordered=kind.ordered
        )
        out = pa.BufferOutputStream()
        with pa.ipc.new_stream(out, pa.schema([("dictionary", empty.type)])) as stream:
            stream.write_batch(pa.record_batch([empty], names=["dictionary"]))
        saved[_DICTIONARY_KEY + str(index).encode()] = out.getvalue().to_pybytes()
    return saved


def _reapply_dictionary(table: Any, index: int, saved: bytes) -> Any:
    """Column ``index`` of ``table`` dictionary-encoded again with the dictionary in ``saved``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    empty = pa.ipc.open_stream(saved).read_all().column(0)
    kind, dictionary = empty.type, empty.combine_chunks().dictionary
    field = table.schema.field(index)
    if field.type == kind:
        return table
    chunks = []
    for chunk in table.column(index).chunks:
        dense = chunk.dictionary_decode() if pa.types.is_dictionary(chunk.type) else chunk
        indices = pc.index_in(dense, value_set=dictionary).cast(kind.index_type)
        chunks.append(pa.DictionaryArray.from_arrays(indices, dictionary, ordered=kind.ordered))
    return table.set_column(index, field.with_type(kind), pa.chunked_array(chunks, type=kind))


def _is_binary_like(kind: Any) -> bool:
    """Types whose dictionaries Parquet readers rebuild themselves, exactly."""
    import pyarrow as pa

    return bool(
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
    )
