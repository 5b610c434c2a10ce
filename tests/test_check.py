"""The full check (``colibri_mm.check`` and ``coldb check``): a sound database
passes with a report per table; damage to an index entry, an extent or the free
list is found and named, and ``coldb check`` exits 1."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from coldb_run import coldb, error, ok

import colibri_mm as cm
from colibri_mm.check import check_database
from colibri_mm.storage.allocator import FreeExtent
from colibri_mm.storage.catalog import read_catalog
from colibri_mm.storage.extents import Descriptor
from colibri_mm.storage.files import FileSystem
from colibri_mm.storage.pagefile import PageFile
from colibri_mm.tables import registry
from colibri_mm.tables.rows import chunk_key, index_prefix

PAGE = 4096
ROWS = 30_000


@pytest.fixture
def db_dir(tmp_path: Path) -> Path:
    """A checkpointed database: an imported table (chunks as extents) with a
    secondary index, deletes and tail rows, and a key/value pair."""
    path = tmp_path / "db"
    with cm.connect(path, create=True, page_size=PAGE, row_group_rows=8192) as db:
        ids = np.arange(ROWS, dtype=np.int64)
        db.import_arrow("t", pa.table({"id": ids, "x": ids * 2.0,
                                       "s": [f"s{i % 13}" for i in ids]}), primary_key="id")
        db.table("t").create_index("s")
        with db.transaction() as tx:
            tx.delete("t", 5)
            tx.insert("t", {"id": [ROWS], "x": [0.0], "s": ["new"]})
        db.kv.put(b"k", b"v")
    return path


def test_a_sound_database_passes_with_a_report_per_table(db_dir: Path) -> None:
    with cm.connect(db_dir, readonly=True) as db:
        report = check_database(db)
    assert report.ok, report.all_problems
    (table,) = report.tables
    assert (table.name, table.rows, table.problems) == ("t", ROWS, [])
    assert table.chunks >= 4 and table.extents >= 3
    assert table.index_entries == 2 * ROWS  # the primary key and the index on s
    assert report.extents_in_use > table.extents and report.data_pages > 0
    checked = json.loads(ok(coldb("check", "--json", data_dir=db_dir)))
    assert checked["problems"] == [] and checked["tables"][0]["rows"] == ROWS
    text = ok(coldb("check", data_dir=db_dir))
    assert f"table t: {ROWS} rows" in text and "no problems" in text


def test_finds_a_damaged_index_entry(db_dir: Path) -> None:
    with cm.connect(db_dir) as db, db.transaction() as tx:
        definition = registry.lookup(tx.kv, "t")
        entry = index_prefix(definition) + (7 + (1 << 63)).to_bytes(8, "big")
        tx.kv.put_raw(entry, (3 << 32 | 99).to_bytes(8, "big"))  # at the wrong row
    with cm.connect(db_dir, readonly=True) as db:
        report = check_database(db)
    (problem,) = report.all_problems
    assert problem.startswith("table 't': primary key index") and "1 entries pointing" \
        in problem
    message = error(coldb("check", data_dir=db_dir), 1)
    assert "check failed" in message and "primary key index" in message


def test_finds_a_damaged_extent(db_dir: Path) -> None:
    with cm.connect(db_dir, readonly=True) as db, db.snapshot() as snap:
        definition = registry.lookup(snap.kv, "t")
        descriptor = Descriptor.decode(snap.kv.get_raw(chunk_key(definition, 1)), PAGE)
    with (db_dir / "data.pages").open("r+b") as file:
        offset = (descriptor.first + 1) * PAGE + 100
        file.seek(offset)
        byte = file.read(1)
        file.seek(offset)
        file.write(bytes([byte[0] ^ 0x01]))
    with cm.connect(db_dir, readonly=True) as db:
        report = check_database(db)
    assert any("imported extent fails its checksum" in p and "data.pages" in p
               for p in report.all_problems)
    message = error(coldb("check", data_dir=db_dir), 1)
    assert "checksum" in message and f"data page {descriptor.first + 1}" in message


def test_finds_a_free_list_overlapping_a_run(db_dir: Path) -> None:
    with cm.connect(db_dir, readonly=True) as db:
        meta = db._checkpointer.meta
    pages = PageFile(FileSystem(), db_dir, PAGE, writable=True)
    try:
        catalog = read_catalog(pages, meta.catalog_root)
        run = catalog.runs[0]
        damaged = replace(catalog, free=(*catalog.free, FreeExtent(run.first, 1, 1)))
        image = damaged.encode()
        assert len(image) <= PAGE  # still the catalog's one page
        pages.write(meta.catalog_root, image)
    finally:
        pages.close()
    with cm.connect(db_dir, readonly=True) as db:
        report = check_database(db)
    assert report.problems == [f"free extent (pages {run.first}..{run.first}) overlaps "
                               f"sorted run 0 (pages {run.first}..{run.first + run.count - 1})"]
    assert "overlaps" in error(coldb("check", "--json", data_dir=db_dir), 1)
