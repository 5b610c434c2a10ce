"""Changing a table's rows inside a transaction: insert, upsert, update, delete,
delete_where (layout in :mod:`.rows`).

Every change is checked before anything is written (a duplicate or null key, a
column that does not fit), so a failed call leaves the transaction as it was. An
update or upsert of an existing row marks the old row deleted and writes the new
version as a new row; the index entry moves to it, while snapshots older than the
commit still reach the old version through their older index entry. An update
keeping the row's key in a table without secondary indexes (the usual one) makes
the new row from the old row's stored bytes, not as an Arrow table.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ConstraintError, SchemaError
from ..kernels.keycodec import Varlen
from ..kernels.merge import Entries
from ..kernels.sort import gather_slices, sort_words, sorted_distinct
from ..kv.batch import entries_from_slices
from ..kv.keys import prefix_end
from ..kv.records import DELETE, PUT
from ..kv.views import KvTransactionView
from ..storage.extents import ExtentWriter
from . import tail
from .catalog import TableDef, table_part
from .chunk_cache import ChunkCache
from .conform import column_array, conform
from .indexes import SECONDARY, indexes_of
from .keys import encode_keys
from .queries import matching
from .row_format import ColumnBytes, encode_rows, number_cell
from .rows import (
    CHUNKS,
    COUNTS,
    DELETED,
    INDEX,
    NEXT_CHUNK,
    ROW_ID,
    SMALL,
    chunk_counts,
    chunk_key,
    counts_key,
    deleted_key,
    deleted_rows,
    encode_counts,
    encoded_key,
    fetch,
    find,
    index_prefix,
    indexed_chunk,
    live_chunks,
    rows_at,
    stored_cells,
)
from .stats import STATS, encode_stats, stats_key

SMALL_CHUNKS = 16
"""Chunks under half full that a table collects before a write merges them."""


@dataclass(frozen=True)
class WriteSettings:
    """How a write lays rows out: rows per chunk, the size from which index entries
    go the bulk way, the rows a tail holds (:mod:`.tail`), the chunk cache reads
    may use, and (in a bulk transaction) the extents chunks are written to."""

    chunk_rows: int
    bulk_changes: int
    tail_rows: int
    cache: ChunkCache | None = None
    extents: ExtentWriter | None = None
    """In a bulk transaction: where chunks of a few pages or more are written."""


def insert(view: KvTransactionView, definition: TableDef, rows: Any,
           settings: WriteSettings) -> int:
    """Add ``rows``; a primary key already present or repeated in ``rows`` raises
    :class:`ConstraintError` naming it. Returns how many rows were added."""
    table = conform(definition, rows)
    if table.num_rows == 0:
        return 0
    keys = _keys(definition, table, repeated="error")
    if keys is not None:
        _refuse_present(view, definition, table, keys)
    _append(view, definition, table, keys, settings)
    return int(table.num_rows)


def upsert(view: KvTransactionView, definition: TableDef, rows: Any,
           settings: WriteSettings) -> int:
    """Insert ``rows``, replacing rows with the same primary key (the last of rows
    repeating a key wins). Returns how many rows were written."""
    table = conform(definition, rows)
    if definition.primary_key is None:
        raise SchemaError(f"table {definition.name!r} has no primary key to upsert by")
    if table.num_rows == 0:
        return 0
    keyed = _keys(definition, table, repeated="keep last")
    assert keyed is not None
    offsets, data, table = keyed
    prefix = index_prefix(definition)
    due: set[int] = set()
    replaced: dict[int, list[int]] = {}
    for i in range(table.num_rows):
        row_id = view.get_raw(prefix + data[offsets[i] : offsets[i + 1]].tobytes())
        if row_id is not None:
            (packed,) = ROW_ID.unpack(row_id)
            replaced.setdefault(packed >> 32, []).append(packed & 0xFFFFFFFF)
    for chunk, rows_of_chunk in replaced.items():
        _mark_deleted(view, definition, chunk, rows_of_chunk, due, settings)
    _append(view, definition, table, (offsets, data), settings)
    _compact_due(view, definition, due, settings)
    return int(table.num_rows)


def update(view: KvTransactionView, definition: TableDef, key: Any,
           changes: dict[str, Any], settings: WriteSettings) -> bool:
    """Set the columns in ``changes`` of the row with primary key ``key``; False if
    there is no such row. Changing key columns moves the row to its new key (which
    must be free)."""
    positions = definition.positions
    unknown = [c for c in changes if c not in positions]
    if unknown:
        raise SchemaError(f"table {definition.name!r} has no column {unknown[0]!r}")
    old_key = encoded_key(definition, key)
    row_id = view.get_raw(old_key)
    if row_id is None:
        return False
    (packed,) = ROW_ID.unpack(row_id)
    where = packed >> 32, packed & 0xFFFFFFFF
    assert definition.primary_key is not None
    moves = any(c in changes for c in definition.primary_key)
    due: set[int] = set()
    if moves or definition.indexes or not _fits_tail(1, settings):
        _update_as_table(view, definition, old_key, where, changes, moves, due, settings)
    else:
        _update_in_tail(view, definition, old_key, where, changes, due, settings)
    _compact_due(view, definition, due, settings)
    return True


def _update_as_table(view: KvTransactionView, definition: TableDef, old_key: bytes,
                     where: tuple[int, int], changes: dict[str, Any], moves: bool,
                     due: set[int], settings: WriteSettings) -> None:
    """:func:`update` with the new row made as an Arrow table (what a new key,
    secondary indexes or a chunk need). It stays in Arrow: no Python round trip
    that could change a value."""
    values = {i: _new_value(definition, i, changes[name])
              for i, name in _changed(definition, changes)}
    old = rows_at(view, definition, where[0], [where[1]], settings.cache)
    new = pa.Table.from_arrays([pa.chunked_array([values[i]]) if i in values else column
                                for i, column in enumerate(old.columns)],
                               schema=definition.schema)
    new_keys: Keys
    if moves:
        new_keys = _keys(definition, new, repeated="error")
        assert new_keys is not None
        offsets, data = new_keys[0], new_keys[1]
        if index_prefix(definition) + data[offsets[0] : offsets[1]].tobytes() != old_key:
            _refuse_present(view, definition, new, new_keys)
    else:
        body = old_key[len(index_prefix(definition)):]
        new_keys = (np.array([0, len(body)], np.int64), np.frombuffer(body, np.uint8))
    _mark_deleted(view, definition, where[0], [where[1]], due, settings, old)
    view.put_raw(old_key, None)
    _append(view, definition, new, new_keys, settings)


def _update_in_tail(view: KvTransactionView, definition: TableDef, old_key: bytes,
                    where: tuple[int, int], changes: dict[str, Any], due: set[int],
                    settings: WriteSettings) -> None:
    """:func:`update` of a row keeping its key in a table without secondary indexes,
    the usual one: the new tail row is the old row's stored cells (:mod:`.row_format`)
    with the changed ones replaced, and no Arrow table is made."""
    layout = definition.row_layout
    changed = {}
    for i, name in _changed(definition, changes):
        spec = layout.columns[i]
        cell = number_cell(spec, changes[name])
        changed[i] = cell if cell is not None else \
            ColumnBytes(_new_value(definition, i, changes[name]), spec).value(0)
    cells = stored_cells(view, definition, where[0], where[1], settings.cache)
    for i, cell in changed.items():
        cells[i] = cell
    _mark_deleted(view, definition, where[0], [where[1]], due, settings)
    first = _tail_seq(view, definition, 1, settings)
    (new_id,) = tail.append(view, definition, [layout.encode(cells)], first).tolist()
    view.put_raw(old_key, ROW_ID.pack(new_id))


def _changed(definition: TableDef, changes: dict[str, Any]) -> list[tuple[int, str]]:
    """(position, name) of the columns in ``changes``, in schema order (so the first
    value refused is the first in the schema)."""
    positions = definition.positions
    return sorted((positions[name], name) for name in changes)


def _new_value(definition: TableDef, position: int, value: Any) -> pa.Array:
    """``value`` as an array of the column at ``position`` (a value that does not
    fit, or a null in a column that is not nullable, raises :class:`SchemaError`)."""
    field = definition.schema.field(position)
    array = column_array(definition, field, [value])
    if array.null_count and not field.nullable:
        raise SchemaError(f"table {definition.name!r}: column {field.name!r} is not "
                          "nullable")
    return array


def delete(view: KvTransactionView, definition: TableDef, key: Any,
           settings: WriteSettings) -> bool:
    """Delete the row with primary key ``key``; False if there is none."""
    where = find(view, definition, key)
    if where is None:
        return False
    due: set[int] = set()
    _mark_deleted(view, definition, where[0], [where[1]], due, settings)
    view.put_raw(encoded_key(definition, key), None)
    _compact_due(view, definition, due, settings)
    return True


def _mark_deleted(view: KvTransactionView, definition: TableDef, chunk: int,
                  rows: list[int], due: set[int], settings: WriteSettings,
                  data: pa.Table | None = None) -> None:
    """Mark ``rows`` of ``chunk`` deleted and drop their secondary index entries
    (``data``: those rows, read from the chunk if not given); add the chunk to
    ``due`` once half of its rows are deleted (the automatic compaction policy).
    Tail rows (chunk :data:`~.tail.TAIL_CHUNK`) are deleted outright."""
    if definition.indexes:
        if data is None:
            data = rows_at(view, definition, chunk, rows, settings.cache)
        row_ids = (np.uint64(chunk) << np.uint64(32)) | np.array(rows, np.uint64)
        for index in indexes_of(definition):
            index.delete(view, data, row_ids)
    if chunk == tail.TAIL_CHUNK:
        tail.delete(view, definition, rows)
        return
    for row in rows:
        view.put_raw(deleted_key(definition, chunk, row), b"")
    stored, deleted = chunk_counts(view, definition, chunk)
    deleted += len(rows)
    view.put_raw(counts_key(definition, chunk), encode_counts(stored, deleted))
    if 2 * deleted >= stored:
        due.add(chunk)


def _compact_due(view: KvTransactionView, definition: TableDef, due: set[int],
                 settings: WriteSettings) -> None:
    if due:
        compact(view, definition, settings, only=due)


def delete_where(view: KvTransactionView, definition: TableDef,
                 filter: pc.Expression, settings: WriteSettings) -> int:
    """Delete every row for which ``filter`` holds; returns how many."""
    if not isinstance(filter, pc.Expression):
        raise TypeError(f"delete_where takes a pyarrow.compute expression, not "
                        f"{type(filter).__name__}")
    marked = []
    for chunk, positions, rows in live_chunks(view, definition):
        hit = matching(definition, rows, filter)
        if hit.any():
            marked.append((chunk, positions[hit], rows.filter(pa.array(hit))))
    prefix = index_prefix(definition)
    count = 0
    due: set[int] = set()
    for chunk, rows_hit, rows in marked:
        _mark_deleted(view, definition, chunk, rows_hit.tolist(), due, settings, rows)
        if definition.primary_key is not None:
            offsets, data = encode_keys(rows, definition.primary_key)
            for i in range(rows.num_rows):
                view.put_raw(prefix + data[offsets[i] : offsets[i + 1]].tobytes(), None)
        count += len(rows_hit)
    _compact_due(view, definition, due, settings)
    return count


def compact(view: KvTransactionView, definition: TableDef, settings: WriteSettings,
            only: set[int] | None = None) -> dict[str, int]:
    """Rewrite the chunks holding deleted rows or under half ``settings.chunk_rows`` rows
    (or just the chunks ``only``) into full chunks of their live rows; older
    snapshots keep the old chunks until they end. Returns what was done."""
    victims = []
    dropped = 0
    candidates = live_chunks(view, definition) if only is None else \
        _some_live_chunks(view, definition, sorted(only), settings)
    for chunk, positions, rows in candidates:
        deleted = deleted_rows(view, definition, chunk)
        if only is not None or deleted or rows.num_rows < settings.chunk_rows // 2:
            victims.append((chunk, positions, rows, deleted))
            dropped += len(deleted)
    if only is None and not dropped and len(victims) < 2:
        return {"chunks_rewritten": 0, "rows_moved": 0, "deleted_rows_dropped": 0}
    for chunk, positions, rows, deleted in victims:
        old_ids = (np.uint64(chunk) << np.uint64(32)) | positions.astype(np.uint64)
        for index in indexes_of(definition):
            index.delete(view, rows, old_ids)
        if chunk == tail.TAIL_CHUNK:
            tail.delete(view, definition, positions.tolist())
            tail.restart(view, definition)
            continue
        view.put_raw(chunk_key(definition, chunk), None)
        view.put_raw(counts_key(definition, chunk), None)
        view.put_raw(stats_key(definition, chunk), None)
        for row in deleted:
            view.put_raw(deleted_key(definition, chunk, row), None)
    live = [rows for _, _, rows, _ in victims if rows.num_rows]
    moved = sum(rows.num_rows for rows in live)
    if live:
        table = pa.concat_tables(live)
        _write_chunks(view, definition, table, _keys(definition, table, repeated="error"),
                      settings)
    return {"chunks_rewritten": len(victims), "rows_moved": moved,
            "deleted_rows_dropped": dropped}


def _some_live_chunks(view: KvTransactionView, definition: TableDef, chunks: list[int],
                      settings: WriteSettings) -> Iterator[tuple[int, np.ndarray, pa.Table]]:
    """Like :func:`~colibri_mm.tables.rows.live_chunks`, for the given chunks only
    (the automatic policy must not scan the whole table for each write)."""
    for chunk in chunks:
        if view.get_raw(counts_key(definition, chunk)) is None:
            continue  # already rewritten (a compaction after it was listed)
        rows = indexed_chunk(view, definition, chunk, settings.cache)
        keep = np.ones(rows.num_rows, bool)
        keep[deleted_rows(view, definition, chunk)] = False
        yield chunk, np.flatnonzero(keep), rows.filter(pa.array(keep))


def _keys(definition: TableDef, table: pa.Table,
          repeated: str) -> tuple[np.ndarray, np.ndarray, pa.Table] | None:
    """Encoded keys of ``table`` (and the table): a key repeated in it raises
    :class:`ConstraintError` (``"error"``) or keeps its last row (``"keep last"``,
    which may return fewer rows). None for a keyless table."""
    columns = definition.primary_key
    if columns is None:
        return None
    offsets, data = encode_keys(table, columns)
    if table.num_rows == 1:
        return offsets, data, table
    newest = sorted_distinct(offsets[:-1], np.diff(offsets), data)
    if newest.size == table.num_rows:
        return offsets, data, table
    if repeated == "keep last":
        kept = np.sort(newest)
        table = table.take(pa.array(kept))
        offsets, data = encode_keys(table, columns)
        return offsets, data, table
    seen: set[bytes] = set()
    for i in range(table.num_rows):
        key = data[offsets[i] : offsets[i + 1]].tobytes()
        if key in seen:
            raise ConstraintError(f"duplicate primary key {_key_values(table, columns, i)} "
                                  f"in the rows written to {definition.name!r}")
        seen.add(key)
    raise AssertionError("a repeated key was not found")


def _refuse_present(view: KvTransactionView, definition: TableDef, table: pa.Table,
                    keys: tuple[np.ndarray, np.ndarray, pa.Table] | Varlen) -> None:
    """Raise :class:`ConstraintError` naming the first row whose key the table has
    (one vectorised lookup per layer of the store for all the rows)."""
    offsets, data = keys[0], keys[1]
    n = offsets.size - 1
    probes = gather_slices(offsets[:-1], np.diff(offsets), data, np.arange(n),
                           index_prefix(definition))
    present = np.flatnonzero(view.get_many_raw(probes).states == 1)
    if present.size:
        assert definition.primary_key is not None
        raise ConstraintError(f"duplicate primary key "
                              f"{_key_values(table, definition.primary_key, int(present[0]))}: "
                              f"table {definition.name!r} already has it")


def _key_values(table: pa.Table, columns: Sequence[str], row: int) -> str:
    values = table.slice(row, 1).select(list(columns)).to_pylist()[0]
    return ", ".join(f"{c}={values[c]!r}" for c in columns)


Keys = tuple[np.ndarray, np.ndarray, pa.Table] | Varlen | None
"""Encoded primary keys of rows being written (None: a keyless table)."""


def _append(view: KvTransactionView, definition: TableDef, table: pa.Table, keys: Keys,
            settings: WriteSettings) -> None:
    """Write ``table``'s rows (to the tail if they are few, else as new chunks) and
    point the indexes at them."""
    n = table.num_rows
    if not _fits_tail(n, settings):
        _write_chunks(view, definition, table, keys, settings)
        return
    first = _tail_seq(view, definition, n, settings)
    _index_rows(view, definition, table, keys,
                tail.append(view, definition, encode_rows(table), first), settings)


def _fits_tail(n: int, settings: WriteSettings) -> bool:
    """Whether a write of ``n`` rows goes to the tail (at most a quarter of it)."""
    return 4 * n <= settings.tail_rows


def _tail_seq(view: KvTransactionView, definition: TableDef, n: int,
              settings: WriteSettings) -> int:
    """The ``seq`` of the first of ``n`` rows about to join the tail (folded first
    if they would pass ``tail_rows``)."""
    first = tail.next_seq(view, definition)
    if first + n > settings.tail_rows:
        fold_tail(view, definition, settings)
        first = 0
    return first


def fold_tail(view: KvTransactionView, definition: TableDef,
              settings: WriteSettings) -> int:
    """Move the tail's rows into a chunk (indexes repointed); returns how many."""
    seqs, rows = tail.read(view, definition)
    tail.restart(view, definition)
    if not rows.num_rows:
        return 0
    tail.delete(view, definition, seqs.tolist())
    old_ids = (np.uint64(tail.TAIL_CHUNK) << np.uint64(32)) | seqs.astype(np.uint64)
    for index in indexes_of(definition):
        index.delete(view, rows, old_ids)
    _write_chunks(view, definition, rows, _keys(definition, rows, repeated="error"), settings)
    return int(rows.num_rows)


def _write_chunks(view: KvTransactionView, definition: TableDef, table: pa.Table,
                  keys: Keys, settings: WriteSettings) -> None:
    """Write ``table`` as new chunks and point the indexes at its rows."""
    row_ids, small = _store_chunks(view, definition, table, settings)
    _index_rows(view, definition, table, keys, row_ids, settings)
    if small is not None:
        _note_small_chunk(view, definition, *small, settings)


def _store_chunks(view: KvTransactionView, definition: TableDef, table: pa.Table,
                  settings: WriteSettings) -> tuple[np.ndarray, tuple[int, int] | None]:
    """Write ``table`` as new chunks (no index entries); returns the rows' ids, and
    (chunk, rows) of the last chunk if it is under half full."""
    n = table.num_rows
    next_key = NEXT_CHUNK + table_part(definition)
    stored = view.get_raw(next_key)
    first_chunk = 0 if stored is None else int.from_bytes(stored, "big")
    chunk_rows = settings.chunk_rows
    if first_chunk + -(-n // chunk_rows) >= tail.TAIL_CHUNK:
        raise ConstraintError(f"table {definition.name!r} has used every chunk number")
    chunk = first_chunk
    for start in range(0, n, chunk_rows):
        part = table.slice(start, chunk_rows)
        view.put_raw(chunk_key(definition, chunk), _chunk_value(part, settings))
        view.put_raw(counts_key(definition, chunk), encode_counts(part.num_rows, 0))
        view.put_raw(stats_key(definition, chunk), encode_stats(part))
        chunk += 1
    view.put_raw(next_key, chunk.to_bytes(4, "big"))
    positions = np.arange(n, dtype=np.uint64)
    row_ids = ((np.uint64(first_chunk) + positions // np.uint64(chunk_rows))
               << np.uint64(32)) | (positions % np.uint64(chunk_rows))
    small = None
    if n % chunk_rows and n % chunk_rows < chunk_rows // 2:
        small = chunk - 1, n % chunk_rows
    return row_ids, small


def _note_small_chunk(view: KvTransactionView, definition: TableDef, chunk: int,
                      rows: int, settings: WriteSettings) -> None:
    """Remember a chunk written less than half full, in the list of its size tier
    (tier t: 16**t to 16**(t+1) - 1 rows); once :data:`SMALL_CHUNKS` of a tier are
    listed, merge them, which makes a chunk of the next tier. Like an LSM tree's
    tiers, a row is rewritten about once per tier, not once per merge, and row-by-row
    writes never leave a table in many tiny chunks."""
    tier = 0
    while rows >= SMALL_CHUNKS ** (tier + 1):
        tier += 1
    key = SMALL + table_part(definition) + bytes([tier])
    stored = view.get_raw(key)
    listed = [] if stored is None else np.frombuffer(stored, ">u4").tolist()
    listed.append(chunk)
    if len(listed) < SMALL_CHUNKS:
        view.put_raw(key, np.array(listed, ">u4").tobytes())
        return
    view.put_raw(key, None)  # before merging: the merge may list its own result
    compact(view, definition, settings, only=set(listed))


def _index_rows(view: KvTransactionView, definition: TableDef, table: pa.Table, keys: Keys,
                row_ids: np.ndarray, settings: WriteSettings) -> None:
    """Point the primary key and every secondary index at rows ``row_ids``."""
    if keys is not None:
        _put_index(view, definition, (keys[0], keys[1]),
                   row_ids.astype(">u8").view(np.uint8), settings.bulk_changes)
    for index in indexes_of(definition):
        index.insert(view, table, row_ids, settings.bulk_changes)


def _put_index_entries(view: KvTransactionView, entry_keys: Varlen, row_ids: np.ndarray,
                       bulk_changes: int) -> None:
    """Write primary key index entries: ``entry_keys`` (prefixed, sorted, distinct)
    -> ``row_ids``, as one sorted layer when there are many."""
    offsets, data = entry_keys
    n = offsets.size - 1
    values = row_ids.astype(">u8").view(np.uint8)
    if n < bulk_changes:
        _put_each(view, entry_keys, b"", values)
        return
    view.put_sorted_raw(Entries(np.full(n, PUT, np.uint8), offsets, data,
                                np.arange(n + 1, dtype=np.int64) * 8, values))


def _put_index(view: KvTransactionView, definition: TableDef, keys: Varlen,
               row_ids: np.ndarray, bulk_changes: int) -> None:
    offsets, data = keys
    n = offsets.size - 1
    prefix = index_prefix(definition)
    if n < bulk_changes:
        _put_each(view, keys, prefix, row_ids)
        return
    value_starts = np.arange(n, dtype=np.int64) * 8
    view.put_sorted_raw(entries_from_slices(
        np.full(n, PUT, np.uint8), (offsets[:-1], np.diff(offsets), data),
        (value_starts, np.full(n, 8, np.int64), row_ids), prefix))


def _put_each(view: KvTransactionView, keys: Varlen, prefix: bytes,
              row_ids: np.ndarray) -> None:
    """Index entries one put each (few of them): key ``prefix + keys[i]`` -> the
    ``i``-th 8 bytes of ``row_ids`` (big-endian row ids as bytes)."""
    offsets, data = keys
    for i in range(offsets.size - 1):
        view.put_raw(prefix + data[offsets[i] : offsets[i + 1]].tobytes(),
                     row_ids[8 * i : 8 * i + 8].tobytes())


def _ipc(rows: pa.Table) -> bytes:
    """A chunk's value: an Arrow IPC stream of one record batch, zero-padded to a
    multiple of 64 bytes (readers stop at the end-of-stream marker) so that chunks
    stored one after the other in a sorted run keep the alignment of the first."""
    sink = pa.BufferOutputStream()
    _write_ipc(rows, sink)
    stream_bytes: bytes = sink.getvalue().to_pybytes()
    return stream_bytes + bytes(-len(stream_bytes) % 64)


def _write_ipc(rows: pa.Table, sink: pa.NativeFile) -> None:
    with pa.ipc.new_stream(sink, rows.schema) as stream:
        for batch in _one_batch(rows).to_batches():
            stream.write_batch(batch)


def _one_batch(rows: pa.Table) -> pa.Table:
    """``rows`` with every column in one piece (a chunk is one record batch). Pieces
    of a dictionary column whose dictionaries together hold more values than its
    index type numbers cannot be: :class:`SchemaError` naming the column."""
    try:
        return rows.combine_chunks()
    except pa.ArrowInvalid:
        for field, column in zip(rows.schema, rows.columns, strict=True):
            if pa.types.is_dictionary(field.type):
                try:
                    column.unify_dictionaries().combine_chunks()
                except pa.ArrowInvalid:
                    raise SchemaError(
                        f"column {field.name!r}: the rows of one row group hold more "
                        f"distinct values than its index type {field.type.index_type} "
                        "can number; use a wider index type (int32)") from None
        raise


def _chunk_value(rows: pa.Table, settings: WriteSettings) -> bytes:
    """What a chunk's key holds: the chunk itself (:func:`_ipc`) or, in a bulk
    transaction and for a chunk of a few pages or more, the descriptor of the extent
    it was written to (the stream written straight into the page image)."""
    extents = settings.extents
    if extents is None:
        return _ipc(rows)
    rows = _one_batch(rows)
    sizer = pa.MockOutputStream()
    _write_ipc(rows, sizer)
    size = sizer.size()
    if size < extents.min_bytes:
        return _ipc(rows)

    def fill(out: np.ndarray) -> None:
        _write_ipc(rows, pa.FixedSizeBufferWriter(pa.py_buffer(out)))

    return extents.store(size, fill)


def drop_rows(view: KvTransactionView, definition: TableDef) -> int:
    """Delete every key of the table's rows, indexes and bookkeeping (when it is
    dropped), each key space with one sorted layer of delete markers; returns how
    many keys. Snapshots older than the drop keep reading them."""
    part = table_part(definition)
    dropped = 0
    for space in (INDEX, CHUNKS, NEXT_CHUNK, DELETED, COUNTS, SECONDARY, SMALL, tail.TAIL,
                  tail.TAIL_STATE, STATS):
        low = space + part
        key_offsets, key_data = view.range_raw(low, prefix_end(low)).keys
        count = key_offsets.size - 1
        if count:
            view.put_sorted_raw(Entries(np.full(count, DELETE, np.uint8), key_offsets,
                                        key_data, np.zeros(count + 1, np.int64),
                                        np.empty(0, np.uint8)))
            dropped += count
    return dropped


class BulkLoad:
    """Rows appended group by group inside one (bulk) transaction, as by
    :func:`insert` or :func:`upsert` of all of them at once, but streamed: each
    group is written as chunks when it comes, and the primary key index is written
    once at :meth:`finish`, after checking every key together (one sort for repeats
    among the rows, one vectorised lookup for keys the table has). Looking up each
    group's keys as it came would search every earlier group's index layer."""

    def __init__(self, view: KvTransactionView, definition: TableDef,
                 settings: WriteSettings, *, upsert: bool, new_table: bool = False) -> None:
        if upsert and definition.primary_key is None:
            raise SchemaError(f"table {definition.name!r} has no primary key to upsert by")
        self._view = view
        self._definition = definition
        self._settings = settings
        self._upsert = upsert
        self._new_table = new_table
        """The table was created in this transaction: no key can be present yet."""
        self._keys: list[Varlen] = []
        self._row_ids: list[np.ndarray] = []
        self._small: list[tuple[int, int]] = []
        self.rows = 0

    def add(self, rows: Any) -> int:
        """Write ``rows`` as chunks (their secondary index entries too); returns how
        many."""
        definition = self._definition
        table = conform(definition, rows)
        if not table.num_rows:
            return 0
        if definition.primary_key is not None:
            self._keys.append(encode_keys(table, definition.primary_key))
        row_ids, small = _store_chunks(self._view, definition, table, self._settings)
        if not self._upsert:  # an upsert's entries wait until replaced rows are known
            for index in indexes_of(definition):
                index.insert(self._view, table, row_ids, self._settings.bulk_changes)
        if definition.primary_key is not None:  # a keyless table keeps nothing per row
            self._row_ids.append(row_ids)
        if small is not None:
            self._small.append(small)
        self.rows += table.num_rows
        return int(table.num_rows)

    def finish(self) -> None:
        """Check the keys and write the primary key index (a repeated or present key
        raises :class:`ConstraintError` naming it; with ``upsert``, the last row of
        a key wins and replaces the table's row). Memory: the keys once, plus the
        index entries being built."""
        view, definition, settings = self._view, self._definition, self._settings
        due: set[int] = set()
        if self._keys:
            newest, entry_keys = _index_keys(self._keys, index_prefix(definition))
            self._keys.clear()
            row_ids = np.concatenate(self._row_ids)
            if newest.size < row_ids.size:
                dead = np.ones(row_ids.size, bool)
                dead[newest] = False
                if not self._upsert:
                    raise ConstraintError(
                        f"duplicate primary key {self._key_text(row_ids[dead][:1])} in the "
                        f"rows written to {definition.name!r}")
                self._mark_rows(row_ids[dead], due)
            if not self._new_table:
                found = view.get_many_raw(entry_keys, in_order=True)
                present = np.flatnonzero(found.states == 1)
                if present.size:
                    if not self._upsert:
                        raise ConstraintError(
                            f"duplicate primary key "
                            f"{self._key_text(row_ids[newest[present[:1]]])}: table "
                            f"{definition.name!r} already has it")
                    self._mark_rows(found.values()[1].view(">u8").astype(np.uint64), due)
                del found
            _put_index_entries(view, entry_keys, row_ids[newest], settings.bulk_changes)
            del entry_keys, row_ids
            if self._upsert:
                self._index_kept(newest)
        self._row_ids.clear()
        for chunk, rows in self._small:
            if chunk not in due:
                _note_small_chunk(view, definition, chunk, rows, settings)
        _compact_due(view, definition, due, settings)

    def _index_kept(self, newest: np.ndarray) -> None:
        """Secondary index entries of the rows an upsert keeps (``newest``: their
        positions among the rows added), written after the entries of the rows they
        replace were deleted: an entry's key holds the primary key, so the entries
        of a row and of its replacement can be the same key. Group by group, the
        rows read back from the chunks just written."""
        indexes = indexes_of(self._definition)
        if not indexes:
            return
        kept = np.zeros(sum(ids.size for ids in self._row_ids), bool)
        kept[newest] = True
        start = 0
        for ids in self._row_ids:
            wanted = ids[kept[start : start + ids.size]]
            start += ids.size
            if wanted.size:
                rows = fetch(self._view, self._definition, wanted, self._settings.cache)
                for index in indexes:
                    index.insert(self._view, rows, wanted, self._settings.bulk_changes)

    def _mark_rows(self, row_ids: np.ndarray, due: set[int]) -> None:
        """Mark the rows ``row_ids`` deleted, chunk by chunk."""
        chunks = row_ids >> np.uint64(32)
        for chunk in np.unique(chunks).tolist():
            rows = (row_ids[chunks == chunk] & np.uint64(0xFFFFFFFF)).tolist()
            _mark_deleted(self._view, self._definition, int(chunk), rows, due,
                          self._settings)

    def _key_text(self, row_id: np.ndarray) -> str:
        """The primary key of the row at ``row_id`` (one id), as ``column=value``."""
        assert self._definition.primary_key is not None
        row = fetch(self._view, self._definition, row_id, self._settings.cache)
        return _key_values(row, self._definition.primary_key, 0)


def _index_keys(parts: list[Varlen], prefix: bytes) -> tuple[np.ndarray, Varlen]:
    """For the encoded keys of rows added in ``parts``: the position of the last row
    of each distinct key, in key order, and those keys after ``prefix`` (the index
    entries' keys). Keys all of 8 bytes (a one-int64 primary key, the usual case)
    are compared as numbers with numpy; others with the byte-key kernels."""
    if all((np.diff(offsets) == 8).all() for offsets, _ in parts):
        numbers = np.concatenate([data[: offsets[-1]].view(">u8") for offsets, data in parts]
                                 ).astype(np.uint64)
        newest = _newest_of_each_number(numbers)
        if newest.size != numbers.size:
            numbers = numbers[newest]
        rows = np.empty((numbers.size, len(prefix) + 8), np.uint8)
        rows[:, : len(prefix)] = np.frombuffer(prefix, np.uint8)
        rows[:, len(prefix) :] = numbers.astype(">u8").view(np.uint8).reshape(-1, 8)
        offsets = np.arange(numbers.size + 1, dtype=np.int64) * (len(prefix) + 8)
        return newest, (offsets, rows.reshape(-1))
    offsets, data = _concatenated(parts)
    starts, lengths = offsets[:-1], np.diff(offsets)
    newest = sorted_distinct(starts, lengths, data)
    return newest, gather_slices(starts, lengths, data, newest, prefix)


def _newest_of_each_number(numbers: np.ndarray) -> np.ndarray:
    """Position of the last occurrence of each distinct value, in value order."""
    if (numbers[1:] > numbers[:-1]).all():
        return np.arange(numbers.size, dtype=np.int64)
    ordered, order = sort_words(numbers)  # stable: the last of equal values is newest
    last = np.ones(order.size, bool)
    last[:-1] = ordered[1:] != ordered[:-1]
    return order[last]


def _concatenated(parts: list[Varlen]) -> Varlen:
    """Several Arrow-style ``(offsets, data)`` arrays as one."""
    data = np.concatenate([p[1] for p in parts])
    bases = np.cumsum([0] + [int(p[0][-1]) for p in parts[:-1]])
    offsets = np.concatenate([parts[0][0][:1]] + [p[0][1:] + base
                                                  for p, base in zip(parts, bases,
                                                                     strict=True)])
    return offsets.astype(np.int64), data
