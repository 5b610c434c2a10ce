"""What ``import_arrow`` accepts, turned into one stream of record batches.

Accepted: a ``pa.Table``, a ``pa.RecordBatch``, a ``pa.RecordBatchReader``, a pandas
or polars DataFrame, anything with ``__arrow_c_stream__`` (the Arrow PyCapsule
protocol), or an iterable of record batches (the first batch gives the schema).
Nothing is read ahead: a reader stays a reader, so an import streams. View types
(``string_view``, ``binary_view``, which polars exports) are read as their
offset-based forms, which tables store.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa

from ..errors import SchemaError


def as_reader(data: Any) -> tuple[pa.RecordBatchReader, int | None]:
    """``data`` as a record batch reader of storable types, and its number of rows
    when that is known without reading it (for progress)."""
    reader, rows = _as_reader(data)
    schema = storable_schema(reader.schema)
    if schema.equals(reader.schema, check_metadata=True):
        return reader, rows
    return pa.RecordBatchReader.from_batches(
        schema, (batch.cast(schema) for batch in reader)), rows


def storable_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with view types replaced by their offset-based forms."""
    fields = [field.with_type(_STORED_AS.get(field.type, field.type)) for field in schema]
    return pa.schema(fields, metadata=schema.metadata)


_STORED_AS = {pa.string_view(): pa.string(), pa.binary_view(): pa.binary()}


def _as_reader(data: Any) -> tuple[pa.RecordBatchReader, int | None]:
    if isinstance(data, pa.RecordBatchReader):
        return data, None
    if isinstance(data, pa.Table):
        return pa.RecordBatchReader.from_batches(data.schema, data.to_batches()), \
            int(data.num_rows)
    if isinstance(data, pa.RecordBatch):
        return pa.RecordBatchReader.from_batches(data.schema, [data]), int(data.num_rows)
    if _is_pandas(data):
        table = pa.Table.from_pandas(data)
        return _as_reader(table)
    if hasattr(data, "__arrow_c_stream__"):
        rows = len(data) if hasattr(data, "__len__") else None
        return pa.RecordBatchReader.from_stream(data), rows
    if isinstance(data, Iterable) and not isinstance(data, (str, bytes, dict)):
        return _reader_of_batches(iter(data)), None
    raise TypeError("data must be a pyarrow Table, RecordBatch or RecordBatchReader, a "
                    "pandas or polars DataFrame, an object with __arrow_c_stream__, or "
                    f"an iterable of record batches; got {type(data).__name__}")


def _is_pandas(data: Any) -> bool:
    return type(data).__module__.startswith("pandas") and hasattr(data, "to_records")


def _reader_of_batches(batches: Iterator[Any]) -> pa.RecordBatchReader:
    first = next(batches, None)
    if first is None:
        raise SchemaError("the iterable of record batches is empty, so it has no schema "
                          "(pass a pyarrow Table or RecordBatchReader with a schema)")
    first = _batch(first, 0)
    schema = first.schema

    def checked() -> Iterator[pa.RecordBatch]:
        for number, batch in enumerate(itertools.chain([first], batches)):
            batch = _batch(batch, number)
            if not batch.schema.equals(schema):
                raise SchemaError(f"record batch {number} has schema {batch.schema}, "
                                  f"which differs from the first batch's {schema}")
            yield batch

    return pa.RecordBatchReader.from_batches(schema, checked())


def _batch(item: Any, number: int) -> pa.RecordBatch:
    if isinstance(item, pa.RecordBatch):
        return item
    if isinstance(item, pa.Table):
        return item.combine_chunks().to_batches()[0] if item.num_rows else \
            pa.RecordBatch.from_pylist([], schema=item.schema)
    raise TypeError(f"item {number} of the iterable is a {type(item).__name__}, not a "
                    "pyarrow RecordBatch")
