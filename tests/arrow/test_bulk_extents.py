"""The bulk path of imports: chunks written straight into free pages of the data file
(extents), synced before the commit, which logs only their descriptors. Checked
here: the WAL holds descriptors, not data; data reads back before and after a
checkpoint and across reopen with and without one (the replayed descriptors' pages
are claimed back, so later writes do not overwrite them); dropped extents are
reused; scans of extents are zero-copy and survive page reuse; damage is reported;
a SIGKILL before the commit leaves nothing and after it loses nothing."""

import gc
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import colibri_mm as cm
from colibri_mm.storage.extents import MAGIC

SMALL_PAGES = {"page_size": 4096, "row_group_rows": 4096}


def data(start: int, count: int) -> pa.Table:
    ids = np.arange(start, start + count)
    return pa.table({"id": ids, "x": ids / 3, "s": pa.array([f"row {i}" for i in ids])})


def wal_bytes(db: cm.Database) -> int:
    return int(db.stats()["wal_bytes_written"])


def chunk_values(db: cm.Database) -> list[bytes]:
    with db.snapshot() as snap:
        return [v for _, v in snap.kv.scan_raw(b"\x01\x03", b"\x01\x04")]


def sorted_table(db: cm.Database, name: str = "t") -> pa.Table:
    return db.table(name).to_arrow_table().sort_by("id")


def test_chunks_go_to_extents_and_the_wal_logs_descriptors(tmp_path: Path) -> None:
    with cm.connect(tmp_path / "db", create=True, **SMALL_PAGES) as db:
        before = wal_bytes(db)
        rows = data(0, 100_000)
        db.import_arrow("t", rows)  # keyless: the WAL holds no index entries either
        values = chunk_values(db)
        assert len(values) == 25 and all(v.startswith(MAGIC) for v in values)
        assert wal_bytes(db) - before < rows.nbytes / 20
        assert sorted_table(db).equals(rows)
        info = db.table("t").describe()
        assert info["row_groups"] == 25 and rows.nbytes < info["stored_bytes"] < \
            1.1 * rows.nbytes


def test_small_chunks_stay_inline(tmp_path: Path) -> None:
    with cm.connect(tmp_path / "db", create=True, row_group_rows=1000) as db:
        db.import_arrow("t", data(0, 5000))  # 1000-row chunks: far under 4 pages of 64 KiB
        assert not any(v.startswith(MAGIC) for v in chunk_values(db))


@pytest.mark.parametrize("checkpoint_on_close", [True, False])
def test_extents_survive_reopen_and_later_writes(tmp_path: Path,
                                                 checkpoint_on_close: bool) -> None:
    path = tmp_path / "db"
    with cm.connect(path, create=True, checkpoint_on_close=checkpoint_on_close,
                    **SMALL_PAGES) as db:
        db.import_arrow("t", data(0, 50_000), primary_key="id")
    # Without the checkpoint, the descriptors come back from the WAL, and their pages
    # must not be handed out again: import and checkpoint more, then read everything.
    with cm.connect(path, checkpoint_on_close=checkpoint_on_close, **SMALL_PAGES) as db:
        db.import_arrow("u", data(0, 50_000))
        db.kv.put_many([f"k{i}".encode() for i in range(20_000)], [b"v" * 100] * 20_000)
        db.checkpoint()
        db.import_arrow("t", data(50_000, 30_000), mode="append")
        assert sorted_table(db).equals(data(0, 80_000))
        assert sorted_table(db, "u").equals(data(0, 50_000))
    with cm.connect(path, **SMALL_PAGES) as db:
        assert sorted_table(db).equals(data(0, 80_000))
        assert sorted_table(db, "u").equals(data(0, 50_000))
        assert db.table("t").get(79_999)["s"] == "row 79999"
        assert db.table("t").verify() == []


def test_dropped_extents_are_reused(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with cm.connect(path, create=True, **SMALL_PAGES) as db:
        db.import_arrow("t", data(0, 200_000))
        db.checkpoint()
        db.drop_table("t")
        db.checkpoint()  # releases the extents
        db.checkpoint()  # (nothing reads the older checkpoint any more)
        allocator = db._checkpointer.allocator  # type: ignore[union-attr]
        end = allocator.end
        free = allocator.free_pages
        db.import_arrow("t", data(0, 200_000))
        assert allocator.end - end < (end - free) // 4  # mostly reused, not appended
        db.checkpoint()
        assert sorted_table(db).equals(data(0, 200_000))


def test_failed_import_leaves_nothing_and_its_pages_are_reused(tmp_path: Path) -> None:
    with cm.connect(tmp_path / "db", create=True, **SMALL_PAGES) as db:
        def broken():  # type: ignore[no-untyped-def]
            yield from data(0, 100_000).to_batches(max_chunksize=10_000)
            raise OSError("source gone")

        with pytest.raises(OSError, match="source gone"):
            db.import_arrow("t", broken())
        assert db.tables() == []
        db.checkpoint()
        db.checkpoint()
        allocator = db._checkpointer.allocator  # type: ignore[union-attr]
        end = allocator.end
        db.import_arrow("t", data(0, 100_000))
        assert allocator.end - end < 20
        assert sorted_table(db).equals(data(0, 100_000))


def test_scans_of_extents_are_zero_copy_and_survive_reuse(tmp_path: Path) -> None:
    with cm.connect(tmp_path / "db", create=True, **SMALL_PAGES) as db:
        db.import_arrow("t", data(0, 100_000))
        held = db.table("t").scan(columns=["x"]).to_arrow_table().column("x")
        pages = db._checkpointer.pages  # type: ignore[union-attr]
        start = pages.view(1, 1).ctypes.data - pages.page_size
        for chunk in held.chunks:
            assert start <= chunk.buffers()[1].address < start + pages.pages * pages.page_size
        expected = pa.chunked_array([c.to_numpy().copy() for c in held.chunks])
        db.drop_table("t")
        for round_ in range(3):  # the extents are released; imports would reuse them
            db.checkpoint()
            db.import_arrow(f"again{round_}", data(0, 100_000).set_column(
                1, "x", pa.array(np.full(100_000, -1.0))))
        gc.collect()
        assert held.equals(expected)
        assert pc.sum(held).as_py() == pytest.approx(sum(range(100_000)) / 3)


def test_a_damaged_extent_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with cm.connect(path, create=True, **SMALL_PAGES) as db:
        db.import_arrow("t", data(0, 20_000))
        first_page = int.from_bytes(chunk_values(db)[2][8:16], "little")
    with open(path / "data.pages", "r+b") as f:
        f.seek(first_page * 4096 + 100)
        byte = f.read(1)
        f.seek(first_page * 4096 + 100)
        f.write(bytes([byte[0] ^ 0xFF]))
    with cm.connect(path, **SMALL_PAGES) as db:
        with pytest.raises(cm.CorruptionError, match="imported extent"):
            db.verify()  # checks every extent, read before or not
        with pytest.raises(cm.CorruptionError, match="imported extent"):
            db.table("t").to_arrow_table()


def test_verify_counts_the_extents_it_checked(tmp_path: Path) -> None:
    with cm.connect(tmp_path / "db", create=True, **SMALL_PAGES) as db:
        db.import_arrow("t", data(0, 20_000))
        db.table("t").to_arrow_table()
        checked = db.verify()
        assert checked["extents"] == 5 and checked["extent_pages"] > 20


def test_import_inside_a_transaction_of_the_same_thread_is_refused(tmp_path: Path) -> None:
    with cm.connect(tmp_path / "db", create=True) as db, db.transaction(), \
            pytest.raises(cm.TransactionError, match="cannot import"):
        db.import_arrow("t", data(0, 10))


def test_a_failed_checkpoint_after_a_durable_import_does_not_fail_the_import(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory backpressure makes the committer checkpoint after its commit is
    durable; if that checkpoint fails, the import did not (found by review)."""
    from colibri_mm.checkpoint import Checkpointer

    with cm.connect(tmp_path / "db", create=True, max_dirty_bytes=4096,
                    **SMALL_PAGES) as db:
        def failing(*args: object, **kwargs: object) -> None:
            raise OSError(28, "No space left on device (simulated)")

        monkeypatch.setattr(Checkpointer, "write", failing)
        result = db.import_arrow("t", data(0, 20_000), primary_key="id")
        assert result.rows == 20_000 and db.table("t").count() == 20_000
        assert "No space" in db.last_checkpoint.get("error", "")
        monkeypatch.undo()


KILLED_IMPORT = """
import os, sys, numpy as np, pyarrow as pa, colibri_mm as cm
path, when = sys.argv[1], sys.argv[2]
db = cm.connect(path, page_size=4096, row_group_rows=4096, checkpoint_on_close=False)
def batches():
    for start in range(0, 200_000, 10_000):
        ids = np.arange(start, start + 10_000)
        if when == "before" and start == 150_000:
            print("half", flush=True)
            sys.stdin.read()  # killed here, mid-import
        yield pa.record_batch({"id": ids, "x": ids / 3})
db.import_arrow("t", batches(), primary_key="id")
print("committed", flush=True)
sys.stdin.read()  # killed here, after the commit returned
"""


@pytest.mark.parametrize("when", ["before", "after"])
def test_sigkill_before_commit_leaves_nothing_after_loses_nothing(tmp_path: Path,
                                                                  when: str) -> None:
    path = tmp_path / "db"
    with cm.connect(path, create=True, page_size=4096, row_group_rows=4096) as db:
        db.import_arrow("base", data(0, 50_000))
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(KILLED_IMPORT))
    child = subprocess.Popen([sys.executable, str(script), str(path), when],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    line = child.stdout.readline().strip()
    assert line == ("half" if when == "before" else "committed")
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    with cm.connect(path, page_size=4096, row_group_rows=4096) as db:
        if when == "before":
            assert db.tables() == ["base"]
        else:
            got = db.table("t").to_arrow_table().sort_by("id")
            assert got.column("id").to_numpy().tolist() == list(range(200_000))
            assert got.column("x").to_numpy() == pytest.approx(np.arange(200_000) / 3)
        db.import_arrow("more", data(0, 100_000))  # must not overwrite anything
        db.checkpoint()
        assert sorted_table(db, "base").equals(data(0, 50_000))
        assert sorted_table(db, "more").equals(data(0, 100_000))
        if when == "after":
            assert db.table("t").count() == 200_000


def test_a_result_held_across_a_reopen_without_checkpoint_keeps_its_pages(
        tmp_path: Path) -> None:
    """close() hands a held zero-copy result a reader slot. The table under it was
    dropped and the database closed without a checkpoint: the replay at the next
    open must not let an import overwrite the dropped extents (found by review)."""
    path = tmp_path / "db"
    options = {"checkpoint_on_close": False, "page_size": 4096, "row_group_rows": 2048}
    db = cm.connect(path, create=True, **options)
    db.kv.put(b"a", b"b")
    db.checkpoint()
    db.import_arrow("t", data(0, 20_000))
    held = db.table("t").to_arrow_table()
    expected = held.column("x").to_numpy().copy()
    db.drop_table("t")
    db.close()
    with cm.connect(path, **options) as db:
        for round_ in range(3):
            db.import_arrow(f"u{round_}", data(0, 20_000).set_column(
                1, "x", pa.array(np.full(20_000, -1.0))))
        assert np.array_equal(held.column("x").to_numpy(), expected)
        db.checkpoint()
        db.import_arrow("v", data(0, 20_000))
        assert np.array_equal(held.column("x").to_numpy(), expected)
