"""Crash campaign over tables: SIGKILL a process committing the table workload of
:mod:`perf.table_workload` at random moments, reopen, check against its model.

The machinery is the key/value campaign's (:mod:`perf.crash_campaign`: a zygote
forks each child, the child acknowledges each step on a pipe after it returns, the
parent kills it at a seeded moment, reopens writable or read-only and checks). The
workload is table writes (insert, upsert, update, delete, delete_where, thousands of
rows at once now and then), compactions, index creation, add_column, renames and
drops, with ``db.checkpoint()`` after about one step in
:data:`~perf.table_workload.CHECKPOINT_EVERY` besides the automatic checkpoints.
Each check requires the database to be exactly as after the last acknowledged step
or the one in flight (nothing lost, nothing partial), every table to pass
``verify()``, and index lookups, counts and point reads to agree with the model.
Children start from the step the last check found (the parent tells them), since a
compaction with nothing to do commits nothing and leaves no trace to count.

Usage (from the repository root)::

    python -m perf.table_crash_campaign --kills 300 --durability full --seed 1 --dir /tmp/tc

prints the figures as one JSON object and exits 1 with the reason if a check fails.
``tests/tables/test_table_crash.py`` runs a small campaign on every test run.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import colibri_mm as cm
from perf.crash_campaign import (
    CheckResult,
    LifeFigures,
    child_main,
    command_line,
    kill_campaign,
    recovery_result,
    serve_forks,
)
from perf.crash_campaign import open_options as kv_open_options
from perf.table_workload import CYCLE, Tracker, Workload, commit_step

ROOT = Path(__file__).resolve().parents[1]
FIRST_LIFE_STEPS = 3 * CYCLE + 4
"""The first life runs until this step is acknowledged (a drop included)."""
ROW_GROUP_ROWS = 64
"""Rows per chunk: small, so tables have many chunks and tiers merge often."""
BULK_CHANGES = 256
"""Transactions with this many changes go the bulk way (big inserts, some compactions)."""
RUN_MAX = {"full": 0.4, "normal": 0.3}
"""Seconds after a child is ready within which a regular kill lands (a child's first
step takes tens of milliseconds, later ones about ten in ``full`` and one in
``normal``)."""


def open_options() -> dict[str, Any]:
    """Options of every open: the key/value campaign's, with small chunks."""
    return {**kv_open_options(), "row_group_rows": ROW_GROUP_ROWS,
            "bulk_changes": BULK_CHANGES}


def commit(db: cm.Database, workload: Workload, i: int) -> None:
    """Commit step ``i``, then checkpoint if the workload says so."""
    commit_step(db, workload.step(i))
    if workload.wants_checkpoint(i):
        db.checkpoint()


@dataclass
class TableFigures(LifeFigures):
    """What a table campaign did (returned by :func:`run_campaign` as a dict)."""

    tables_created: int = 0
    """Tables the recovered steps created (each indexed, altered, renamed, compacted)."""
    tables_at_end: int = 0
    rows_at_end: int = 0


class _Checker:
    """The parent's checks: a :class:`Tracker` plus the recovery report."""

    def __init__(self, workload: Workload) -> None:
        self.tracker = Tracker(workload)

    def __call__(self, db: cm.Database, acked: int) -> CheckResult:
        return recovery_result(db, self.tracker.check(db, acked))


def run_campaign(kills: int, durability: str, seed: int,
                 directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Run a table crash campaign of ``kills`` SIGKILLs; return its figures.

    The database is made in ``directory/db`` (which must not exist). Raises
    :class:`~perf.crash_campaign.CampaignError` when a check fails.
    """
    figures = TableFigures(durability=durability, seed=seed)
    checker = _Checker(Workload(seed))
    kill_campaign(kills, Path(directory), figures,
                  [sys.executable, "-m", "perf.table_crash_campaign"], cwd=ROOT,
                  options=open_options(), first_target=FIRST_LIFE_STEPS, check=checker,
                  spawn_args=str, run_max=RUN_MAX)
    model = checker.tracker.model
    figures.tables_created = (model.last + CYCLE - 1) // CYCLE
    figures.tables_at_end = len(model.tables)
    figures.rows_at_end = sum(len(t.rows) for t in model.tables.values())
    return asdict(figures)


def _warm_up(directory: Path, durability: str, workload: Workload) -> None:
    """Load every kernel a child uses (each kind of step, recovery, the checks)."""
    path = directory / "warm-up"
    shutil.rmtree(path, ignore_errors=True)
    steps = CYCLE + 2
    with cm.connect(path, create=True, durability=durability, **open_options()) as db:
        for i in range(1, steps + 1):
            commit(db, workload, i)
    with cm.connect(path, durability=durability, **open_options()) as db:
        Tracker(workload).check(db, steps)
    shutil.rmtree(path)


def zygote_main(db_dir: Path, durability: str, seed: int) -> None:
    """The zygote of the table campaign: warm up, then fork children; a child is told
    the step the last check found and continues after it."""
    workload = Workload(seed)
    _warm_up(db_dir.parent, durability, workload)
    serve_forks(lambda args: child_main(
        db_dir, durability, open_options(), lambda db: int(args[0]),
        lambda db, i: commit(db, workload, i)))


if __name__ == "__main__":
    sys.exit(command_line(None, __doc__.split("\n\n")[0] if __doc__ else None,
                          run_campaign, zygote_main))
