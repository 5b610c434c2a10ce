"""Reader processes next to a writer process (what DuckDB cannot do): a writer
commits continuously, with checkpoints and WAL segment removal going on, while two
read-only processes check an invariant in every snapshot and see progress."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import colibri_mm as cm

ACCOUNTS = 20
TOTAL = 1000 * ACCOUNTS
TRANSACTIONS = 1500

WRITER = textwrap.dedent("""
    import pathlib, random, sys, time
    import colibri_mm as cm
    path, n, accounts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(5)
    deadline = time.monotonic() + 120
    while len(list(pathlib.Path(path).parent.glob("ready-*"))) < 2:  # both readers open
        assert time.monotonic() < deadline, "readers never got ready"
        time.sleep(0.01)
    with cm.connect(path, durability="normal", checkpoint_wal_bytes=128 << 10,
                    wal_segment_size=1 << 20) as db:
        for i in range(1, n + 1):
            a, b = rng.sample(range(accounts), 2)
            with db.transaction() as tx:
                x = int(tx.kv.get(f"acct{a:02}"))
                y = int(tx.kv.get(f"acct{b:02}"))
                amount = rng.randint(0, x)
                tx.kv.put(f"acct{a:02}", str(x - amount))
                tx.kv.put(f"acct{b:02}", str(y + amount))
                tx.kv.put("seq", str(i))
                tx.kv.put(f"filler{i % 300}", "x" * rng.randint(0, 400))
            if i % 300 == 0:
                db.checkpoint()  # (automatic ones happen too, at their own pace)
        print("done", flush=True)
""")

READER = textwrap.dedent("""
    import json, os, pathlib, sys, time
    import colibri_mm as cm
    path, n, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    seen, snapshots, last = set(), 0, 0
    deadline = time.monotonic() + 240
    with cm.connect(path, readonly=True) as db:
        with db.snapshot() as snap:  # a first look before the writer may start
            seen.add(int(snap.kv.get("seq") or 0))
        (pathlib.Path(path).parent / f"ready-{os.getpid()}").touch()
        while last < n and time.monotonic() < deadline:
            with db.snapshot() as snap:
                balances = [int(v) for k, v in snap.kv.scan(prefix="acct")]
                seq = int(snap.kv.get("seq") or 0)
                assert sum(balances) == total, (seq, sum(balances))
                assert len(balances) == 20, len(balances)
                assert seq >= last, (seq, last)
                assert dict(snap.kv.scan(prefix="acct")) == {
                    k: snap.kv.get(k) for k, _ in snap.kv.scan(prefix="acct")}
            last = seq
            seen.add(seq)
            snapshots += 1
        stats = db.stats()
    print(json.dumps({"last": last, "distinct": len(seen), "snapshots": snapshots,
                      "checkpoint_id": stats["checkpoint_id"]}))
""")


def test_two_reader_processes_follow_a_writer_process(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with cm.connect(path, create=True) as db:
        db.kv.put_many([f"acct{i:02}" for i in range(ACCOUNTS)], ["1000"] * ACCOUNTS)
        db.kv.put("seq", "0")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(TRANSACTIONS),
                               str(ACCOUNTS)], stdout=subprocess.PIPE, text=True)
    readers = [subprocess.Popen([sys.executable, "-c", READER, str(path), str(TRANSACTIONS),
                                 str(TOTAL)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for _ in range(2)]
    out, _ = writer.communicate(timeout=300)
    assert writer.returncode == 0 and out.strip() == "done"
    for reader in readers:
        out, err = reader.communicate(timeout=300)
        assert reader.returncode == 0, err
        report = json.loads(out)
        assert report["last"] == TRANSACTIONS, report  # caught up with the last commit
        assert report["distinct"] >= 2, report         # from before the writer started
        # Its last refresh came after the writer's checkpoint at 1200: it moved on.
        assert report["checkpoint_id"] > 2, report
    with cm.connect(path) as db:
        assert int(db.kv.get("seq")) == TRANSACTIONS


def run_writer_process(path: Path, body: str) -> None:
    """Run ``body`` in a new process with ``db`` open for writing on ``path``."""
    code = f"import colibri_mm as cm\nwith cm.connect({str(path)!r}, " \
        f"checkpoint_on_close=False) as db:\n" + textwrap.indent(textwrap.dedent(body), "    ")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def reader_of_new_database(path: Path) -> cm.Database:
    """A read-only open of a new database holding ``a = 1``."""
    with cm.connect(path, create=True) as db:
        db.kv.put("a", "1")
    return cm.connect(path, readonly=True)


def test_a_reader_process_sees_commits_made_after_it_opened(tmp_path: Path) -> None:
    path = tmp_path / "db"
    reader = reader_of_new_database(path)
    try:
        run_writer_process(path, """
            db.kv.put("b", "2")
            db.checkpoint()
            db.kv.put("c", "3")
        """)
        assert reader.kv.get("b") == b"2"
        assert dict(reader.kv.scan()) == {b"a": b"1", b"b": b"2", b"c": b"3"}
    finally:
        reader.close()


def test_a_reader_process_follows_a_bulk_commit(tmp_path: Path) -> None:
    """A put_many reaches the reader as one sorted layer; an older snapshot of the
    reader does not see it."""
    path = tmp_path / "db"
    reader = reader_of_new_database(path)
    try:
        old = reader.snapshot()
        run_writer_process(path, """
            keys = [b"k%06d" % i for i in range(3000)]
            db.kv.put_many(keys, keys)
            db.kv.put("a", "2")
        """)
        assert reader.kv.get(b"k000042") == b"k000042"
        assert reader.kv.get("a") == b"2"
        assert sum(1 for _ in reader.kv.scan()) == 3001
        assert old.kv.get(b"k000042") is None
        assert old.kv.get("a") == b"1"
        old.close()
    finally:
        reader.close()


def test_a_dead_reader_process_releases_its_slot(tmp_path: Path) -> None:
    from colibri_mm.storage.files import FileSystem
    from colibri_mm.txn.reader_table import ReaderTable

    path = tmp_path / "db"
    with cm.connect(path, create=True) as db:
        db.kv.put("a", "1")
    with cm.connect(path) as db:  # (closing the first one checkpointed)
        checkpoint_id = db.stats()["checkpoint_id"]
    code = textwrap.dedent(f"""
        import time
        import colibri_mm as cm
        db = cm.connect({str(path)!r}, readonly=True)
        print("open", flush=True)
        time.sleep(120)
    """)
    reader = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout is not None and reader.stdout.readline().strip() == "open"
        table = ReaderTable(FileSystem(), path)
        assert table.oldest_checkpoint() == checkpoint_id  # the live reader pins it
        reader.kill()
        reader.wait(timeout=60)
        assert table.oldest_checkpoint() is None  # its slot is reclaimed
        table.close()
    finally:
        reader.kill()
        reader.wait(timeout=60)
