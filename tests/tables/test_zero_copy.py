"""Zero-copy scans: columns of chunks in the mapped data file come out as Arrow
buffers over the map itself, and stay valid and unchanged for as long as the reader
holds them, across later commits, compaction and checkpoints that reuse pages."""

import gc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import colibri_mm as cm

ROWS = 50_000


def mapped_range(db: cm.Database) -> tuple[int, int]:
    """[start, end) addresses of the data file's current map."""
    pages = db._checkpointer.pages  # type: ignore[union-attr]
    first = pages.view(1, 1)
    start = first.ctypes.data - pages.page_size
    return start, start + pages.pages * pages.page_size


def load(path: Path) -> cm.Database:
    db = cm.connect(path, create=True, row_group_rows=8192, max_dirty_bytes=1 << 20)
    db.create_table("t", pa.schema([("id", pa.int64()), ("x", pa.float64()),
                                    ("s", pa.string())]), primary_key="id")
    with db.transaction() as tx:
        tx.insert("t", {"id": np.arange(ROWS), "x": np.arange(ROWS) / 7,
                        "s": [f"s{i % 97}" for i in range(ROWS)]})
    db.checkpoint()
    return db


def test_a_scan_of_checkpointed_chunks_does_not_copy(tmp_path: Path) -> None:
    with load(tmp_path / "db") as db:
        x = db.table("t").scan(columns=["x"]).to_arrow_table().column("x")
        start, end = mapped_range(db)
        for chunk in x.chunks:
            address = chunk.buffers()[1].address
            assert start <= address < end
            assert address % 8 == 0
        # Chunks are padded to 64 bytes and table definitions to 8, so the chunks of
        # a run stay aligned one after the other.
        with db.snapshot() as snap:
            chunk_values = [v for k, v in snap.kv.scan_raw(b"\x01\x03", b"\x01\x04")]
            definition = snap.kv.get_raw(b"\x01\x01Tt")
        assert chunk_values and all(len(v) % 64 == 0 for v in chunk_values)
        assert definition is not None and len(definition) % 8 == 0
        assert db.table("t").count(pc.field("x") > 7000) == sum(
            1 for i in range(ROWS) if i / 7 > 7000)
        assert pc.sum(x).as_py() == sum(range(ROWS)) / 7


def test_user_values_of_any_length_do_not_misalign_chunks(tmp_path: Path) -> None:
    """db.kv values come first in a run; the run's gap before its values puts the
    engine's values (and so the chunks) at a 64-byte boundary whatever they add up to."""
    with cm.connect(tmp_path / "db", create=True) as db:
        db.kv.put(b"odd", b"x" * 13)
        db.create_table("t", pa.schema([("x", pa.float64())]), primary_key=None)
        with db.transaction() as tx:
            tx.insert("t", {"x": np.arange(10_000, dtype=np.float64)})
        db.checkpoint()
        start, end = mapped_range(db)
        x = db.table("t").scan().to_arrow_table().column("x")
        assert all(start <= c.buffers()[1].address < end and c.buffers()[1].address % 8 == 0
                   for c in x.chunks)


def test_held_columns_survive_commits_compaction_and_checkpoints(tmp_path: Path) -> None:
    with load(tmp_path / "db") as db:
        held = db.table("t").scan().to_arrow_table()
        expected = pa.table({name: held.column(name).combine_chunks()  # private copies
                             for name in held.column_names})
        pinned = db.stats()["live_snapshots"]
        assert pinned >= 1  # the scan's snapshot is closed; its lease holds the runs
        hammer(db)
        assert db.table("t").count() != ROWS  # the table did change
        assert held.equals(expected)
        del held
        gc.collect()
        assert db.stats()["live_snapshots"] < pinned


def hammer(db: cm.Database) -> None:
    rng = np.random.default_rng(3)
    for round_ in range(6):
        with db.transaction() as tx:
            tx.delete_where("t", (pc.field("id") >= round_ * 7000) &
                            (pc.field("id") < round_ * 7000 + 3000))
            tx.upsert("t", {"id": rng.integers(0, ROWS, 3000),
                            "x": rng.random(3000), "s": ["new"] * 3000})
        db.table("t").compact()
        db.checkpoint()  # old runs' pages are freed, then reused by the next one


def test_without_the_lease_the_pages_would_be_reused(tmp_path: Path,
                                                     monkeypatch: object) -> None:
    """The control: the same held columns without a lease see their pages rewritten
    (so the test above would fail if scans did not hold one)."""
    from colibri_mm.kv.views import KvSnapshotView

    with load(tmp_path / "db") as db:
        monkeypatch.setattr(KvSnapshotView, "lease",  # type: ignore[attr-defined]
                            property(lambda self: lambda: None, lambda self, value: None),
                            raising=False)
        held = db.table("t").scan().to_arrow_table()
        expected = pa.table({name: held.column(name).combine_chunks()
                             for name in held.column_names})
        hammer(db)
        assert not held.equals(expected)


def test_held_columns_survive_close_and_a_new_writer(tmp_path: Path) -> None:
    """A scan result outliving its database keeps a reader slot announcing its
    checkpoint, so the next writer does not reuse its pages; freeing it frees the
    slot."""
    path = tmp_path / "db"
    db = load(path)
    held = db.table("t").scan().to_arrow_table()
    expected = pa.table({name: held.column(name).combine_chunks()
                         for name in held.column_names})
    db.close()
    with cm.connect(path, max_dirty_bytes=1 << 20) as again:
        assert again._readers.oldest_checkpoint() is not None  # type: ignore[union-attr]
        hammer(again)
        assert held.equals(expected)
        del held
        gc.collect()
        assert again._readers.oldest_checkpoint() is None  # type: ignore[union-attr]
