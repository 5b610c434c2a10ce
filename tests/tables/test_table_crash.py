"""Crash safety of tables under SIGKILL: the campaign of ``perf/table_crash_campaign.py``
in CI size, and tests that its checker catches a lost step, a step beyond the one in
flight, a partial row transaction, a wrong catalog change and a wrong index answer.

``COLIBRI_TABLE_CRASH_KILLS`` sets the number of kills per durability mode (default
:data:`DEFAULT_KILLS`; a release check asks for 300 or more) and
``COLIBRI_TABLE_CRASH_SEED`` the seed of kill moments and workload.
"""

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from perf_modules import ROOT, perf_module

import colibri_mm as cm

DEFAULT_KILLS = 25
KILLS = int(os.environ.get("COLIBRI_TABLE_CRASH_KILLS", DEFAULT_KILLS))
SEED = int(os.environ.get("COLIBRI_TABLE_CRASH_SEED", "20261205"))

campaign = perf_module("table_crash_campaign")
workload = perf_module("table_workload")
CampaignError = perf_module("crash_campaign").CampaignError
WORKLOAD = workload.Workload(SEED)


@pytest.mark.slow
@pytest.mark.parametrize("durability", ["full", "normal"])
def test_sigkill_loses_no_acknowledged_table_step(durability: str, tmp_path: Path) -> None:
    figures = campaign.run_campaign(KILLS, durability, SEED, tmp_path)
    print(json.dumps(figures))
    # run_campaign raised if any check failed; these say the campaign did its job.
    assert figures["kills"] == KILLS
    assert figures["acknowledged"] >= campaign.FIRST_LIFE_STEPS
    assert figures["recovered"] == figures["acknowledged"] + figures["in_flight_recovered"]
    assert figures["tables_created"] >= 4  # so at least one was dropped
    assert figures["checkpoint_id"] > 1


def test_command_line_prints_the_figures(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "perf.table_crash_campaign", "--kills", "2",
         "--durability", "normal", "--seed", "3", "--dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout)
    assert figures["kills"] == 2
    assert figures["durability"] == "normal"
    assert figures["recovered"] >= figures["acknowledged"] >= campaign.FIRST_LIFE_STEPS


# -- the checker can fail --------------------------------------------------------------------


def _committed(path: Path, last: int) -> cm.Database:
    """A database holding steps 1..last of the workload."""
    options = campaign.open_options()
    with cm.connect(path, create=True, durability="off", **options) as db:
        for i in range(1, last + 1):
            workload.commit_step(db, WORKLOAD.step(i))
    return cm.connect(path, **options)


def _row_steps_from(i: int, count: int) -> int:
    """The first step from ``i`` on that starts ``count`` row steps in a row, each with
    several changes."""
    while not all(WORKLOAD.step(j).verb == "rows" and len(WORKLOAD.step(j).ops) > 1
                  for j in range(i, i + count)):
        i += 1
    return i


def test_checker_accepts_exactly_the_acknowledged_and_one_in_flight(tmp_path: Path) -> None:
    last = _row_steps_from(2 * workload.CYCLE, 3) + 1  # steps last-1 .. last+1 write rows
    with _committed(tmp_path / "db", last) as db:
        assert workload.Tracker(WORKLOAD).check(db, last) == last
        assert workload.Tracker(WORKLOAD).check(db, last - 1) == last
        with pytest.raises(CampaignError, match="more than the one in flight"):
            workload.Tracker(WORKLOAD).check(db, last - 2)
        with pytest.raises(CampaignError, match="lost acknowledged commits"):
            workload.Tracker(WORKLOAD).check(db, last + 1)


def test_checker_catches_a_partial_row_transaction(tmp_path: Path) -> None:
    step = WORKLOAD.step(_row_steps_from(workload.CYCLE + workload.ADD_COLUMN + 1, 1))
    _committed(tmp_path / "db", step.i - 1).close()
    partial = replace(step, ops=step.ops[1:])  # without its insert
    with cm.connect(tmp_path / "db", **campaign.open_options()) as db:
        workload.commit_step(db, partial)
        with pytest.raises(CampaignError, match=f"neither as after step {step.i - 1}.*"
                                                "a lost or partial step"):
            workload.Tracker(WORKLOAD).check(db, step.i - 1)


def test_checker_catches_a_wrong_catalog_change(tmp_path: Path) -> None:
    index = WORKLOAD.step(workload.INDEX_GRP + 1)
    assert index.verb == "index"
    _committed(tmp_path / "db", index.i - 1).close()
    other_kind = replace(index, kind="hash" if index.kind == "ordered" else "ordered")
    with cm.connect(tmp_path / "db", **campaign.open_options()) as db:
        workload.commit_step(db, other_kind)
        with pytest.raises(CampaignError, match=r"table t0: indexes .* instead of"):
            workload.Tracker(WORKLOAD).check(db, index.i)


def test_checker_catches_index_answers_the_model_does_not_give(tmp_path: Path) -> None:
    last = workload.INDEX_TAG + 2  # both indexes made, not yet renamed
    with _committed(tmp_path / "db", last) as db, db.snapshot() as snap:
        model = workload.Model(WORKLOAD)
        model.advance(last)
        workload.check_tables(snap, model)
        table = model.tables["t0"]
        key = min(table.rows)
        grp = table.columns.index("grp")
        row = list(table.rows[key])
        row[grp] = (row[grp] + 1) % workload.GROUPS
        table.rows[key] = tuple(row)
        step = key // workload.ID_STRIDE
        with pytest.raises(CampaignError, match=rf"t0: find\(grp=.*{key} \(step {step}\)"):
            workload.check_tables(snap, model)
