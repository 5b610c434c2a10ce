"""Rows of tables, as stored in the engine key space of the transactional store, and
how they are read.

A table's rows are kept in *chunks* of at most ``row_group_rows`` rows: each chunk is
the value of key ``01 03 table_id chunk`` and holds an Arrow IPC stream of one record
batch, so every column of a chunk is one contiguous buffer. The primary key index
maps ``01 02 table_id key`` (the key in memcomparable form, :mod:`.keys`) to the
row's id ``chunk << 32 | row``; ``01 04 table_id`` holds the next chunk number; a
deleted row is marked by key ``01 05 table_id chunk row``, and ``01 06 table_id
chunk`` counts a chunk's stored and deleted rows, and ``01 08 table_id tier`` lists
the chunks written under half full, by size tier, merged once there are enough.
Living in the store, rows get its transactions, WAL, checkpoints, crash recovery,
reader processes and MVCC: a snapshot sees the chunks, index entries and delete
marks of its CSN. Layout:
``docs/FORMAT.md`` section 8. Writes are in :mod:`.writes`, filters, counts and scans in
:mod:`.queries`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import CorruptionError, SchemaError
from ..kernels.sort import gather_slices
from ..kv.keys import SYSTEM_PREFIX, TABLE_CHUNKS, prefix_end
from ..kv.ranges import RangeEntries
from ..kv.sorted_entries import Value
from ..kv.views import KvSnapshotView, KvTransactionView, KvView
from ..storage.extents import DESCRIPTOR_BYTES, is_descriptor
from . import tail
from .catalog import TableDef, table_part
from .chunk_cache import CachedChunk, ChunkCache
from .conform import column_array
from .keys import encode_key, encode_keys, key_numbers
from .row_format import Cells

INDEX = SYSTEM_PREFIX + b"\x02"
CHUNKS = TABLE_CHUNKS
NEXT_CHUNK = SYSTEM_PREFIX + b"\x04"
DELETED = SYSTEM_PREFIX + b"\x05"
COUNTS = SYSTEM_PREFIX + b"\x06"
SMALL = SYSTEM_PREFIX + b"\x08"
_COUNTS = struct.Struct(">II")
ROW_ID = struct.Struct(">Q")

_NO_POSITIONS = np.empty(0, np.int64)
_NO_POSITIONS.setflags(write=False)


def index_prefix(definition: TableDef) -> bytes:
    """Prefix of every primary-key index entry of the table."""
    return INDEX + table_part(definition)


def chunk_key(definition: TableDef, chunk: int) -> bytes:
    """Key of chunk number ``chunk`` of the table."""
    return CHUNKS + table_part(definition) + chunk.to_bytes(4, "big")


def deleted_key(definition: TableDef, chunk: int, row: int) -> bytes:
    """Key marking row ``row`` of chunk ``chunk`` deleted."""
    return DELETED + table_part(definition) + chunk.to_bytes(4, "big") + row.to_bytes(4, "big")


def counts_key(definition: TableDef, chunk: int) -> bytes:
    """Key of chunk ``chunk``'s (stored rows, deleted rows) counts."""
    return COUNTS + table_part(definition) + chunk.to_bytes(4, "big")


def chunk_counts(view: KvView, definition: TableDef, chunk: int) -> tuple[int, int]:
    """(stored rows, deleted rows) of chunk ``chunk``."""
    value = view.get_raw(counts_key(definition, chunk))
    if value is None:
        raise CorruptionError(f"table {definition.name!r}: chunk {chunk} has no row counts")
    stored, deleted = _COUNTS.unpack(value)
    return stored, deleted


def encode_counts(stored: int, deleted: int) -> bytes:
    """Value of a chunk's counts key."""
    return _COUNTS.pack(stored, deleted)


def _chunk_value(view: KvView, definition: TableDef, chunk: int) -> Value | None:
    """A chunk's bytes for reading rows out of it, a view where they lie in an array
    (a run, or an extent of the data file): in a snapshot the caller wraps it with
    the snapshot's lease; in a transaction it must not outlive the transaction
    (writes copy what they keep)."""
    value = view.get_raw_view(chunk_key(definition, chunk))
    return None if value is None else chunk_bytes(view, value)


def descriptors_among(chunks: RangeEntries) -> Iterator[tuple[int, Value]]:
    """(position, value) of the chunk values of ``chunks`` that are extent
    descriptors (values too short to be one are not looked at)."""
    for i in np.flatnonzero(chunks.value_lengths() >= DESCRIPTOR_BYTES).tolist():
        value = chunks.value(i)
        if is_descriptor(value):
            yield i, value


def chunk_bytes(view: KvView, value: Value) -> Value:
    """The bytes of a chunk whose key holds ``value``: the value itself, or the
    extent of the data file it describes (a bulk import's chunk)."""
    if not is_descriptor(value):
        return value
    if view.extents is None:
        raise CorruptionError("a table chunk names an extent of the data file, which "
                              "is missing")
    return view.extents.read(value)


def _parse(value: Value | pa.Buffer, columns: Sequence[int] | None = None) -> pa.Table:
    """A chunk's rows (only the stored columns at positions ``columns``, if given);
    a buffer that is not aligned for its type is copied (Arrow requires it), every
    other one is read in place."""
    options = pa.ipc.IpcReadOptions(ensure_alignment=pa.ipc.Alignment.DataTypeSpecific,
                                    included_fields=columns)
    source = value if isinstance(value, pa.Buffer) else pa.py_buffer(value)
    return pa.ipc.open_stream(source, options=options).read_all()


def read_chunk(definition: TableDef, value: Value | pa.Buffer,
               columns: Sequence[str] | None = None) -> pa.Table:
    """A stored chunk as a table of the current schema (columns added later filled
    with their defaults), or of just ``columns``."""
    if columns is None:
        return _current_schema(definition, _parse(value))
    names = definition.schema.names
    if definition.defaults is None:  # no column was added: every chunk has them all
        # Arrow reads the fields in schema order, once each, and [] as all of them.
        wanted = sorted({names.index(c) for c in columns}) or [0]
        return _parse(value, wanted).select(list(columns))
    return _current_schema(definition, _parse(value)).select(list(columns))


def _cached_chunk(view: KvView, definition: TableDef, chunk: int,
                  cache: ChunkCache | None) -> pa.Table | None:
    """Chunk ``chunk`` parsed (see :func:`_chunk_entry`), as a table of the current
    schema; None if the chunk does not exist."""
    entry = _chunk_entry(view, definition, chunk, cache)
    return None if entry is None else _current_schema(definition, entry.rows)


def _chunk_entry(view: KvView, definition: TableDef, chunk: int,
                 cache: ChunkCache | None) -> CachedChunk | None:
    """Chunk ``chunk`` parsed, as stored, with its column arrays.

    Committed chunks go through ``cache``: on a miss a chunk is copied into it if
    the cache admits it (:meth:`ChunkCache.admit`), else parsed where it lies and
    not kept. A chunk this transaction wrote is read from its own writes (its number
    was never committed, so it cannot be in the cache either).
    """
    if isinstance(view, KvTransactionView) and view.wrote_raw(chunk_key(definition, chunk)):
        cache = None
    if cache is not None:
        cached = cache.get(definition.table_id, chunk)
        if cached is not None:
            return cached
    value = _chunk_value(view, definition, chunk)
    if value is None:
        return None
    if cache is not None and cache.admit(len(value)):
        private = value if isinstance(value, bytes) else value.tobytes()
        return cache.put(definition.table_id, chunk, _parse(private))
    return CachedChunk.of(_parse(_arrow_buffer(value, _lease(view))))


def _lease(view: KvView) -> object | None:
    """What keeps pages read through ``view`` from reuse: a snapshot's lease; nothing
    for a transaction (no checkpoint starts while it holds the write lock)."""
    return view.lease() if isinstance(view, KvSnapshotView) else None


def _current_schema(definition: TableDef, chunk: pa.Table) -> pa.Table:
    if chunk.num_columns == len(definition.schema):
        return chunk
    columns = list(chunk.columns)
    defaults = definition.defaults
    assert defaults is not None
    for field in definition.schema:
        if field.name not in chunk.column_names:
            columns.append(pa.repeat(defaults.column(field.name)[0], chunk.num_rows))
    return pa.Table.from_arrays(columns, schema=definition.schema)


def encoded_key(definition: TableDef, key: Any) -> bytes:
    """The index key of primary key ``key`` (a value, or a tuple for several columns)."""
    if definition.int64_key and type(key) is int and -(1 << 63) <= key < 1 << 63:
        # What encode_key gives for one int64 (tested to agree), minus its checks.
        return index_prefix(definition) + (key + (1 << 63)).to_bytes(8, "big")
    columns = definition.primary_key
    if columns is None:
        raise SchemaError(f"table {definition.name!r} has no primary key")
    values = tuple(key) if isinstance(key, tuple | list) else (key,)
    return index_prefix(definition) + encode_key(definition.schema, columns, values)


def find(view: KvView, definition: TableDef, key: Any) -> tuple[int, int] | None:
    """(chunk, row) of the row with primary key ``key``, or None."""
    row_id = view.get_raw(encoded_key(definition, key))
    if row_id is None:
        return None
    (packed,) = ROW_ID.unpack(row_id)
    return packed >> 32, packed & 0xFFFFFFFF


def get(view: KvView, definition: TableDef, key: Any,
        cache: ChunkCache | None = None) -> dict[str, Any] | None:
    """The row with primary key ``key`` as a dict, or None."""
    where = find(view, definition, key)
    if where is None:
        return None
    layout = definition.row_layout
    if where[0] == tail.TAIL_CHUNK and layout.readers is not None:
        # A recent row, its stored form read in Python.
        values = layout.python_values(tail.cells(view, definition, where[1]))
        return dict(zip(definition.schema.names, values, strict=True))
    entry, row = _row_entry(view, definition, *where, cache)
    # Value by value through readers of the columns kept with the cached chunk:
    # several times faster than a one-row slice's to_pylist, the same Python values.
    return entry.values(row, definition.positions)


def stored_cells(view: KvView, definition: TableDef, chunk: int, row: int,
                 cache: ChunkCache | None) -> Cells:
    """Row ``row`` of chunk ``chunk`` (or of the tail) as its columns' bytes in the
    stored row form of :mod:`.row_format` (what an update copies into the new row)."""
    if chunk == tail.TAIL_CHUNK:
        return tail.cells(view, definition, row)
    entry, position = _row_entry(view, definition, chunk, row, cache)
    return entry.cells(position)


def _row_entry(view: KvView, definition: TableDef, chunk: int, row: int,
               cache: ChunkCache | None) -> tuple[CachedChunk, int]:
    """The parsed chunk holding row ``row`` of chunk ``chunk`` and the row's position
    in it: the chunk itself (usually from ``cache``), or an entry of just that row
    for a tail row or a chunk written before a column was added."""
    entry = None if chunk == tail.TAIL_CHUNK else _chunk_entry(view, definition, chunk,
                                                                cache)
    if entry is None or len(entry.arrays) != len(definition.schema) or \
            not 0 <= row < entry.rows.num_rows:
        return CachedChunk.of(rows_at(view, definition, chunk, [row], cache)), 0
    return entry, row


def rows_at(view: KvView, definition: TableDef, chunk: int,
            rows: Sequence[int] | np.ndarray, cache: ChunkCache | None) -> pa.Table:
    """Rows ``rows`` of chunk ``chunk`` (or of the tail), in that order."""
    if chunk == tail.TAIL_CHUNK:
        return tail.rows_at(view, definition, [int(r) for r in rows])
    stored = indexed_chunk(view, definition, chunk, cache)
    wanted = np.asarray(rows, np.int64)
    if wanted.size and (wanted.min() < 0 or wanted.max() >= stored.num_rows):
        raise CorruptionError(f"table {definition.name!r}: an index points at row "
                              f"{int(wanted.max())} of chunk {chunk}, which has "
                              f"{stored.num_rows}")
    if wanted.size == 1:
        return stored.slice(int(wanted[0]), 1)
    return stored.take(pa.array(wanted))


def indexed_chunk(view: KvView, definition: TableDef, chunk: int,
                   cache: ChunkCache | None) -> pa.Table:
    rows = _cached_chunk(view, definition, chunk, cache)
    if rows is None:
        raise CorruptionError(f"table {definition.name!r}: an index points at chunk "
                              f"{chunk}, which is missing")
    return rows


def get_many(view: KvView, definition: TableDef, keys: Sequence[Any],
             cache: ChunkCache | None = None) -> pa.Table:
    """The rows with the given primary keys that exist, in the order of ``keys``
    (keys encoded as whole columns, looked up with one kernel call per sorted layer
    or run, rows gathered chunk by chunk)."""
    columns = definition.primary_key
    if columns is None:
        raise SchemaError(f"table {definition.name!r} has no primary key")
    if not keys:
        return definition.schema.empty_table()
    parts = [list(keys)] if len(columns) == 1 else \
        [list(part) for part in zip(*[_key_tuple(definition, k) for k in keys], strict=True)]
    key_table = pa.Table.from_arrays(
        [column_array(definition, definition.schema.field(c), part)
         for c, part in zip(columns, parts, strict=True)], names=list(columns))
    present = np.ones(len(keys), bool)
    for column in key_table.columns:
        if column.null_count:
            present &= column.is_valid().to_numpy(zero_copy_only=False)
    if not present.all():
        key_table = key_table.filter(pa.array(present))
    offsets, data = encode_keys(key_table, columns)
    probes = gather_slices(offsets[:-1], np.diff(offsets), data, np.arange(offsets.size - 1),
                           index_prefix(definition))
    found = view.get_many_raw(probes)
    value_offsets, values = found.values()
    if (np.diff(value_offsets)[found.states == 1] != ROW_ID.size).any():
        raise CorruptionError(f"table {definition.name!r}: a primary key entry is not a "
                              "row id")
    return fetch(view, definition, values.view(">u8").astype(np.uint64), cache)


def _key_tuple(definition: TableDef, key: Any) -> tuple[Any, ...]:
    assert definition.primary_key is not None
    if not isinstance(key, tuple | list) or len(key) != len(definition.primary_key):
        raise SchemaError(f"table {definition.name!r}: a key of "
                          f"{', '.join(definition.primary_key)} is a tuple of "
                          f"{len(definition.primary_key)} values, not {key!r}")
    return tuple(key)


def fetch(view: KvView, definition: TableDef, row_ids: np.ndarray,
          cache: ChunkCache | None = None) -> pa.Table:
    """The rows at ``row_ids``, in that order (each chunk involved is read once)."""
    if not row_ids.size:
        return definition.schema.empty_table()
    chunks = (row_ids >> np.uint64(32)).astype(np.int64)
    rows = (row_ids & np.uint64(0xFFFFFFFF)).astype(np.int64)
    order = np.argsort(chunks, kind="stable")
    sorted_chunks = chunks[order]
    bounds = np.flatnonzero(np.diff(sorted_chunks)) + 1
    parts = [rows_at(view, definition, int(sorted_chunks[start]), rows[picked], cache)
             for start, picked in zip(np.concatenate(([0], bounds)),
                                      np.split(order, bounds), strict=True)]
    gathered = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
    if len(parts) == 1:
        return gathered
    inverse = np.empty_like(order)
    inverse[order] = np.arange(order.size)
    try:
        return gathered.take(pa.array(inverse))
    except pa.ArrowInvalid:
        # Dictionary columns of several chunks whose values together overflow the
        # index type cannot be taken across as one array: put the result together
        # from runs of rows of one chunk each (a column of several pieces).
        return _in_runs(parts, bounds, inverse)


def _in_runs(parts: list[pa.Table], bounds: np.ndarray, inverse: np.ndarray) -> pa.Table:
    """Rows ``inverse`` (positions in ``parts`` laid end to end, ``bounds`` where
    each part after the first starts) as a table of runs of rows from one part."""
    part_of = np.searchsorted(bounds, inverse, side="right")
    starts = np.concatenate(([0], bounds))
    breaks = np.flatnonzero(np.diff(part_of)) + 1
    runs = []
    for first, last in zip(np.concatenate(([0], breaks)),
                           np.concatenate((breaks, [inverse.size])), strict=True):
        part = int(part_of[first])
        runs.append(parts[part].take(pa.array(inverse[first:last] - starts[part])))
    return pa.concat_tables(runs)


def live_chunks(view: KvView, definition: TableDef, columns: Sequence[str] | None = None,
                numbered: bool = True, skip: set[int] | frozenset[int] = frozenset(),
                ) -> Iterator[tuple[int, np.ndarray, pa.Table]]:
    """(chunk number, row numbers, rows: all columns or ``columns``) of every chunk,
    deleted rows left out (the stored row count is ``len(row numbers) + deleted``;
    see :func:`deleted_rows`), then of the tail (chunk number
    :data:`~.tail.TAIL_CHUNK`) if it has rows. Without ``numbered``, row numbers
    are left empty (readers of rows only); chunks in ``skip`` are not read.

    Chunk keys, delete marks and the tail are read (as arrays, one range read
    each) before the first chunk is parsed, so once the first item is taken the
    view is not used again (a stream may outlive its snapshot); in a snapshot,
    the columns of chunks lying in the mapped file are Arrow buffers over
    the map itself (no copy), which keep its pages from reuse while they live."""
    part = table_part(definition)
    chunks = view.range_raw(CHUNKS + part, prefix_end(CHUNKS + part))
    numbers = key_numbers(definition.name, chunks.keys, len(CHUNKS) + 4, 1)[:, 0]
    marked = key_numbers(definition.name, view.range_raw(DELETED + part,
                                                     prefix_end(DELETED + part)).keys,
                          len(DELETED) + 4, 2)
    firsts = np.searchsorted(marked[:, 0], numbers, side="left")
    ends = np.searchsorted(marked[:, 0], numbers, side="right")
    lease = _lease(view)
    seqs, tail_rows = tail.read(view, definition)  # every read of the view done first
    for i, chunk in enumerate(numbers.tolist()):
        if chunk in skip:
            continue
        rows = read_chunk(definition, _arrow_buffer(chunk_bytes(view, chunks.value(i)), lease),
                          columns)
        positions = np.arange(rows.num_rows) if numbered else _NO_POSITIONS
        deleted = marked[firsts[i] : ends[i], 1]
        if deleted.size:
            if deleted[-1] >= rows.num_rows:
                raise CorruptionError(f"table {definition.name!r}: a delete mark names row "
                                      f"{deleted[-1]} of chunk {chunk}, which has "
                                      f"{rows.num_rows}")
            keep = np.ones(rows.num_rows, bool)
            keep[deleted] = False
            positions = positions[keep] if numbered else positions
            rows = rows.filter(pa.array(keep))
        yield chunk, positions, rows
    if tail_rows.num_rows:
        yield tail.TAIL_CHUNK, seqs, tail_rows if columns is None else \
            tail_rows.select(list(columns))


def row_count(view: KvView, definition: TableDef) -> int:
    """Live rows of the table, from the chunks' row counts and the tail's keys (no
    chunk is read)."""
    part = table_part(definition)
    offsets, counts = view.range_raw(COUNTS + part, prefix_end(COUNTS + part)).values()
    if (np.diff(offsets) != _COUNTS.size).any():
        raise CorruptionError(f"table {definition.name!r}: a chunk's row counts are damaged")
    stored_deleted = counts.view(">u4").astype(np.int64).reshape(-1, 2)
    return int((stored_deleted[:, 0] - stored_deleted[:, 1]).sum()) + tail.count(view,
                                                                                definition)


def _arrow_buffer(value: Value, lease: object | None) -> pa.Buffer:
    """``value`` as an Arrow buffer without a copy, holding ``lease`` (if any) for as
    long as Arrow holds the memory."""
    if isinstance(value, bytes):
        return pa.py_buffer(value)
    return pa.foreign_buffer(value.ctypes.data, value.nbytes, base=(value, lease))


def deleted_rows(view: KvView, definition: TableDef, chunk: int) -> list[int]:
    """Row numbers of chunk ``chunk`` marked deleted."""
    marks = DELETED + table_part(definition) + chunk.to_bytes(4, "big")
    keys = view.range_raw(marks, prefix_end(marks)).keys
    rows: list[int] = key_numbers(definition.name, keys, len(marks), 1)[:, 0].tolist()
    return rows
