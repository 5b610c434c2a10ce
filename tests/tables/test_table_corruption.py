"""Flipped bits and truncation in every file of a small database holding tables
(the table workload of ``perf/table_workload.py``: rows, indexes, compaction,
add_column, renames, a drop): the result is a typed CorruptionError naming the file,
or a database exactly as after some prefix of the committed steps whose tables
verify and whose indexes agree with the model; never wrong rows, never a crash."""

import os
import shutil
from pathlib import Path

import pytest
from damage import damaged_copy
from perf_modules import perf_module

import colibri_mm as cm

from kernel_inputs import JIT_DISABLED

workload = perf_module("table_workload")
CampaignError = perf_module("crash_campaign").CampaignError
STEPS = 2 * workload.CYCLE + workload.DROP_OLD + 2
"""Two cycles and the first drop."""
OFFSETS_PER_FILE = 30 if JIT_DISABLED else 100
OPTIONS = {"row_group_rows": 16, "bulk_changes": 64, "checkpoint_on_close": False,
           "page_size": 4096}
WORKLOAD = workload.Workload(11, big=False)


def build(directory: Path, checkpoint: bool) -> list[object]:
    """The database after STEPS steps (checkpointed at the end, or all in the WAL),
    its data file cut after the used pages (copies stay small); returns the model
    after each prefix."""
    models = [workload.Model(WORKLOAD)]
    with cm.connect(directory, create=True, **OPTIONS) as db:
        for i in range(1, STEPS + 1):
            workload.commit_step(db, WORKLOAD.step(i))
            models.append(models[-1].after(i))
        if checkpoint:
            db.checkpoint()
    # Read after close: a background checkpoint may still have been writing before.
    with cm.connect(directory, readonly=True) as db:
        used_pages = db.stats()["data_pages_used"]
    os.truncate(directory / "data.pages", used_pages * OPTIONS["page_size"])
    return models


def outcome(directory: Path, models: list[object]) -> int | str:
    """The prefix of steps the database holds, or the CorruptionError's message."""
    try:
        with cm.connect(directory, **OPTIONS) as db, db.snapshot() as snap:
            found = workload.observe(snap)
            for model in models:
                if found == model.state():  # type: ignore[attr-defined]
                    workload.check_tables(snap, model)
                    return model.last  # type: ignore[attr-defined, no-any-return]
            raise CampaignError("not the state after any prefix of the steps: "
                                + workload.describe_difference(found, models[-1].state()))
    except cm.CorruptionError as e:
        return f"corruption: {e}"


def files_of(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*")
                  if p.is_file() and p.name != "LOCK" and p.stat().st_size)


@pytest.fixture(scope="module", params=[False, True], ids=["wal", "checkpointed"])
def pristine(request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[object]]:
    directory = tmp_path_factory.mktemp("pristine") / "db"
    return directory, build(directory, checkpoint=request.param)


@pytest.mark.parametrize("truncate", [False, True], ids=["flip", "truncate"])
def test_every_file_damaged_gives_an_error_or_a_prefix(
        pristine: tuple[Path, list[object]], tmp_path: Path, truncate: bool) -> None:
    directory, models = pristine
    assert outcome(directory, models) == STEPS
    prefixes: set[int] = set()
    errors = 0
    for file in files_of(directory):
        size = file.stat().st_size
        stride = max(1, size // OFFSETS_PER_FILE)
        for offset in sorted(set(range(0, min(size, 200), 5)) | set(range(0, size, stride))):
            damaged_copy(directory, tmp_path / "db", file, offset, truncate)
            result = outcome(tmp_path / "db", models)
            if isinstance(result, str):
                assert file.name in result or "meta" in result, f"{file.name}@{offset}: {result}"
                errors += 1
            else:
                prefixes.add(result)
    assert errors > 0
    if not any(p.suffix == ".wal" and p.stat().st_size > 4096 for p in files_of(directory)):
        return  # checkpointed: the WAL is empty, damage gives the whole state or an error
    assert len(prefixes) > 3, "damage never cut the WAL at different places"


def test_a_state_of_no_prefix_is_caught(pristine: tuple[Path, list[object]],
                                        tmp_path: Path) -> None:
    directory, models = pristine
    shutil.copytree(directory, tmp_path / "db")
    with cm.connect(tmp_path / "db", **OPTIONS) as db:
        name = sorted(db.tables())[-1]
        db.table(name).add_column(workload.EXTRA.with_name("late"), default=0)
    with pytest.raises(CampaignError, match=f"not the state after any prefix.*table {name}: "
                                            "columns"):
        outcome(tmp_path / "db", models)
