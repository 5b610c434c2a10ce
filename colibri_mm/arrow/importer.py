"""``db.import_arrow``: a stream of record batches into a table, in one transaction.

Rows are gathered into groups of ``row_group_rows`` (so every stored chunk is full)
and written as they come, in a bulk transaction: each chunk goes straight into
free pages of the data file, and the transaction logs only where (see
``colibri_mm.storage.extents``). Memory holds one group plus, for a table with a
primary key, the encoded keys and row ids of the rows imported so far (their index
is written once, at the end: :class:`~colibri_mm.tables.writes.BulkLoad`).

The import is all or nothing: a schema mismatch, a duplicate primary key or an
unsupported type raises an error naming the column or key, the transaction is
aborted, and the database is as it was (the table is not created either).

Modes: ``create`` (a new table, schema from the data), ``append`` (insert into an
existing table), ``upsert`` (insert, replacing rows with the same primary key) and
``replace`` (the table's rows, schema and indexes are replaced; indexes on columns
the new schema still has are rebuilt).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..errors import SchemaError, TableNotFoundError
from ..kv.views import KvTransactionView
from ..tables import registry, writes
from ..tables.catalog import TableDef
from .progress import Progress
from .sources import as_reader

if TYPE_CHECKING:
    from ..database import Database

MODES = ("create", "append", "upsert", "replace")


@dataclass(frozen=True)
class ImportResult:
    """What an import wrote."""

    table: str
    rows: int
    bytes: int
    """Bytes of Arrow data read from the source."""
    seconds: float


def import_arrow(db: Database, name: str, data: Any, *,
                 primary_key: str | Sequence[str] | None = None, mode: str = "create",
                 progress: bool = False, total_rows: int | None = None) -> ImportResult:
    """Import ``data`` (see :mod:`.sources`) into table ``name`` (see the module
    docstring for the modes). ``progress`` draws a bar on stderr; ``total_rows``
    gives it a total when the source cannot say."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    reader, known_rows = as_reader(data)
    with Progress(f"import {name}", total_rows or known_rows, progress) as counter, \
            db.bulk_transaction() as (tx, settings):
        definition = _target(tx.kv, name, reader.schema, primary_key, mode)
        groups = _groups(reader, settings.chunk_rows, counter)
        first = next(groups, None)
        if first is not None and first.num_rows < settings.chunk_rows:
            # Less than a chunk in all: the usual write path (the tail may take it).
            write = writes.upsert if mode == "upsert" else writes.insert
            write(tx.kv, definition, first, settings)
        elif first is not None:
            load = writes.BulkLoad(tx.kv, definition, settings, upsert=mode == "upsert",
                                   new_table=mode in ("create", "replace"))
            load.add(first)
            for group in groups:
                load.add(group)
            load.finish()
    return ImportResult(name, counter.rows, counter.bytes, counter.seconds)


def _groups(reader: pa.RecordBatchReader, rows: int,
            counter: Progress) -> Iterator[pa.Table]:
    """The reader's rows in tables of ``rows`` rows (the last may have fewer), each
    a slice of the batches read (no copy), counted by ``counter`` as read."""
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    for batch in reader:
        counter.add(batch.num_rows, batch.nbytes)
        pending.append(batch)
        pending_rows += batch.num_rows
        while pending_rows >= rows:
            group = pa.Table.from_batches(pending, reader.schema)
            yield group.slice(0, rows)
            rest = group.slice(rows)
            pending = rest.to_batches()
            pending_rows = rest.num_rows
    if pending_rows:
        yield pa.Table.from_batches(pending, reader.schema)


def _target(view: KvTransactionView, name: str, schema: pa.Schema,
            primary_key: str | Sequence[str] | None, mode: str) -> TableDef:
    """The definition of the table rows go to, created (or replaced) first if the
    mode says so."""
    if mode == "create":
        return registry.create(view, name, schema, primary_key)
    try:
        existing = registry.lookup(view, name)
    except TableNotFoundError:
        if mode == "replace":
            return registry.create(view, name, schema, primary_key)
        raise TableNotFoundError(f"cannot {mode} into table {name!r}: there is no such "
                                 "table (use mode='create')") from None
    if mode == "replace":
        return _replace(view, existing, schema, primary_key)
    if primary_key is not None:
        wanted = (primary_key,) if isinstance(primary_key, str) else tuple(primary_key)
        if wanted != existing.primary_key:
            raise SchemaError(f"table {name!r} has primary key {existing.primary_key}, "
                              f"not {wanted}")
    return existing


def _replace(view: KvTransactionView, existing: TableDef, schema: pa.Schema,
             primary_key: str | Sequence[str] | None) -> TableDef:
    """Drop ``existing`` and create it again with ``schema`` (the old primary key if
    none is given and its columns remain), rebuilding the indexes that still apply."""
    name = existing.name
    if primary_key is None and existing.primary_key is not None and \
            all(c in schema.names for c in existing.primary_key):
        primary_key = existing.primary_key
    writes.drop_rows(view, registry.drop(view, name))
    definition = registry.create(view, name, schema, primary_key)
    for index in existing.indexes:
        if all(c in schema.names for c in index.columns):
            definition = registry.create_index(view, name, index.columns, index.kind)
    return definition
