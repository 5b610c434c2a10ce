"""Which Arrow schemas a table may have: names, column types and primary keys.

Every check raises :class:`~colibri_mm.errors.SchemaError` naming the table, the
column and what is wrong, so a bad ``create_table`` changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pyarrow as pa

from ..errors import SchemaError

_NAME = re.compile(r"[A-Za-z0-9_]{1,128}")
SUPPORTED_TYPES = ("int8..int64, uint8..uint64, float32, float64, bool, timestamp (any "
                   "unit, with or without time zone), date32, time64, decimal128, string, "
                   "large_string, binary, large_binary, fixed_size_binary, dictionary of "
                   "string")
"""What :func:`check_schema` accepts, as said in its errors."""


def check_table_name(name: object) -> str:
    """``name`` if it is 1 to 128 ASCII letters, digits and ``_``."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise SchemaError(f"table name {name!r} is invalid: use 1 to 128 characters, "
                          "ASCII letters, digits and '_'")
    return name


def is_supported(kind: pa.DataType) -> bool:
    """Whether a column of Arrow type ``kind`` can be stored."""
    t = pa.types
    if pa.types.is_dictionary(kind):
        return bool(t.is_integer(kind.index_type) and
                    (t.is_string(kind.value_type) or t.is_large_string(kind.value_type)))
    if t.is_time(kind):
        return bool(t.is_time64(kind))
    return bool(t.is_integer(kind) or t.is_float32(kind) or t.is_float64(kind) or
                t.is_boolean(kind) or t.is_timestamp(kind) or t.is_date32(kind) or
                t.is_decimal128(kind) or t.is_string(kind) or t.is_large_string(kind) or
                t.is_binary(kind) or t.is_large_binary(kind) or t.is_fixed_size_binary(kind))


def check_field(table: str, field: pa.Field) -> None:
    """Refuse a column whose name or type cannot be stored."""
    if not isinstance(field.name, str) or not field.name:
        raise SchemaError(f"table {table!r}: a column has an empty name")
    if not is_supported(field.type):
        raise SchemaError(f"table {table!r}: column {field.name!r} has type {field.type}, "
                          f"which colibri-mm does not store (supported: {SUPPORTED_TYPES})")


def check_schema(table: str, schema: object) -> pa.Schema:
    """``schema`` if it is a ``pyarrow.Schema`` of storable, uniquely named columns."""
    if not isinstance(schema, pa.Schema):
        raise SchemaError(f"table {table!r}: the schema must be a pyarrow.Schema, not "
                          f"{type(schema).__name__}")
    if len(schema) == 0:
        raise SchemaError(f"table {table!r}: the schema has no columns")
    seen: set[str] = set()
    for field in schema:
        check_field(table, field)
        if field.name in seen:
            raise SchemaError(f"table {table!r}: column {field.name!r} appears twice")
        seen.add(field.name)
    return schema


def check_primary_key(table: str, schema: pa.Schema,
                      primary_key: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """The primary key columns as a tuple (None: a keyless table), each an existing,
    distinct column of a type that can be a key (not floating point)."""
    if primary_key is None:
        return None
    columns = (primary_key,) if isinstance(primary_key, str) else tuple(primary_key)
    if not columns:
        raise SchemaError(f"table {table!r}: the primary key names no column "
                          "(use primary_key=None for a keyless table)")
    check_key_columns(table, schema, columns, "primary key")
    return columns


def check_key_columns(table: str, schema: pa.Schema, columns: tuple[str, ...],
                      what: str) -> None:
    """Refuse key (``what``: "primary key" or "index") columns that are missing,
    repeated, or of a type that cannot be part of a key (not floating point)."""
    if not columns:
        raise SchemaError(f"table {table!r}: the {what} names no column")
    for name in columns:
        if not isinstance(name, str) or name not in schema.names:
            raise SchemaError(f"table {table!r}: {what} column {name!r} is not in "
                              f"the schema ({', '.join(schema.names)})")
        kind = schema.field(name).type
        if pa.types.is_floating(kind) or pa.types.is_dictionary(kind):
            raise SchemaError(f"table {table!r}: {what} column {name!r} has type "
                              f"{kind}, which cannot be part of a key (floating point and "
                              "dictionary columns cannot)")
    if len(set(columns)) != len(columns):
        raise SchemaError(f"table {table!r}: the {what} repeats a column: {columns}")
