"""Power-loss campaign over the fault-injecting file system: at a random file
operation every later operation fails (the machine is gone), then everything not
synced is dropped or torn the way a power cut can; the reopened database must hold
every acknowledged transaction whole and no partial one.

``COLIBRI_POWER_CUTS`` sets the number of cuts (CI: 60; a release check: 2000).
"""

import contextlib
import os
import random
import shutil
from pathlib import Path

import colibri_mm as cm
from colibri_mm.storage.faults import FaultyFileSystem

CUTS = int(os.environ.get("COLIBRI_POWER_CUTS", "60"))


def workload(db: cm.Database, rng: random.Random, acked: list[int]) -> None:
    """Numbered transactions, each writing three keys and a counter; checkpoints mixed in."""
    start = acked[-1] if acked else 0
    for i in range(start + 1, start + 200):
        with db.transaction() as tx:
            tx.kv.put(f"t{i}:a", f"{i}")
            tx.kv.put(f"t{i}:b", f"{i}" * (1 + rng.randrange(300)))
            tx.kv.put("counter", f"{i}")
            if i > 5:
                tx.kv.delete(f"t{i - 5}:a")
        acked.append(i)
        if rng.random() < 0.05:
            db.checkpoint()
        if rng.random() < 0.02:
            db.kv.put_many([b"bulk%d" % j for j in range(500)], [b"%d" % i] * 500)


def check(db: cm.Database, acked: list[int]) -> None:
    last = acked[-1] if acked else 0
    counter = db.kv.get("counter")
    seen = int(counter) if counter is not None else 0
    assert seen >= last, f"acknowledged transaction {last} lost (counter {seen})"
    assert seen <= last + 1, f"counter {seen} beyond the last acknowledged {last} + 1"
    for i in range(1, seen + 1):
        b = db.kv.get(f"t{i}:b")
        assert b is not None and b.startswith(f"{i}".encode()), f"t{i}:b missing or wrong"
        assert (db.kv.get(f"t{i}:a") is None) == (i <= seen - 5), f"t{i}:a wrong"
    assert db.kv.get(f"t{seen + 1}:b") is None, "a transaction after the counter is visible"


def test_power_cuts_lose_nothing_acknowledged(tmp_path: Path) -> None:
    rng = random.Random(20261204)
    directory = tmp_path / "db"
    acked: list[int] = []
    outcomes = {"cut during work": 0, "recovered": 0}
    for _ in range(CUTS):
        fs = FaultyFileSystem()
        db = None
        try:
            db = cm.connect(directory, create=True, file_system=fs,
                            checkpoint_wal_bytes=64 << 10, checkpoint_on_close=False)
            fs.fail_at(rng.randrange(1, 400), persistent=True)
            workload(db, rng, acked)
        except (OSError, cm.Error):
            outcomes["cut during work"] += 1
        finally:
            if db is not None:
                with contextlib.suppress(OSError, cm.Error):
                    db.close()
        fs.power_loss(rng, model=rng.choice(["prefix", "independent"]))
        if not (directory / "colibri.meta").exists():
            assert not acked
            shutil.rmtree(directory, ignore_errors=True)
            continue
        with cm.connect(directory, checkpoint_on_close=False) as reopened:
            check(reopened, acked)
            counter = reopened.kv.get("counter")
            # The transaction in flight at the cut may have survived: count it as done.
            acked = list(range(1, (int(counter) if counter else 0) + 1))
            bulk = {v for _, v in reopened.kv.scan(prefix="bulk")}
            assert len(bulk) <= 1, "a bulk transaction is partly visible"
            outcomes["recovered"] += 1
    assert outcomes["cut during work"] > CUTS // 2, outcomes
