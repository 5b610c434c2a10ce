"""Snapshot isolation of tables: a writer thread moves money between accounts (two
row updates per transaction, now and then a compaction) while reader threads check
in every snapshot that the total is unchanged and that no account appears twice."""

import random
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

import colibri_mm as cm

ACCOUNTS = 30
TOTAL = 100 * ACCOUNTS
TRANSFERS = 400
READERS = 4


def test_every_snapshot_of_a_table_is_consistent(tmp_path: Path) -> None:
    schema = pa.schema([("id", pa.int32()), ("balance", pa.int64())])
    with cm.connect(tmp_path / "db", create=True, durability="off", row_group_rows=8) as db:
        db.create_table("accounts", schema, primary_key="id")
        db.table("accounts").create_index("balance")
        with db.transaction() as tx:
            tx.insert("accounts", {"id": list(range(ACCOUNTS)), "balance": [100] * ACCOUNTS})
        done = threading.Event()
        problems: list[str] = []
        seen_progress = [0] * READERS

        def writer() -> None:
            rng = random.Random(3)
            try:
                for i in range(TRANSFERS):
                    a, b = rng.sample(range(ACCOUNTS), 2)
                    with db.transaction() as tx:
                        # (this thread's earlier transfers are published: reading
                        # the newest commit is reading its own state)
                        row_a = db.table("accounts").get(a)
                        row_b = db.table("accounts").get(b)
                        assert row_a is not None and row_b is not None
                        amount = rng.randint(0, row_a["balance"])
                        tx.update("accounts", a, {"balance": row_a["balance"] - amount})
                        tx.update("accounts", b, {"balance": row_b["balance"] + amount})
                    if i % 97 == 0:
                        db.table("accounts").compact()
            finally:
                done.set()

        def reader(slot: int) -> None:
            while not done.is_set() or seen_progress[slot] == 0:
                with db.snapshot() as snap:
                    table = snap.table("accounts")
                    rows = table.scan().to_arrow_table()
                    ids = rows.column("id").to_pylist()
                    total = pc.sum(rows.column("balance")).as_py()
                    rich = table.count(pc.field("balance") > 100)
                if len(ids) != ACCOUNTS or len(set(ids)) != ACCOUNTS:
                    problems.append(f"snapshot holds accounts {sorted(ids)}")
                if total != TOTAL:
                    problems.append(f"snapshot total {total} != {TOTAL}")
                if rich > ACCOUNTS:
                    problems.append(f"{rich} rich accounts")
                seen_progress[slot] += 1

        threads = [threading.Thread(target=reader, args=(i,)) for i in range(READERS)]
        for thread in threads:
            thread.start()
        writer()
        for thread in threads:
            thread.join(120)
        assert problems == []
        assert all(count > 0 for count in seen_progress)
        assert db.table("accounts").verify() == []
        assert pc.sum(db.table("accounts").scan().to_arrow_table().column("balance")).as_py() \
            == TOTAL
