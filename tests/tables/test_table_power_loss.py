"""Power-loss campaign over tables: the table workload of ``perf/table_workload.py``
(row transactions, compaction, index creation, add_column, renames, drops,
checkpoints) on the fault-injecting file system; at a random file operation every
later one fails (the machine is gone), then unsynced writes and directory entries are
dropped or torn the way a power cut can. The reopened database must be exactly as
after every acknowledged step, or the one in flight, with indexes that agree.

``COLIBRI_TABLE_POWER_CUTS`` sets the number of cuts (CI: 20; a release check: 400).
"""

import contextlib
import os
import random
import shutil
from pathlib import Path

import pytest
from perf_modules import perf_module

import colibri_mm as cm
from colibri_mm.storage.faults import FaultyFileSystem

CUTS = int(os.environ.get("COLIBRI_TABLE_POWER_CUTS", "20"))
STEPS_PER_LIFE = 120
"""Steps a life tries (the cut almost always comes first)."""
LAST_OPERATION = 500
"""The cut lands at a file operation from 1 to this."""

workload = perf_module("table_workload")
CampaignError = perf_module("crash_campaign").CampaignError
OPTIONS = {"row_group_rows": 64, "bulk_changes": 256, "checkpoint_wal_bytes": 64 << 10,
           "checkpoint_on_close": False}


def live_until_the_cut(directory: Path, work: object, acked: int, rng: random.Random,
                       durability: str) -> tuple[FaultyFileSystem, int, bool]:
    """Commit steps after ``acked`` until the cut; returns the file system, the last
    acknowledged step and whether the cut came during the work."""
    fs = FaultyFileSystem()
    db = None
    try:
        db = cm.connect(directory, create=True, file_system=fs, durability=durability,
                        **OPTIONS)
        fs.fail_at(rng.randrange(1, LAST_OPERATION), persistent=True)
        for i in range(acked + 1, acked + STEPS_PER_LIFE):
            workload.commit_step(db, work.step(i))  # type: ignore[attr-defined]
            acked = i
            if work.wants_checkpoint(i):  # type: ignore[attr-defined]
                db.checkpoint()
    except (OSError, cm.Error):
        return fs, acked, True
    finally:
        if db is not None:
            with contextlib.suppress(OSError, cm.Error):
                db.close()
    return fs, acked, False


def campaign(directory: Path, cuts: int, seed: int, durability: str) -> dict[str, int]:
    """Cut power ``cuts`` times; check each reopen; returns what happened."""
    rng = random.Random(seed)
    work = workload.Workload(seed)
    tracker = workload.Tracker(work)
    acked = 0
    outcomes = {"cut during work": 0, "recovered": 0, "steps": 0}
    for _ in range(cuts):
        fs, acked, cut = live_until_the_cut(directory, work, acked, rng, durability)
        outcomes["cut during work"] += cut
        fs.power_loss(rng, model=rng.choice(["prefix", "independent"]))
        if not (directory / "colibri.meta").exists():
            assert tracker.last == 0, "the database vanished"
            acked = 0
            shutil.rmtree(directory, ignore_errors=True)
            continue
        with cm.connect(directory, **OPTIONS) as reopened:
            acked = tracker.check(reopened, acked)
        outcomes["recovered"] += 1
    outcomes["steps"] = acked
    return outcomes


@pytest.mark.slow
def test_power_cuts_keep_every_acknowledged_table_step(tmp_path: Path) -> None:
    outcomes = campaign(tmp_path / "db", CUTS, 20261205, "full")
    assert outcomes["cut during work"] > CUTS // 2, outcomes
    assert outcomes["steps"] > 2 * workload.CYCLE, outcomes  # tables made and dropped


def test_the_check_catches_steps_lost_without_fsync(tmp_path: Path) -> None:
    """With durability off nothing is synced, so a cut loses acknowledged steps: the
    same campaign must say so."""
    with pytest.raises(CampaignError, match=r"lost acknowledged commits|neither as after"):
        campaign(tmp_path / "db", 60, 7, "off")  # stops at the first loss it sees
