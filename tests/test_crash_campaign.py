"""Crash safety under SIGKILL: the campaign of ``perf/crash_campaign.py`` in CI size, and
tests that its checker catches a lost commit and a partial transaction.

``COLIBRI_CRASH_KILLS`` sets the number of kills per durability mode (default
:data:`DEFAULT_KILLS`; a release check asks for hundreds) and ``COLIBRI_CRASH_SEED``
the seed of kill moments and workload.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import colibri_mm as cm

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_KILLS = 30
KILLS = int(os.environ.get("COLIBRI_CRASH_KILLS", DEFAULT_KILLS))
SEED = int(os.environ.get("COLIBRI_CRASH_SEED", "20240607"))


def _load_campaign() -> ModuleType:
    """``perf/crash_campaign.py`` by path (``perf`` is not on sys.path under pytest)."""
    spec = importlib.util.spec_from_file_location("crash_campaign",
                                                  ROOT / "perf" / "crash_campaign.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


campaign = sys.modules.get("crash_campaign") or _load_campaign()


@pytest.mark.slow
@pytest.mark.parametrize("durability", ["full", "normal"])
def test_sigkill_loses_no_acknowledged_commit(durability: str, tmp_path: Path) -> None:
    figures = campaign.run_campaign(KILLS, durability, SEED, tmp_path)
    print(json.dumps(figures))
    # run_campaign raised if any check failed; these say the campaign did its job.
    assert figures["kills"] == KILLS
    assert figures["acknowledged"] >= campaign.first_life_target(SEED) > 0
    assert figures["recovered"] == figures["acknowledged"] + figures["in_flight_recovered"]
    assert figures["wal_last_segment"] >= 2  # the first life wrote more than a segment
    assert figures["big_transactions"] >= sum(
        campaign.is_big(i, SEED) for i in range(1, campaign.first_life_target(SEED) + 1))


def test_command_line_prints_the_figures(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "perf" / "crash_campaign.py"), "--kills", "2",
         "--durability", "normal", "--seed", "3", "--dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout)
    assert figures["kills"] == 2
    assert figures["durability"] == "normal"
    assert figures["recovered"] >= figures["acknowledged"] > 0


# -- the checker can fail --------------------------------------------------------------------


def _committed(path: Path, last: int) -> cm.Database:
    """A database holding transactions 1..last of the campaign's workload."""
    with cm.connect(path, create=True, durability="off") as db:
        for i in range(1, last + 1):
            campaign.commit_transaction(db, i, SEED)
    return cm.connect(path)


def _first_big_after(i: int) -> int:
    while not campaign.is_big(i, SEED):
        i += 1
    return i


def test_checker_accepts_exactly_the_acknowledged_and_one_in_flight(tmp_path: Path) -> None:
    last = _first_big_after(campaign.KEEP_C + 2)
    with _committed(tmp_path / "db", last) as db:
        assert campaign.check_database(db, acked=last, seed=SEED).last == last
        assert campaign.check_database(db, acked=last - 1, seed=SEED).last == last
        with pytest.raises(campaign.CampaignError, match="more than the one in flight"):
            campaign.check_database(db, acked=last - 2, seed=SEED)
        with pytest.raises(campaign.CampaignError, match="lost acknowledged commits"):
            campaign.check_database(db, acked=last + 1, seed=SEED)


def _write_transaction(path: Path, i: int, *, delete_old_c: bool, big_pairs: int) -> None:
    """Commit transaction ``i`` of the workload doctored: maybe without its delete, with
    ``big_pairs`` of the big pairs."""
    with cm.connect(path) as db, db.transaction() as tx:
        for part in "abc":
            tx.kv.put(campaign.txn_key(i, part), campaign.txn_value(i, part))
        tx.kv.put(campaign.COUNTER, b"%d" % i)
        if delete_old_c and i > campaign.KEEP_C:
            tx.kv.delete(campaign.txn_key(i - campaign.KEEP_C, "c"))
        tx.kv.put_many([campaign.big_key(n) for n in range(big_pairs)],
                       [campaign.big_value(i, n) for n in range(big_pairs)])


def test_checker_catches_a_transaction_missing_its_delete(tmp_path: Path) -> None:
    last = 2 * campaign.KEEP_C
    while campaign.is_big(last + 1, SEED):
        last += 1
    _committed(tmp_path / "db", last).close()
    _write_transaction(tmp_path / "db", last + 1, delete_old_c=False, big_pairs=0)
    stale = last + 1 - campaign.KEEP_C
    with cm.connect(tmp_path / "db") as db, pytest.raises(
            campaign.CampaignError, match=rf"1 unexpected keys of transaction {stale}"):
        campaign.check_database(db, acked=last, seed=SEED)


def test_checker_catches_half_of_a_big_transaction(tmp_path: Path) -> None:
    big = campaign.first_big(SEED)  # no earlier big transaction owns the pairs
    _committed(tmp_path / "db", big - 1).close()
    _write_transaction(tmp_path / "db", big, delete_old_c=True,
                       big_pairs=campaign.big_pairs(big, SEED) // 2)
    with cm.connect(tmp_path / "db") as db, pytest.raises(
            campaign.CampaignError, match=rf"missing keys of big transaction {big}"):
        campaign.check_database(db, acked=big, seed=SEED)
