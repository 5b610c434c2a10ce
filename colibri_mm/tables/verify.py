"""Checking a table's indexes against its rows (for ``table.verify()`` and checks)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..kv.keys import prefix_end
from ..kv.views import KvView
from .catalog import TableDef
from .indexes import indexes_of
from .keys import encode_keys
from .rows import index_prefix, live_chunks


def verify_table(view: KvView, definition: TableDef) -> list[str]:
    """Every problem found: primary-key entries missing, extra or pointing at the
    wrong row, and the same for each secondary index. Empty when all is well."""
    parts = []
    ids = []
    for chunk, positions, rows in live_chunks(view, definition):
        parts.append(rows)
        ids.append((np.uint64(chunk) << np.uint64(32)) | positions.astype(np.uint64))
    rows = pa.concat_tables(parts) if parts else definition.schema.empty_table()
    row_ids = np.concatenate(ids) if ids else np.empty(0, np.uint64)
    problems = []
    if definition.primary_key is not None:
        prefix = index_prefix(definition)
        offsets, data = encode_keys(rows, definition.primary_key)
        expected = {prefix + data[offsets[i] : offsets[i + 1]].tobytes(): int(row_ids[i])
                    for i in range(rows.num_rows)}
        stored = {k: int.from_bytes(v, "big")
                  for k, v in view.scan_raw(prefix, prefix_end(prefix))}
        if expected != stored:
            wrong = sum(expected[k] != stored[k] for k in expected.keys() & stored.keys())
            problems.append(f"primary key index of table {definition.name!r}: "
                            f"{len(expected.keys() - stored.keys())} rows without an "
                            f"entry, {len(stored.keys() - expected.keys())} entries without "
                            f"a live row, {wrong} entries pointing at the wrong row")
    for index in indexes_of(definition):
        problems += index.verify(view, rows, row_ids)
    return problems
