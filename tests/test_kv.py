"""The key/value API of an open database: reads, writes, transactions, snapshots,
limits and errors, and what survives a reopen."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import colibri_mm as cm
from colibri_mm import database


@pytest.fixture
def db(tmp_path: Path):  # type: ignore[no-untyped-def]
    database = cm.connect(tmp_path / "db", create=True)
    yield database
    database.close()


def test_put_get_delete_scan(db: cm.Database) -> None:
    db.kv.put(b"b", b"2")
    db.kv.put("a", "1")
    db.kv.put(bytearray(b"c"), memoryview(b"3"))
    assert db.kv.get("a") == b"1"
    assert db.kv.get(b"missing") is None
    assert list(db.kv.scan()) == [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")]
    assert db.kv.delete("b") is True
    assert db.kv.delete("b") is False
    assert db.kv.get("b") is None
    assert list(db.kv.scan()) == [(b"a", b"1"), (b"c", b"3")]


def test_scan_bounds_and_prefix(db: cm.Database) -> None:
    keys = [b"", b"a", b"ab", b"abc", b"abd", b"b", b"\xfe", b"\xfe\xff\x01"]
    db.kv.put_many(keys, [k + b"!" for k in keys])
    assert [k for k, _ in db.kv.scan()] == sorted(keys)
    assert [k for k, _ in db.kv.scan(start=b"ab", end=b"b")] == [b"ab", b"abc", b"abd"]
    assert [k for k, _ in db.kv.scan(prefix=b"ab")] == [b"ab", b"abc", b"abd"]
    assert [k for k, _ in db.kv.scan(prefix=b"ab", start=b"abc")] == [b"abc", b"abd"]
    assert [k for k, _ in db.kv.scan(prefix=b"\xfe")] == [b"\xfe", b"\xfe\xff\x01"]
    assert list(db.kv.scan(prefix=b"\xff")) == []
    assert list(db.kv.scan(start=b"\xfe\xff")) == [(b"\xfe\xff\x01", b"\xfe\xff\x01!")]
    assert [k for k, _ in db.kv.scan(prefix="b")] == [b"b"]


def test_every_byte_string_is_a_key_and_system_keys_stay_hidden(db: cm.Database) -> None:
    db.create_table("t", pa.schema([("x", pa.int64())]))  # the catalog's keys now exist
    odd = [b"", b"\x00", b"\x01", b"\x01\x01T", b"\xff", b"\xff\xff"]
    db.kv.put_many(odd, odd)
    assert list(db.kv.scan()) == [(k, k) for k in sorted(odd)]
    assert db.kv.get(b"\x01\x01Tt") is None
    big = [b"\xff%05d" % i for i in range(2000)]
    db.kv.put_many(pa.array(big, pa.binary()), pa.array(big, pa.binary()))
    assert db.kv.get(big[7]) == big[7]
    assert list(db.kv.scan(prefix=b"\x01")) == [(b"\x01", b"\x01"), (b"\x01\x01T", b"\x01\x01T")]
    assert sum(1 for _ in db.kv.scan()) == len(odd) + len(big)
    assert db.tables() == ["t"]

def test_put_many_accepts_arrow_arrays_and_validates_first(db: cm.Database) -> None:
    keys = pa.array([b"k1", b"k2"], pa.binary())
    values = pa.array(["v1", "v2"], pa.string())
    assert db.kv.put_many(keys, values) == 2
    assert db.kv.get("k2") == b"v2"
    with pytest.raises(TypeError, match=r"values\[1\] must be bytes or str, not int"):
        db.kv.put_many([b"x", b"y"], [b"ok", 5])
    assert db.kv.get("x") is None
    with pytest.raises(ValueError, match="2 keys and 1 values"):
        db.kv.put_many([b"x", b"y"], [b"ok"])
    with pytest.raises(ValueError, match="nulls"):
        db.kv.put_many(pa.array([b"x", None]), pa.array([b"1", b"2"]))


def test_transaction_sees_own_writes_and_commits_atomically(db: cm.Database) -> None:
    db.kv.put("x", "0")
    with db.transaction() as tx:
        tx.kv.put("x", "1")
        tx.kv.put("y", "2")
        assert tx.kv.get("x") == b"1"
        assert db.kv.get("x") == b"0"  # not visible before commit
        assert tx.kv.delete("x") is True
        assert list(tx.kv.scan()) == [(b"y", b"2")]
    assert db.kv.get("x") is None
    assert db.kv.get("y") == b"2"


def test_exception_aborts_and_leaves_no_trace(db: cm.Database, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), db.transaction() as tx:
        tx.kv.put("ghost", "boo")
        raise RuntimeError("abort")
    assert db.kv.get("ghost") is None
    tx2 = db.transaction()
    tx2.kv.put("ghost2", "boo")
    tx2.abort()
    with pytest.raises(cm.TransactionError):
        tx2.kv.put("again", "x")
    db.close()
    with cm.connect(tmp_path / "db") as again:
        assert again.kv.get("ghost") is None
        assert again.kv.get("ghost2") is None


def test_snapshot_is_stable_while_the_writer_moves_on(db: cm.Database) -> None:
    db.kv.put_many([b"a", b"b"], [b"1", b"1"])
    with db.snapshot() as snap:
        db.kv.put("a", "2")
        db.kv.delete("b")
        db.kv.put("c", "3")
        for _ in range(10):
            db.kv.put("a", "more")
        assert snap.kv.get("a") == b"1"
        assert snap.kv.get("b") == b"1"
        assert snap.kv.get("c") is None
        assert list(snap.kv.scan()) == [(b"a", b"1"), (b"b", b"1")]
    assert list(db.kv.scan()) == [(b"a", b"more"), (b"c", b"3")]
    with pytest.raises(cm.ClosedError):
        snap.kv.get("a")


def test_a_snapshot_is_newest_until_a_commit_is_published(db: cm.Database) -> None:
    db.kv.put("a", "1")
    snap = db.snapshot()
    assert snap.is_newest()
    with db.transaction():
        pass  # nothing written: nothing published
    assert snap.kv.get("a") == b"1" and snap.is_newest()
    db.kv.put("a", "2")
    assert not snap.is_newest()
    newer = db.snapshot()
    assert newer.is_newest() and newer.kv.get("a") == b"2"
    newer.close()
    assert not newer.is_newest()
    snap.close()


def test_writing_in_a_snapshot_is_impossible(db: cm.Database) -> None:
    with db.snapshot() as snap:
        assert not hasattr(snap.kv, "put")


def test_limits_and_types(tmp_path: Path) -> None:
    with cm.connect(tmp_path / "db", create=True, max_key_size=8, max_value_size=16) as db:
        with pytest.raises(cm.LimitError, match="key of 9 bytes exceeds the limit of 8"):
            db.kv.put(b"123456789", b"v")
        with pytest.raises(cm.LimitError, match="value of 17 bytes"):
            db.kv.put(b"k", b"x" * 17)
        with pytest.raises(TypeError, match="key must be bytes or str, not int"):
            db.kv.put(1, b"v")
        with pytest.raises(TypeError, match="value must be bytes or str, not NoneType"):
            db.kv.put(b"k", None)
        assert list(db.kv.scan()) == []
    with cm.connect(tmp_path / "db") as db:
        assert db.kv.get(b"1234567") is None  # limits are per open, not stored


def test_defaults_allow_large_values(db: cm.Database) -> None:
    big = bytes(range(256)) * (16 * 4096)  # 16 MiB
    db.kv.put(b"k" * 1024, big)
    assert db.kv.get(b"k" * 1024) == big
    with pytest.raises(cm.LimitError):
        db.kv.put(b"k" * 1025, b"")


def test_closed_database(tmp_path: Path) -> None:
    db = cm.connect(tmp_path / "db", create=True)
    db.close()
    db.close()
    for call in (lambda: db.kv.get("a"), lambda: db.kv.put("a", "b"), db.snapshot,
                 db.transaction):
        with pytest.raises(cm.ClosedError, match="closed"):
            call()


def test_reopen_keeps_every_commit(tmp_path: Path) -> None:
    with cm.connect(tmp_path / "db", create=True, durability="normal") as db:
        for i in range(500):
            db.kv.put(f"k{i:04}", f"v{i}")
        db.kv.delete("k0007")
    with cm.connect(tmp_path / "db") as db:
        assert db.kv.get("k0499") == b"v499"
        assert db.kv.get("k0007") is None
        assert len(list(db.kv.scan())) == 499
        stats = db.stats()
        # close() checkpointed: nothing is left to replay.
        assert stats["checkpoint_id"] == 2
        assert stats["recovery_transactions"] == 0
        assert stats["recovery_dropped"] == []


def test_open_errors(tmp_path: Path) -> None:
    with pytest.raises(cm.Error, match="not a colibri-mm database"):
        cm.connect(tmp_path / "nothing")
    with pytest.raises(cm.ConfigError, match="durability must be one of"):
        cm.connect(tmp_path / "db", create=True, durability="sometimes")
    with pytest.raises(cm.ConfigError, match="page_size must be a power of two"):
        cm.connect(tmp_path / "db", create=True, page_size=5000)
    with pytest.raises(cm.ReadOnlyError, match="read-only"):
        cm.connect(tmp_path / "db", create=True, readonly=True)


def test_readonly_open_reads_and_refuses_writes(tmp_path: Path) -> None:
    with cm.connect(tmp_path / "db", create=True) as db:
        db.kv.put("a", "1")
    with cm.connect(tmp_path / "db", readonly=True) as ro:
        assert ro.kv.get("a") == b"1"
        with pytest.raises(cm.ReadOnlyError):
            ro.kv.put("b", "2")


def test_second_writer_in_the_same_process_is_refused(db: cm.Database) -> None:
    with pytest.raises(cm.LockedError, match="already open for writing in this process"):
        cm.connect(db.path)


def test_second_writer_process_gets_the_holders_pid(db: cm.Database) -> None:
    code = textwrap.dedent(f"""
        import colibri_mm as cm
        try:
            cm.connect({str(db.path)!r})
        except cm.LockedError as e:
            print("LOCKED", e)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert f"locked for writing by process {os.getpid()}" in out.stdout, out.stderr


def test_stats(db: cm.Database) -> None:
    db.kv.put("a", "1")
    stats = db.stats()
    assert stats["published_csn"] == 1
    assert stats["wal_commits"] == 1
    assert stats["wal_syncs"] >= 1
    assert stats["durability"] == "full"


def test_commits_after_a_transaction_cut_before_its_commit_survive(tmp_path: Path) -> None:
    """A crash between a transaction's change records and its COMMIT leaves orphan
    records; what is committed after the restart must not be mistaken for them."""
    from colibri_mm.kv.records import KV_CHANGES, encode_changes
    from colibri_mm.wal.writer import WalBatch

    with cm.connect(tmp_path / "db", create=True) as db:
        db.kv.put("before", "1")
        writer = db._writer
        assert writer is not None
        orphan = encode_changes([b"orphan"], [b"x"])
        ticket = writer.submit(WalBatch(np.frombuffer(orphan, np.uint8),
                                        np.array([0, len(orphan)], np.int64),
                                        np.array([KV_CHANGES], np.uint8), 1))
        writer.wait(ticket)
    with cm.connect(tmp_path / "db") as db:
        db.kv.put("after", "2")
        db.kv.put("after2", "3")
    with cm.connect(tmp_path / "db") as db:
        assert dict(db.kv.scan()) == {b"before": b"1", b"after": b"2", b"after2": b"3"}


def test_nested_use_inside_a_transaction_is_refused_not_a_deadlock(db: cm.Database) -> None:
    with db.transaction() as tx:
        tx.kv.put("a", "1")
        for call in (lambda: db.kv.put("b", "2"), db.transaction, db.checkpoint, db.close):
            with pytest.raises(cm.TransactionError, match="this thread has a write"):
                call()
        assert db.kv.get("a") is None  # reads are fine: the commit is not visible yet
    assert db.kv.get("a") == b"1"


def test_full_durability_commits_into_zero_filled_space(tmp_path: Path) -> None:
    db = cm.connect(tmp_path / "db", create=True, checkpoint_on_close=False)
    db.kv.put("a", "1")
    db.kv.put("b", "2")
    (segment,) = (tmp_path / "db" / "wal").glob("*.wal")
    written = 512 + db.stats()["wal_bytes_written"]
    assert segment.stat().st_size > written  # zero-filled ahead of the commits
    with cm.connect(tmp_path / "db", readonly=True) as reader:
        assert dict(reader.kv.scan()) == {b"a": b"1", b"b": b"2"}  # zeros: unwritten
        assert reader.stats()["recovery_dropped"] == []
    db.close()
    assert segment.stat().st_size == written  # a clean close leaves no zeros


def test_memory_of_changes_since_checkpoint_is_bounded(tmp_path: Path) -> None:
    bound = 64 << 10
    with cm.connect(tmp_path / "db", create=True, durability="off",
                    max_dirty_bytes=bound) as db:
        for i in range(2000):
            db.kv.put(f"k{i:05}", bytes(1024))
            assert db._clock.state.active.value_bytes < 2 * bound + 2048
        assert db.stats()["checkpoint_id"] > 10
        assert db.kv.get("k00000") == bytes(1024)
        assert sum(1 for _ in db.kv.scan()) == 2000


def test_sweeping_delete_markers_never_brings_older_values_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A delete marker in memory may be forgotten only if no older layer or run has
    the key (found by review: a sweep resurrected checkpointed and bulk values)."""
    monkeypatch.setattr(database, "SWEEP_EVERY", 3)
    path = tmp_path / "db"
    with cm.connect(path, create=True, bulk_changes=8) as db:
        db.kv.put(b"k", b"v1")
        db.checkpoint()                                  # k is in a sorted run
        db.kv.put_many([b"b%03d" % i for i in range(20)], [b"v"] * 20)  # a bulk layer
        db.kv.delete(b"k")
        db.kv.delete(b"b007")
        db.kv.put(b"gone", b"1")
        db.kv.delete(b"gone")                            # in no older source
        for i in range(7):                               # two sweeps happen
            db.kv.put(b"x%d" % i, b"1")
        assert db.kv.get(b"k") is None
        assert db.kv.get(b"b007") is None
        assert db.kv.get(b"gone") is None
        db.checkpoint()
    with cm.connect(path) as db:
        assert db.kv.get(b"k") is None
        assert db.kv.get(b"b007") is None
        assert sum(1 for _ in db.kv.scan(prefix=b"b")) == 19


def test_many_keys_agree_with_point_reads(tmp_path: Path) -> None:
    """The vectorised lookup (states and values, used for primary keys) against
    get_raw, and ranges read as arrays against scan_raw, over every kind of source:
    a run, a bulk layer, the memtable and the transaction; and in a snapshot older
    than some of them."""
    from colibri_mm.kernels.search import pack_varlen
    from colibri_mm.kv.keys import USER_PREFIX

    rng = np.random.default_rng(5)
    keys = [b"k%04d" % i for i in range(400)]
    with cm.connect(tmp_path / "db", create=True, bulk_changes=50) as db:
        db.kv.put_many(keys[:100], [b"run"] * 100)
        db.checkpoint()
        db.kv.put_many(keys[80:200], [b"bulk"] * 120)
        old = db.snapshot()
        for k in rng.choice(keys[:250], 40, replace=False):
            db.kv.delete(k)
        db.kv.put(keys[300], b"memtable")
        with db.transaction() as tx:
            tx.kv.put_many(keys[150:220], [b"own"] * 70)
            tx.kv.delete(keys[0])
            tx.kv.put(keys[399], b"own")
            probes = [USER_PREFIX + k for k in keys] + [b"\x01nope"]
            bounds = [(None, None), (USER_PREFIX + b"k0050", USER_PREFIX + b"k0250"),
                      (USER_PREFIX + b"k0399", None), (b"\x01", None),
                      (USER_PREFIX + b"k01", USER_PREFIX + b"k01")]
            check_many(tx.kv, probes, pack_varlen(probes))
            check_ranges(tx.kv, bounds)
        check_many(old.kv, probes, pack_varlen(probes))
        check_ranges(old.kv, bounds)
        with db.snapshot() as snap:
            check_ranges(snap.kv, bounds)
        old.close()


def check_ranges(view: Any, bounds: list[tuple[bytes | None, bytes | None]]) -> None:
    """A range read as arrays (keys, values copied, values in place) against the
    pair-by-pair scan of the same view."""
    for low, high in bounds:
        expected = list(view.scan_raw(low, high))
        found = view.range_raw(low, high)
        key_offsets, key_data = found.keys
        value_offsets, value_data = found.values()
        assert len(found) == len(expected), (low, high)
        for i, (key, value) in enumerate(expected):
            assert key_data[key_offsets[i] : key_offsets[i + 1]].tobytes() == key
            assert value_data[value_offsets[i] : value_offsets[i + 1]].tobytes() == value
            assert bytes(found.value(i)) == value


def check_many(view: Any, probes: list[bytes], packed: Any) -> None:
    found = view.get_many_raw(packed)
    offsets, data = found.values()
    for i, probe in enumerate(probes):
        value = view.get_raw(probe)
        assert (found.states[i] == 1) == (value is not None), probe
        assert data[offsets[i] : offsets[i + 1]].tobytes() == (value or b""), probe
