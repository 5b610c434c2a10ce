"""``table.describe()``: what a table holds and how it is stored (schema, rows, row
groups, bytes, indexes), read from its bookkeeping keys without reading rows."""

from __future__ import annotations

from typing import Any

from ..kv.keys import prefix_end
from ..kv.ranges import RangeEntries
from ..kv.views import KvView
from . import tail
from .catalog import TableDef, table_part
from .rows import CHUNKS, descriptors_among, row_count


def _chunk_bytes(view: KvView, chunks: RangeEntries) -> int:
    """Bytes of the chunks, those written as extents counted at their length."""
    lengths = chunks.value_lengths()
    for i, value in descriptors_among(chunks):
        assert view.extents is not None
        lengths[i] = view.extents.length(value)
    return int(lengths.sum())


def describe(view: KvView, definition: TableDef) -> dict[str, Any]:
    """The description of one table (see :meth:`~colibri_mm.tables.table.Table.describe`)."""
    part = table_part(definition)
    chunks = view.range_raw(CHUNKS + part, prefix_end(CHUNKS + part))
    tail_values = view.range_raw(tail.TAIL + part, prefix_end(tail.TAIL + part))
    return {
        "name": definition.name,
        "schema": definition.schema,
        "primary_key": definition.primary_key,
        "rows": row_count(view, definition),
        "row_groups": len(chunks),
        "tail_rows": len(tail_values),
        "stored_bytes": _chunk_bytes(view, chunks) + int(tail_values.value_lengths().sum()),
        "indexes": [{"columns": i.columns, "kind": i.kind} for i in definition.indexes],
    }
