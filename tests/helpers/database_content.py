"""Everything a database holds, as JSON-ready data: the expected content of the format
fixtures (``tests/fixtures/make_format_0_9.py`` writes it, ``tests/test_migrate.py``
compares with it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import colibri_mm


def content(directory: Path) -> dict[str, Any]:
    """Every user key and value (hex) and every table's primary key and rows, read
    from a read-only open."""
    with colibri_mm.connect(directory, readonly=True) as db, db.snapshot() as snap:
        keys = {key.hex(): value.hex() for key, value in snap.kv.scan()}
        tables = {}
        for name in snap.tables():
            table = snap.table(name)
            tables[name] = {"primary_key": table.primary_key and list(table.primary_key),
                            "rows": table.to_arrow_table().to_pylist()}
    return {"keys": keys, "tables": tables}
