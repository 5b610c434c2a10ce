"""Turning what users pass as rows into an Arrow table of exactly a table's schema."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from ..errors import SchemaError
from .catalog import TableDef


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
        rows = columns_table(definition, rows)
    elif isinstance(rows, list):
        extra = sorted({k for row in rows for k in row} - set(schema.names))
        if extra:
            raise SchemaError(f"table {name!r} has no column {extra[0]!r}")
        rows = columns_table(definition, {field.name: [row.get(field.name) for row in rows]
                                          for field in schema})
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


def columns_table(definition: TableDef, columns: dict[str, Any]) -> pa.Table:
    """A table of the given columns of Python values, each converted to its column's
    type (a value that does not fit raises :class:`SchemaError` naming the column)."""
    arrays = {}
    for column, values in columns.items():
        if column not in definition.schema.names:
            raise SchemaError(f"table {definition.name!r} has no column {column!r}")
        arrays[column] = column_array(definition, definition.schema.field(column), values)
    return pa.table(arrays)


def column_array(definition: TableDef, field: pa.Field, values: Any) -> pa.Array:
    """Python ``values`` as an array of ``field``'s type (a value that does not fit
    raises :class:`SchemaError` naming the column)."""
    try:
        return pa.array(values, type=field.type)
    except (pa.ArrowException, TypeError, ValueError, OverflowError) as e:
        raise SchemaError(f"table {definition.name!r}: column {field.name!r} does not fit "
                          f"type {field.type} ({e})") from None


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


