"""Catalog operations: look up, list, create, drop and rename tables, add columns.

They work on a transaction's or a snapshot's key/value view (its ``get_raw``,
``scan_raw`` and ``put_raw``), so a catalog change is part of that transaction and a
lookup sees the catalog of that snapshot.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import pyarrow as pa

from ..errors import SchemaError, TableExistsError, TableNotFoundError
from ..kv.keys import prefix_end
from .catalog import (
    INDEX_KINDS,
    NEXT_TABLE_ID,
    TABLE_PREFIX,
    TableDef,
    decode_next_id,
    encode_next_id,
    table_key,
)
from .types import check_field, check_key_columns, check_primary_key, check_schema, check_table_name


class CatalogReader(Protocol):
    """A view the catalog can be read through."""

    def get_raw(self, key: bytes) -> bytes | None:
        """Value of a key, system keys included."""

    def scan_raw(self, low: bytes | None, high: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        """Pairs in ``[low, high)``, system keys included."""


class CatalogWriter(CatalogReader, Protocol):
    """A transaction's view, which the catalog can also be changed through."""

    def put_raw(self, key: bytes, value: bytes | None) -> None:
        """Set (None: delete) a key, system keys included."""


def lookup(view: CatalogReader, name: str) -> TableDef:
    """The definition of table ``name``; :class:`TableNotFoundError` if there is none."""
    value = view.get_raw(table_key(check_table_name(name)))
    if value is None:
        raise TableNotFoundError(f"no table named {name!r}")
    return _decoded(value)


@functools.lru_cache(maxsize=256)
def _decoded(value: bytes) -> TableDef:
    """A definition read from its stored bytes (decoded once per distinct value: every
    read of a table looks its definition up)."""
    return TableDef.decode(value)


def names(view: CatalogReader) -> list[str]:
    """Names of every table, sorted."""
    start = len(TABLE_PREFIX)
    return [key[start:].decode("ascii")
            for key, _ in view.scan_raw(TABLE_PREFIX, prefix_end(TABLE_PREFIX))]


def create(view: CatalogWriter, name: str, schema: object,
           primary_key: str | Sequence[str] | None) -> TableDef:
    """Record a new table (every argument checked first)."""
    check_table_name(name)
    checked = check_schema(name, schema)
    key = check_primary_key(name, checked, primary_key)
    if view.get_raw(table_key(name)) is not None:
        raise TableExistsError(f"a table named {name!r} already exists")
    table_id = decode_next_id(view.get_raw(NEXT_TABLE_ID))
    definition = TableDef(table_id, name, checked, key)
    view.put_raw(NEXT_TABLE_ID, encode_next_id(table_id + 1))
    view.put_raw(table_key(name), definition.encode())
    return definition


def drop(view: CatalogWriter, name: str) -> TableDef:
    """Remove table ``name`` from the catalog."""
    definition = lookup(view, name)
    view.put_raw(table_key(name), None)
    return definition


def rename(view: CatalogWriter, old: str, new: str) -> TableDef:
    """Give table ``old`` the name ``new`` (its id, and so its data, stay)."""
    definition = lookup(view, old)
    check_table_name(new)
    if new == old:
        return definition
    if view.get_raw(table_key(new)) is not None:
        raise TableExistsError(f"cannot rename {old!r}: a table named {new!r} already exists")
    renamed = definition.renamed(new)
    view.put_raw(table_key(old), None)
    view.put_raw(table_key(new), renamed.encode())
    return renamed


def create_index(view: CatalogWriter, name: str, columns: str | Sequence[str],
                 kind: str) -> TableDef:
    """Record a secondary index of ``kind`` ("ordered" or "hash") on ``columns``."""
    definition = lookup(view, name)
    if kind not in INDEX_KINDS:
        raise SchemaError(f"table {name!r}: index kind must be one of "
                          f"{', '.join(INDEX_KINDS)}, got {kind!r}")
    wanted = (columns,) if isinstance(columns, str) else tuple(columns)
    check_key_columns(name, definition.schema, wanted, "index")
    if any(i.columns == wanted and i.kind == kind for i in definition.indexes):
        raise SchemaError(f"table {name!r} already has a {kind} index on "
                          f"{', '.join(wanted)}")
    changed = definition.with_index(wanted, kind)
    view.put_raw(table_key(name), changed.encode())
    return changed


def add_column(view: CatalogWriter, name: str, field: object, default: Any) -> TableDef:
    """Append column ``field`` to table ``name``; rows written before read ``default``."""
    definition = lookup(view, name)
    if not isinstance(field, pa.Field):
        raise SchemaError(f"table {name!r}: add_column takes a pyarrow.Field, not "
                          f"{type(field).__name__}")
    check_field(name, field)
    if field.name in definition.schema.names:
        raise SchemaError(f"table {name!r} already has a column {field.name!r}")
    if default is None and not field.nullable:
        raise SchemaError(f"table {name!r}: column {field.name!r} is not nullable, so it "
                          "needs a default for the rows already in the table")
    try:
        value = pa.scalar(default, type=field.type)
    except (pa.ArrowException, TypeError, ValueError, OverflowError) as e:
        raise SchemaError(f"table {name!r}: default {default!r} does not fit column "
                          f"{field.name!r} of type {field.type} ({e})") from None
    changed = definition.with_column(field, value)
    view.put_raw(table_key(name), changed.encode())
    return changed
