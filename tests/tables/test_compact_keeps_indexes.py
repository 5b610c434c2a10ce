"""Regression: ``table.compact()`` with nothing to rewrite must leave the secondary
indexes alone. Found by the table crash campaign (``tests/tables/test_table_crash.py``):
``writes.compact`` deletes the index entries of every candidate chunk before it
decides there is nothing to do (one chunk under half full, no deleted rows) and
returned early, so the transaction committed the deletions without the rewrite."""

from pathlib import Path

import pyarrow as pa

import colibri_mm as cm


def test_compact_with_nothing_to_rewrite_keeps_index_entries(tmp_path: Path) -> None:
    schema = pa.schema([("id", pa.int64()), ("grp", pa.int64())])
    with cm.connect(tmp_path / "db", create=True, row_group_rows=1024) as db:
        db.create_table("t", schema, primary_key="id")
        table = db.table("t")
        table.create_index("grp")
        with db.transaction() as tx:  # one chunk, under half full
            tx.insert("t", {"id": list(range(100)), "grp": [i % 5 for i in range(100)]})
        assert table.compact()["chunks_rewritten"] == 0
        assert table.verify() == []
        assert len(table.find({"grp": 3})) == 20
