"""Rows of tables, stored in the engine key space of the transactional store.

A table's rows are kept in *chunks* of at most ``row_group_rows`` rows: each chunk is
the value of key ``01 03 table_id chunk`` and holds an Arrow IPC stream of one record
batch, so every column of a chunk is one contiguous buffer. The primary key index
maps ``01 02 table_id key`` (the key in memcomparable form, :mod:`.keys`) to the
row's id ``chunk << 32 | row``; ``01 04 table_id`` holds the next chunk number.
Living in the store, rows get its transactions, WAL, checkpoints, crash recovery,
reader processes and MVCC: a snapshot sees the chunks and index entries of its CSN.
Layout: ``docs/FORMAT.md`` section 8.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ConstraintError, SchemaError
from ..kernels.sort import sorted_distinct
from ..kv.batch import entries_from_slices
from ..kv.keys import SYSTEM_PREFIX, prefix_end
from ..kv.records import PUT
from ..kv.views import KvSnapshotView, KvTransactionView
from .catalog import TableDef
from .keys import encode_key, encode_keys

INDEX = SYSTEM_PREFIX + b"\x02"
CHUNKS = SYSTEM_PREFIX + b"\x03"
NEXT_CHUNK = SYSTEM_PREFIX + b"\x04"
_ROW_ID = struct.Struct(">Q")
KvView = KvSnapshotView | KvTransactionView


def _table_part(definition: TableDef) -> bytes:
    return definition.table_id.to_bytes(4, "big")


def index_prefix(definition: TableDef) -> bytes:
    """Prefix of every primary-key index entry of the table."""
    return INDEX + _table_part(definition)


def chunk_key(definition: TableDef, chunk: int) -> bytes:
    """Key of chunk number ``chunk`` of the table."""
    return CHUNKS + _table_part(definition) + chunk.to_bytes(4, "big")


def conform(definition: TableDef, rows: Any) -> pa.Table:
    """``rows`` (a ``pa.Table``, ``pa.RecordBatch``, anything with
    ``__arrow_c_stream__``, a dict of columns or a list of dicts) as a table of
    exactly the table's schema: columns cast to their types, missing nullable
    columns null. Anything else raises :class:`SchemaError` naming the column."""
    schema = definition.schema
    name = definition.name
    if isinstance(rows, pa.RecordBatch):
        rows = pa.Table.from_batches([rows])
    elif isinstance(rows, dict):
        rows = _from_columns(definition, rows)
    elif isinstance(rows, list):
        extra = sorted({k for row in rows for k in row} - set(schema.names))
        if extra:
            raise SchemaError(f"table {name!r} has no column {extra[0]!r}")
        rows = pa.Table.from_pylist(rows, schema=schema)
    elif not isinstance(rows, pa.Table) and hasattr(rows, "__arrow_c_stream__"):
        rows = pa.RecordBatchReader.from_stream(rows).read_all()
    if not isinstance(rows, pa.Table):
        raise TypeError(f"rows must be a pyarrow Table or RecordBatch, an object with "
                        f"__arrow_c_stream__, a dict of columns or a list of dicts; got "
                        f"{type(rows).__name__}")
    extra = [c for c in rows.column_names if c not in schema.names]
    if extra:
        raise SchemaError(f"table {name!r} has no column {extra[0]!r}")
    columns = []
    for field in schema:
        if field.name in rows.column_names:
            columns.append(_cast(name, field, rows.column(field.name)))
        elif field.nullable:
            columns.append(pa.nulls(rows.num_rows, field.type))
        else:
            raise SchemaError(f"table {name!r}: column {field.name!r} is missing and not "
                              "nullable")
    return pa.Table.from_arrays(columns, schema=schema)


def _from_columns(definition: TableDef, columns: dict[str, Any]) -> pa.Table:
    arrays = {}
    for column, values in columns.items():
        if column not in definition.schema.names:
            raise SchemaError(f"table {definition.name!r} has no column {column!r}")
        field = definition.schema.field(column)
        try:
            arrays[column] = pa.array(values, type=field.type)
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as e:
            raise SchemaError(f"table {definition.name!r}: column {column!r} does not fit "
                              f"type {field.type} ({e})") from None
    return pa.table(arrays)


def _cast(table: str, field: pa.Field, column: pa.ChunkedArray) -> pa.ChunkedArray:
    if column.type == field.type:
        result = column
    else:
        try:
            result = column.cast(field.type)
        except (pa.ArrowException, TypeError, ValueError) as e:
            raise SchemaError(f"table {table!r}: column {field.name!r} of type {column.type} "
                              f"does not convert to {field.type} ({e})") from None
    if not field.nullable and result.null_count:
        raise SchemaError(f"table {table!r}: column {field.name!r} is not nullable but "
                          f"holds {result.null_count} nulls")
    return result


def insert(view: KvTransactionView, definition: TableDef, rows: Any,
           chunk_rows: int, bulk_changes: int) -> int:
    """Add ``rows`` to the table in the transaction of ``view``; returns how many.

    A primary key already present (or repeated in ``rows``) raises
    :class:`ConstraintError` naming it, before anything is written.
    """
    table = conform(definition, rows)
    n = table.num_rows
    if n == 0:
        return 0
    keys = _checked_new_keys(view, definition, table)
    next_key = NEXT_CHUNK + _table_part(definition)
    stored = view.get_raw(next_key)
    first_chunk = 0 if stored is None else int.from_bytes(stored, "big")
    chunk = first_chunk
    for start in range(0, n, chunk_rows):
        view.put_raw(chunk_key(definition, chunk), _ipc(table.slice(start, chunk_rows)))
        chunk += 1
    view.put_raw(next_key, chunk.to_bytes(4, "big"))
    if keys is not None:
        positions = np.arange(n, dtype=np.uint64)
        row_ids = ((np.uint64(first_chunk) + positions // np.uint64(chunk_rows))
                   << np.uint64(32)) | (positions % np.uint64(chunk_rows))
        _put_index(view, definition, keys, row_ids.astype(">u8").view(np.uint8),
                   bulk_changes)
    return int(n)


def _checked_new_keys(view: KvTransactionView, definition: TableDef,
                      table: pa.Table) -> tuple[np.ndarray, np.ndarray] | None:
    """The encoded keys of ``table``'s rows, after checking none is repeated or
    present already (None for a keyless table)."""
    columns = definition.primary_key
    if columns is None:
        return None
    offsets, data = encode_keys(table, columns)
    starts = offsets[:-1]
    lengths = np.diff(offsets)
    if sorted_distinct(starts, lengths, data).size != table.num_rows:
        seen: set[bytes] = set()
        for i in range(table.num_rows):
            key = data[offsets[i] : offsets[i + 1]].tobytes()
            if key in seen:
                raise ConstraintError(f"duplicate primary key {_key_values(table, columns, i)} "
                                      f"in the rows inserted into {definition.name!r}")
            seen.add(key)
    prefix = index_prefix(definition)
    for i in range(table.num_rows):
        if view.get_raw(prefix + data[offsets[i] : offsets[i + 1]].tobytes()) is not None:
            raise ConstraintError(f"duplicate primary key {_key_values(table, columns, i)}: "
                                  f"table {definition.name!r} already has it")
    return offsets, data


def _key_values(table: pa.Table, columns: Sequence[str], row: int) -> str:
    values = table.slice(row, 1).select(list(columns)).to_pylist()[0]
    return ", ".join(f"{c}={values[c]!r}" for c in columns)


def _put_index(view: KvTransactionView, definition: TableDef,
               keys: tuple[np.ndarray, np.ndarray], row_ids: np.ndarray,
               bulk_changes: int) -> None:
    offsets, data = keys
    n = offsets.size - 1
    prefix = index_prefix(definition)
    if n < bulk_changes:
        for i in range(n):
            view.put_raw(prefix + data[offsets[i] : offsets[i + 1]].tobytes(),
                         row_ids[8 * i : 8 * i + 8].tobytes())
        return
    value_starts = np.arange(n, dtype=np.int64) * 8
    view.put_sorted_raw(entries_from_slices(
        np.full(n, PUT, np.uint8), (offsets[:-1], np.diff(offsets), data),
        (value_starts, np.full(n, 8, np.int64), row_ids), prefix))


def _ipc(rows: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, rows.schema) as stream:
        for batch in rows.combine_chunks().to_batches():
            stream.write_batch(batch)
    return sink.getvalue().to_pybytes()  # type: ignore[no-any-return]


def _read_chunk(definition: TableDef, value: bytes) -> pa.Table:
    """A stored chunk as a table of the current schema (columns added later filled
    with their defaults)."""
    chunk = pa.ipc.open_stream(pa.py_buffer(value)).read_all()
    if chunk.num_columns == len(definition.schema):
        return chunk
    columns = list(chunk.columns)
    defaults = definition.defaults
    assert defaults is not None
    for field in definition.schema:
        if field.name not in chunk.column_names:
            columns.append(pa.repeat(defaults.column(field.name)[0], chunk.num_rows))
    return pa.Table.from_arrays(columns, schema=definition.schema)


def get(view: KvView, definition: TableDef, key: Any) -> dict[str, Any] | None:
    """The row with primary key ``key`` (a value, or a tuple for several columns)."""
    columns = definition.primary_key
    if columns is None:
        raise SchemaError(f"table {definition.name!r} has no primary key to get rows by")
    values = tuple(key) if isinstance(key, tuple | list) else (key,)
    row_id = view.get_raw(index_prefix(definition) + encode_key(definition.schema, columns,
                                                                 values))
    if row_id is None:
        return None
    (packed,) = _ROW_ID.unpack(row_id)
    value = view.get_raw(chunk_key(definition, packed >> 32))
    if value is None:
        raise SchemaError(f"table {definition.name!r}: the index points at a missing chunk")
    row: dict[str, Any] = _read_chunk(definition, value).slice(packed & 0xFFFFFFFF,
                                                               1).to_pylist()[0]
    return row


def chunks(view: KvView, definition: TableDef) -> Iterator[pa.Table]:
    """Every chunk of the table, in insertion order."""
    low = CHUNKS + _table_part(definition)
    for _, value in view.scan_raw(low, prefix_end(low)):
        yield _read_chunk(definition, value)


def filtered_chunks(view: KvView, definition: TableDef,
                    filter: pc.Expression | None) -> Iterator[pa.Table]:
    """Every chunk, keeping the rows for which ``filter`` holds (all if None)."""
    for chunk in chunks(view, definition):
        if filter is None:
            yield chunk
            continue
        try:
            yield chunk.filter(filter)
        except (pa.ArrowException, TypeError) as e:
            raise SchemaError(f"table {definition.name!r}: filter {filter} cannot be "
                              f"evaluated ({e})") from None


def scan(view: KvView, definition: TableDef, columns: Sequence[str] | None,
         filter: pc.Expression | None) -> pa.Table:
    """The rows (all columns, or ``columns``) for which ``filter`` holds."""
    if columns is not None:
        missing = [c for c in columns if c not in definition.schema.names]
        if missing:
            raise SchemaError(f"table {definition.name!r} has no column {missing[0]!r}")
    parts = []
    for chunk in filtered_chunks(view, definition, filter):
        if chunk.num_rows:
            parts.append(chunk if columns is None else chunk.select(list(columns)))
    if not parts:
        empty = definition.schema.empty_table()
        return empty if columns is None else empty.select(list(columns))
    return pa.concat_tables(parts)
