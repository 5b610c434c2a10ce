"""The table catalog: table definitions stored as system keys of the store.

A table's definition (:class:`TableDef`) is the value of the system key
``0x01 0x01 'T' + name``; the next table id is the value of ``0x01 0x01 'N'``. Keeping
the catalog in the transactional key/value store gives catalog changes everything
data has: they commit atomically with other writes, survive crashes through the
WAL and checkpoints, and every snapshot sees the catalog as of its commit. Value
layout: ``docs/FORMAT.md`` section 8.
"""

from __future__ import annotations

import functools
import json
import struct
from dataclasses import dataclass, replace

import pyarrow as pa

from ..errors import CorruptionError
from ..kv.keys import SYSTEM_PREFIX
from .row_format import RowLayout, row_layout

CATALOG_PREFIX = SYSTEM_PREFIX + b"\x01"
TABLE_PREFIX = CATALOG_PREFIX + b"T"
NEXT_TABLE_ID = CATALOG_PREFIX + b"N"
DEFINITION_FORMAT = 1
_LENGTH = struct.Struct("<I")


def table_key(name: str) -> bytes:
    """The system key holding table ``name``'s definition."""
    return TABLE_PREFIX + name.encode("ascii")


def table_part(definition: TableDef) -> bytes:
    """The table id as it appears in the keys of the table's rows and indexes."""
    return definition.table_id.to_bytes(4, "big")


INDEX_KINDS = ("ordered", "hash")


@dataclass(frozen=True)
class IndexDef:
    """A secondary index of a table: its id within the table, columns and kind."""

    index_id: int
    columns: tuple[str, ...]
    kind: str


@dataclass(frozen=True)
class TableDef:
    """What the catalog records of one table."""

    table_id: int
    name: str
    schema: pa.Schema
    primary_key: tuple[str, ...] | None
    defaults: pa.RecordBatch | None = None
    """One row: the value of each column added after creation, for older rows."""
    indexes: tuple[IndexDef, ...] = ()

    @functools.cached_property
    def int64_key(self) -> bool:
        """Whether the primary key is one int64 column (point reads encode it directly)."""
        key = self.primary_key
        return key is not None and len(key) == 1 and self.schema.field(key[0]).type == pa.int64()

    @functools.cached_property
    def positions(self) -> dict[str, int]:
        """Each column's position in the schema, by name."""
        return {name: i for i, name in enumerate(self.schema.names)}

    @functools.cached_property
    def row_layout(self) -> RowLayout:
        """The stored form of the table's tail rows (:mod:`.row_format`)."""
        return row_layout(self.schema)

    def encode(self) -> bytes:
        """The catalog value (see the module docstring)."""
        header = json.dumps({"format": DEFINITION_FORMAT, "id": self.table_id,
                             "name": self.name,
                             "primary_key": list(self.primary_key)
                             if self.primary_key is not None else None,
                             "indexes": [{"id": i.index_id, "columns": list(i.columns),
                                          "kind": i.kind} for i in self.indexes]}).encode()
        schema = self.schema.serialize().to_pybytes()
        defaults = b""
        if self.defaults is not None:
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, self.defaults.schema) as stream:
                stream.write_batch(self.defaults)
            defaults = sink.getvalue().to_pybytes()
        # JSON may end in spaces: they make the value a multiple of 8 bytes long, so
        # values stored after it in a sorted run (a table's chunks) stay aligned.
        header += b" " * (-(8 + len(header) + len(schema) + len(defaults)) % 8)
        return b"".join([_LENGTH.pack(len(header)), header, _LENGTH.pack(len(schema)),
                         schema, defaults])

    @staticmethod
    def decode(data: bytes) -> TableDef:
        """Read a catalog value; damage raises :class:`CorruptionError`."""
        try:
            (header_length,) = _LENGTH.unpack_from(data, 0)
            header = json.loads(data[4 : 4 + header_length])
            at = 4 + header_length
            (schema_length,) = _LENGTH.unpack_from(data, at)
            at += 4
            schema = pa.ipc.read_schema(pa.py_buffer(data[at : at + schema_length]))
            at += schema_length
            defaults = None
            if at < len(data):
                defaults = pa.ipc.open_stream(pa.py_buffer(data[at:])).read_next_batch()
            if header["format"] != DEFINITION_FORMAT:
                raise ValueError(f"definition format {header['format']}")
            key = header["primary_key"]
            indexes = tuple(IndexDef(int(i["id"]), tuple(i["columns"]), str(i["kind"]))
                            for i in header.get("indexes", []))
            return TableDef(int(header["id"]), str(header["name"]), schema,
                            tuple(key) if key is not None else None, defaults, indexes)
        except (ValueError, KeyError, TypeError, struct.error, pa.ArrowException) as e:
            raise CorruptionError(f"a table definition in the catalog is damaged ({e})"
                                  ) from None

    def renamed(self, name: str) -> TableDef:
        """The same table under another name."""
        return replace(self, name=name)

    def with_index(self, columns: tuple[str, ...], kind: str) -> TableDef:
        """The table with one more index (the next index id)."""
        next_id = max((i.index_id for i in self.indexes), default=0) + 1
        return replace(self, indexes=(*self.indexes, IndexDef(next_id, columns, kind)))

    def with_column(self, field: pa.Field, default: pa.Scalar) -> TableDef:
        """The table with ``field`` appended, older rows reading ``default``."""
        columns = [] if self.defaults is None else list(self.defaults.columns)
        fields = [] if self.defaults is None else list(self.defaults.schema)
        defaults = pa.RecordBatch.from_arrays([*columns, pa.array([default.as_py()],
                                                                  field.type)],
                                              schema=pa.schema([*fields, field]))
        return replace(self, schema=self.schema.append(field), defaults=defaults)


def encode_next_id(table_id: int) -> bytes:
    """The value of :data:`NEXT_TABLE_ID`."""
    return table_id.to_bytes(8, "little")


def decode_next_id(value: bytes | None) -> int:
    """The next table id (1 when no table was ever created)."""
    return 1 if value is None else int.from_bytes(value, "little")
