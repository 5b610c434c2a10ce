"""``db.table(name)``: a handle on a table, by name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

from . import registry
from .catalog import TableDef

if TYPE_CHECKING:
    from ..database import Database


class Table:
    """A table of the database. Its definition is read from the newest commit each
    time, so a handle stays valid across schema changes; it raises
    :class:`~colibri_mm.errors.TableNotFoundError` once the table is dropped or renamed.
    """

    def __init__(self, db: Database, name: str) -> None:
        self._db = db
        self._name = name

    def _definition(self) -> TableDef:
        with self._db.snapshot() as snap:
            return registry.lookup(snap.kv, self._name)

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

    def add_column(self, field: pa.Field, default: Any = None) -> None:
        """Append a column; rows written before read ``default`` in it (one transaction)."""
        with self._db.transaction() as tx:
            registry.add_column(tx.kv, self._name, field, default)

    def __repr__(self) -> str:
        return f"<colibri_mm.Table {self._name!r}>"
