"""``table.describe()``: what a table holds and how it is stored (schema, rows, row
groups, bytes, indexes), read from its bookkeeping keys without reading rows."""

from __future__ import annotations

from typing import Any

from ..kv.keys import prefix_end
from ..kv.views import KvView
from . import tail
from .catalog import TableDef, table_part
from .rows import CHUNKS, row_count


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
        "stored_bytes": int(chunks.value_lengths().sum() +
                            tail_values.value_lengths().sum()),
        "indexes": [{"columns": i.columns, "kind": i.kind} for i in definition.indexes],
    }
