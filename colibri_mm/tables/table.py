"""``db.table(name)`` and ``snap.table(name)``: a handle on a table, by name."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ReadOnlyError
from ..kv.views import KvSnapshotView
from . import registry, rows, writes
from .catalog import TableDef
from .scan import Scan

if TYPE_CHECKING:
    from ..database import Database
    from ..transaction import Snapshot


class Table:
    """A table of the database.

    From ``db.table(name)`` every read takes a snapshot of the newest commit, so a
    handle stays valid across schema changes (and raises
    :class:`~colibri_mm.errors.TableNotFoundError` once the table is dropped or
    renamed); from ``snap.table(name)`` every read sees that snapshot.
    """

    def __init__(self, db: Database, name: str, snapshot: Snapshot | None = None) -> None:
        self._db = db
        self._name = name
        self._snapshot = snapshot

    @contextlib.contextmanager
    def _reading(self) -> Iterator[tuple[KvSnapshotView, TableDef]]:
        """The key/value view to read through and the table's definition in it."""
        if self._snapshot is not None:
            view = self._snapshot.kv
            yield view, registry.lookup(view, self._name)
            return
        with self._db.snapshot() as snap:
            yield snap.kv, registry.lookup(snap.kv, self._name)

    def _definition(self) -> TableDef:
        with self._reading() as (_, definition):
            return definition

    @property
    def name(self) -> str:
        """The table's name."""
        return self._name

    @property
    def schema(self) -> pa.Schema:
        """The table's Arrow schema."""
        return self._definition().schema

    @property
    def primary_key(self) -> tuple[str, ...] | None:
        """The primary key columns (None: a keyless table)."""
        return self._definition().primary_key

    def get(self, key: Any) -> dict[str, Any] | None:
        """The row with primary key ``key`` (a value; a tuple for a key of several
        columns) as a dict, or None."""
        with self._reading() as (view, definition):
            return rows.get(view, definition, key)

    def get_many(self, keys: Sequence[Any]) -> pa.Table:
        """The rows with the given primary keys that exist, in the order of ``keys``."""
        with self._reading() as (view, definition):
            return rows.get_many(view, definition, keys)

    def scan(self, columns: Sequence[str] | None = None,
             filter: pc.Expression | None = None) -> Scan:
        """The rows of a snapshot taken now (``columns``: a projection; ``filter``: a
        ``pyarrow.compute`` expression such as ``pc.field("x") > 0.5``)."""
        with self._reading() as (view, definition):
            return Scan(rows.scan(view, definition, columns, filter))

    def count(self, filter: pc.Expression | None = None) -> int:
        """Number of rows (for which ``filter`` holds)."""
        with self._reading() as (view, definition):
            return sum(chunk.num_rows
                       for chunk in rows.filtered_chunks(view, definition, filter))

    def compact(self) -> dict[str, int]:
        """Rewrite the chunks holding deleted rows, or too few rows, into full chunks
        (one transaction; snapshots already open keep reading the old chunks)."""
        if self._snapshot is not None:
            raise ReadOnlyError(f"table {self._name!r} was opened from a snapshot, which "
                                "cannot compact it")
        options = self._db.options
        with self._db.transaction() as tx:
            return writes.compact(tx.kv, registry.lookup(tx.kv, self._name),
                                  options.row_group_rows, options.bulk_changes)

    def add_column(self, field: pa.Field, default: Any = None) -> None:
        """Append a column; rows written before read ``default`` in it (one transaction)."""
        if self._snapshot is not None:
            raise ReadOnlyError(f"table {self._name!r} was opened from a snapshot, which "
                                "cannot change the schema")
        with self._db.transaction() as tx:
            registry.add_column(tx.kv, self._name, field, default)

    def __repr__(self) -> str:
        return f"<colibri_mm.Table {self._name!r}>"
