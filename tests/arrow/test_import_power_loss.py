"""The bulk import path (``db.import_arrow``: chunks written as extents of the data
file, synced, then their descriptors committed through the WAL) under the
fault-injecting file system of ``colibri_mm/storage/faults.py``.

Power cuts. A model-checked workload mixes imports (4 KiB pages and 1,024-row
chunks, so most chunks become extents; keyed and keyless tables; modes create,
append, upsert and replace; sources given as tables, batch iterables and readers;
imports that fail on a duplicate key or a broken source after writing their
extents), key/value writes, row deletes in the same transaction as key/value
writes, drops, compaction, manual checkpoints, checkpoints triggered by a small
``max_dirty_bytes`` (in the background and by backpressure inside an import's
commit) and reopens. At a file operation every later one fails (the machine is
gone), then unsynced writes and directory entries are dropped or torn (both models
of ``faults.py``: a prefix in order, or independent reordering). The database is
reopened with the real recovery and must be exactly as after the last
acknowledged step or the one in flight (so no unacknowledged import is partly
visible), every row equal, ``table.verify() == []`` and ``db.verify()`` passing.
Then more is imported and written, everything is read again, a checkpoint is
taken, everything is read again, and the database is reopened and read once more
(fresh page checksums): pages a replayed descriptor names must not have been
handed out again. Two forms: a campaign whose database lives on across the cuts
(random cut points; ``COLIBRI_IMPORT_POWER_CUTS`` cuts, CI 20, release 400), and a
sweep that cuts a fixed workload at every Nth operation, from a fresh database
each time (every 4th operation in CI, every one with
``COLIBRI_IMPORT_POWER_CUTS`` of 100 or more).

I/O errors (SQLite's loop, as ``tests/test_kv_model.py``). The Nth operation of an
import and of the checkpoint after it fails once with EIO, ENOSPC or a torn write.
The import fails with an error naming the injected fault and leaves the database
as it was (or it succeeds); the next import reuses the pages of the failed one; a
database whose write-ahead log failed is reopened; after reopening, everything
acknowledged is there. Many failed imports in a row must not grow the data file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import colibri_mm as cm
from colibri_mm.storage.extents import MAGIC
from colibri_mm.storage.faults import FaultyFileSystem

CUTS = int(os.environ.get("COLIBRI_IMPORT_POWER_CUTS", "20"))
SWEEP_STRIDE = 1 if CUTS >= 100 else 4
"""The sweep cuts at every ``SWEEP_STRIDE``-th operation of its workload."""
STEPS_PER_LIFE = 60
"""Steps a life of the campaign tries (the cut almost always comes first)."""
LAST_OPERATION = 300
"""The campaign's cut lands at a file operation from 1 to this."""
CHUNK_ROWS = 1024
OPTIONS: dict[str, Any] = {
    "page_size": 4096, "row_group_rows": CHUNK_ROWS, "bulk_changes": 256, "tail_rows": 64,
    "max_dirty_bytes": 48 << 10, "checkpoint_wal_bytes": 256 << 10,
    "checkpoint_on_close": False,
}
"""Chunks of 1,024 rows are about 9 pages (extents from 4 pages up); small
``max_dirty_bytes`` makes checkpoints start by themselves every few steps."""
QUIET = {**OPTIONS, "max_dirty_bytes": 1 << 30, "checkpoint_wal_bytes": 1 << 30}
"""No automatic checkpoints: the same operations at every run of a workload."""
NAMES = ("t0", "t1", "t2", "t3")
MAX_ROWS = 14_000
"""Above this many rows in all, steps shrink the tables (drop, replace)."""

Row = tuple[int, float, str]


# -- the model -----------------------------------------------------------------------


@dataclass(frozen=True)
class TableModel:
    keyed: bool
    rows: dict[int, Row] | tuple[Row, ...]
    """Keyed: id -> row; keyless: every row (repeats allowed)."""

    def canonical(self) -> list[Row]:
        return sorted(self.rows.values()) if isinstance(self.rows, dict) else sorted(self.rows)

    def __len__(self) -> int:
        return len(self.rows)


@dataclass(frozen=True)
class State:
    """What the database must hold: tables and user key/value pairs."""

    tables: dict[str, TableModel] = field(default_factory=dict)
    kv: dict[bytes, bytes] = field(default_factory=dict)

    def with_table(self, name: str, table: TableModel | None) -> State:
        tables = dict(self.tables)
        if table is None:
            tables.pop(name, None)
        else:
            tables[name] = table
        return replace(self, tables=tables)

    def total_rows(self) -> int:
        return sum(len(t) for t in self.tables.values())


def make_rows(ids: np.ndarray, version: int) -> tuple[pa.Table, list[Row]]:
    """Rows whose every column says which ids and which write made them."""
    id_list = [int(i) for i in ids]
    xs = [i * 0.25 + version for i in id_list]  # exact in binary
    ss = [f"{i}/{version}/" + "#" * (i % 13) for i in id_list]
    table = pa.table({"id": pa.array(id_list, pa.int64()), "x": pa.array(xs, pa.float64()),
                      "s": pa.array(ss, pa.string())})
    return table, list(zip(id_list, xs, ss, strict=True))


def as_source(table: pa.Table, rng: random.Random) -> Any:
    """The same rows as a table, an iterable of batches or a reader."""
    kind = rng.randrange(3)
    if kind == 0:
        return table
    batches = table.to_batches(max_chunksize=rng.choice([300, 700, 2000]))
    if kind == 1:
        return iter(batches)
    return pa.RecordBatchReader.from_batches(table.schema, batches)


def broken_source(table: pa.Table) -> Iterator[pa.RecordBatch]:
    """A source that fails after most of its rows (their extents are written)."""
    yield from table.to_batches(max_chunksize=500)
    raise BrokenSourceError("the source broke")


class BrokenSourceError(Exception):
    pass


# -- steps -------------------------------------------------------------------------


@dataclass
class Life:
    """The database a life works on (steps may reopen it)."""

    directory: Path
    fs: FaultyFileSystem
    options: dict[str, Any]
    db: cm.Database | None = None
    opened_at: int = 0
    """File operations the first open took."""
    worked_at: int = 0
    """File operations before the final close."""

    def open(self) -> cm.Database:
        self.db = cm.connect(self.directory, create=True, file_system=self.fs, **self.options)
        return self.db

    def close(self) -> None:
        db, self.db = self.db, None
        if db is not None:
            db.close()

    def close_quietly(self) -> None:
        """Close a database that may have failed (errors of the close are expected)."""
        with contextlib.suppress(OSError, cm.Error):
            self.close()
        self.db = None


@dataclass
class Step:
    """One step: a transaction (or none: checkpoint, compact, reopen) and the state
    after it. ``expected``: an error the step must raise (then nothing changes)."""

    text: str
    run: Callable[[Life], Any]
    after: State
    expected: type[BaseException] | None = None


def step_import(state: State, rng: random.Random, version: int, name: str, mode: str,
                keyed: bool, ids: np.ndarray) -> Step:
    """``import_arrow(name, ids' rows, mode)`` and its effect on the model."""
    table, rows = make_rows(ids, version)
    source = as_source(table, rng)
    old = state.tables.get(name)
    if mode in ("create", "replace") or old is None:
        new = TableModel(keyed, {r[0]: r for r in rows} if keyed else tuple(rows))
    elif old.keyed:
        assert isinstance(old.rows, dict)
        new = TableModel(True, {**old.rows, **{r[0]: r for r in rows}})
    else:
        assert isinstance(old.rows, tuple)
        new = TableModel(False, old.rows + tuple(rows))
    primary_key = "id" if keyed and mode in ("create", "replace") else None

    def run(life: Life) -> Any:
        assert life.db is not None
        result = life.db.import_arrow(name, source, primary_key=primary_key, mode=mode)
        assert result.rows == len(rows)

    return Step(f"import {mode} {name} ({len(rows)} rows, {'keyed' if keyed else 'keyless'})",
                run, state.with_table(name, new))


def import_size(rng: random.Random) -> int:
    """Rows of an import: mostly several chunks (extents), sometimes less than one
    (the usual write path, or the tail)."""
    return rng.choice([rng.randrange(1, 17), rng.randrange(100, CHUNK_ROWS),
                       *[rng.randrange(CHUNK_ROWS, 4 * CHUNK_ROWS)] * 4])


def top_id(table: TableModel | None) -> int:
    """One more than the largest id of the table (0 if empty)."""
    if table is None or not len(table):
        return 0
    return max(r[0] for r in (table.rows.values() if isinstance(table.rows, dict)
                              else table.rows)) + 1


def next_ids(table: TableModel | None, count: int) -> np.ndarray:
    start = top_id(table)
    return np.arange(start, start + count)


def random_step(state: State, rng: random.Random, version: int) -> Step:
    """A random step over ``state`` (``version`` tags the rows it writes)."""
    present = sorted(state.tables)
    free = [n for n in NAMES if n not in state.tables]
    big = state.total_rows() > MAX_ROWS
    choices = ["kv", "checkpoint", "compact", "reopen", "rows", "bad import"]
    weights = [2, 1, 1, 0.5, 2, 1]
    if free and not big:
        choices.append("create")
        weights.append(3)
    if present:
        choices += ["append", "upsert", "replace", "drop"]
        weights += [0.5 if big else 3, 2, 2, 3 if big else 0.7]
    kind = rng.choices(choices, weights)[0]
    if kind in ("compact", "rows", "bad import") and not present:
        kind = "kv"
    if kind == "create":
        name, keyed = rng.choice(free), rng.random() < 0.5
        return step_import(state, rng, version, name, "create", keyed,
                           np.arange(import_size(rng)))
    if kind == "append":
        name = rng.choice(present)
        table = state.tables[name]
        count = import_size(rng)
        if table.keyed:
            ids = next_ids(table, count)
        else:  # keyless: repeats of present ids are fine
            ids = np.array([rng.randrange(3 * count) for _ in range(count)])
        return step_import(state, rng, version, name, "append", table.keyed, ids)
    if kind == "upsert":
        keyed_names = [n for n in present if state.tables[n].keyed]
        if not keyed_names:
            return random_step(state, rng, version)
        name = rng.choice(keyed_names)
        table = state.tables[name]
        count = import_size(rng)
        top = top_id(table)
        ids = np.array(sorted(rng.sample(range(top + count), count)))  # old and new ids
        return step_import(state, rng, version, name, "upsert", True, ids)
    if kind == "replace":
        name = rng.choice(present + free[:1])
        old = state.tables.get(name)
        # Replace keeps the key of a keyed table; a keyless one may become keyed.
        keyed = True if old is not None and old.keyed else rng.random() < 0.5
        return step_import(state, rng, version, name, "replace", keyed,
                           np.arange(import_size(rng)) + rng.randrange(100))
    if kind == "drop":
        name = rng.choice(present)

        def drop(life: Life) -> None:
            assert life.db is not None
            life.db.drop_table(name)

        return Step(f"drop {name}", drop, state.with_table(name, None))
    if kind == "bad import":
        return bad_import(state, rng, version, rng.choice(present))
    if kind == "rows":
        return delete_rows(state, rng, version, rng.choice(present))
    if kind == "kv":
        return kv_step(state, rng, version)
    if kind == "compact":
        name = rng.choice(present)
        return Step(f"compact {name}", lambda life: life.db.table(name).compact(), state)
    if kind == "checkpoint":
        return checkpoint_step(state)

    def reopen(life: Life) -> None:
        assert life.db is not None
        if rng.random() < 0.5:
            life.db.checkpoint()
        life.close()
        check(life.open(), [state])

    return Step("reopen", reopen, state)


def checkpoint_step(state: State) -> Step:
    def run(life: Life) -> None:
        assert life.db is not None
        life.db.checkpoint()

    return Step("checkpoint", run, state)


def bad_import(state: State, rng: random.Random, version: int, name: str) -> Step:
    """An import that writes extents and then fails, changing nothing."""
    table = state.tables[name]
    count = rng.randrange(2 * CHUNK_ROWS, 4 * CHUNK_ROWS)
    if table.keyed and rng.random() < 0.6:
        ids = next_ids(table, count)
        if len(table) and rng.random() < 0.5:
            ids[-1] = next(iter(table.rows))  # present in the table
        else:
            ids[-1] = ids[0]  # repeated in the data
        rows, _ = make_rows(ids, version)
        source, expected = as_source(rows, rng), cm.ConstraintError
        mode = rng.choice(["append", "create"] if len(table) else ["append"])
        if mode == "create":
            expected = cm.TableExistsError
    else:
        rows, _ = make_rows(next_ids(table, count), version)
        source, expected, mode = broken_source(rows), BrokenSourceError, "append"

    def run(life: Life) -> None:
        assert life.db is not None
        life.db.import_arrow(name, source, mode=mode)

    return Step(f"failing import {mode} {name}", run, state, expected)


def delete_rows(state: State, rng: random.Random, version: int, name: str) -> Step:
    """Row deletes and a key/value put in one transaction."""
    table = state.tables[name]
    key = f"deleted:{version}".encode()
    if table.keyed:
        assert isinstance(table.rows, dict)
        ids = rng.sample(sorted(table.rows), min(len(table), rng.randrange(1, 40)))
        new = TableModel(True, {i: r for i, r in table.rows.items() if i not in set(ids)})

        def run(life: Life) -> None:
            assert life.db is not None
            with life.db.transaction() as tx:
                for i in ids:
                    assert tx.delete(name, i)
                tx.kv.put(key, str(len(ids)))
    else:
        assert isinstance(table.rows, tuple)
        limit = rng.randrange(0, 600)
        new = TableModel(False, tuple(r for r in table.rows if r[0] >= limit))
        gone = len(table) - len(new)

        def run(life: Life) -> None:
            assert life.db is not None
            with life.db.transaction() as tx:
                assert tx.delete_where(name, pc.field("id") < limit) == gone
                tx.kv.put(key, str(gone))
    after = state.with_table(name, new)
    after = replace(after, kv={**after.kv, key: str(len(table) - len(new)).encode()})
    return Step(f"delete rows of {name}", run, after)


def kv_step(state: State, rng: random.Random, version: int) -> Step:
    count = rng.randrange(1, 400)
    keys = [f"kv:{rng.randrange(2000):05d}".encode() for _ in range(count)]
    value = f"{version}:".encode() + b"v" * rng.randrange(200)
    doomed = rng.sample(sorted(state.kv), min(len(state.kv), rng.randrange(4)))
    kv = {**state.kv, **dict.fromkeys(keys, value)}
    for k in doomed:
        if k not in keys:
            kv.pop(k, None)

    def run(life: Life) -> None:
        assert life.db is not None
        with life.db.transaction() as tx:
            tx.kv.put_many(keys, [value] * len(keys))
            for k in doomed:
                if k not in keys:
                    tx.kv.delete(k)

    return Step(f"kv ({count} puts)", run, replace(state, kv=kv))


# -- checking ------------------------------------------------------------------------


def read_state(db: cm.Database) -> State:
    """Everything the database holds, checking each table's indexes and counts."""
    tables = {}
    for name in db.tables():
        table = db.table(name)
        rows = table.to_arrow_table()
        keyed = table.describe()["primary_key"] is not None
        got = list(zip(rows["id"].to_pylist(), rows["x"].to_pylist(), rows["s"].to_pylist(),
                       strict=True))
        assert table.verify() == [], f"table {name}: {table.verify()}"
        assert table.count() == len(got), f"table {name}: count() disagrees with a scan"
        if keyed:
            by_id = {r[0]: r for r in got}
            assert len(by_id) == len(got), f"table {name}: a primary key repeats"
            for i in list(by_id)[:: max(1, len(by_id) // 5)]:
                row = table.get(i)
                assert row is not None and (row["id"], row["x"], row["s"]) == by_id[i]
            tables[name] = TableModel(True, by_id)
        else:
            tables[name] = TableModel(False, tuple(got))
    db.verify()
    return State(tables, dict(db.kv.scan()))


def describe_difference(got: State, want: State) -> str:
    lines = []
    if sorted(got.tables) != sorted(want.tables):
        lines.append(f"tables {sorted(got.tables)} instead of {sorted(want.tables)}")
    for name in sorted(got.tables.keys() & want.tables.keys()):
        g, w = got.tables[name], want.tables[name]
        if g.keyed != w.keyed:
            lines.append(f"{name}: keyed={g.keyed} instead of {w.keyed}")
        gc, wc = g.canonical(), w.canonical()
        if gc != wc:
            first = next((i for i, (a, b) in enumerate(zip(gc, wc, strict=False)) if a != b),
                         min(len(gc), len(wc)))
            lines.append(f"{name}: {len(gc)} rows instead of {len(wc)}, first difference "
                         f"at sorted row {first}: {gc[first:first + 1]} vs {wc[first:first + 1]}")
    if got.kv != want.kv:
        changed = [k for k in got.kv.keys() & want.kv.keys() if got.kv[k] != want.kv[k]]
        lines.append(f"kv: {len(got.kv)} pairs instead of {len(want.kv)}; keys differing: "
                     f"{sorted(got.kv.keys() ^ want.kv.keys())[:3]}, values differing: "
                     f"{changed[:3]}")
    return "; ".join(lines)


def same(got: State, want: State) -> bool:
    return sorted(got.tables) == sorted(want.tables) and got.kv == want.kv and all(
        got.tables[n].keyed == want.tables[n].keyed and
        got.tables[n].canonical() == want.tables[n].canonical() for n in want.tables)


def check(db: cm.Database, candidates: list[State], where: str = "") -> State:
    """The database equals one of ``candidates`` (the last acknowledged state, and
    the state after the step in flight); returns it."""
    got = read_state(db)
    for state in candidates:
        if same(got, state):
            return state
    raise AssertionError(f"{where}: the database is neither as after the last acknowledged "
                         f"step nor as after the one in flight: "
                         f"{describe_difference(got, candidates[0])}")


def write_more_and_reread(directory: Path, state: State, rng: random.Random, version: int,
                          options: dict[str, Any]) -> State:
    """After recovery: import and write more (new pages must not be pages that
    replayed descriptors name), read everything, checkpoint, read everything, reopen
    (page checksums checked afresh) and read everything."""
    with cm.connect(directory, **options) as db:
        life = Life(directory, FaultyFileSystem(), options, db)
        for _ in range(2):
            free = [n for n in NAMES if n not in state.tables]
            if free:
                step = step_import(state, rng, version, free[0], "create", rng.random() < 0.5,
                                   np.arange(rng.randrange(CHUNK_ROWS, 3 * CHUNK_ROWS)))
            else:
                name = rng.choice(sorted(state.tables))
                step = step_import(state, rng, version, name, "replace",
                                   state.tables[name].keyed,
                                   np.arange(rng.randrange(CHUNK_ROWS, 3 * CHUNK_ROWS)))
            step.run(life)
            state = step.after
            version += 1
        step = kv_step(state, rng, version)
        step.run(life)
        state = step.after
        check(db, [state], "after writing more after recovery")
        db.checkpoint()
        check(db, [state], "after writing more after recovery and a checkpoint")
    with cm.connect(directory, **options) as db:
        check(db, [state], "reopened after writing more after recovery")
    return state


# -- power cuts ----------------------------------------------------------------------


@dataclass
class Outcomes:
    cuts_during_work: int = 0
    recovered: int = 0
    in_flight_survived: int = 0
    steps: int = 0
    imports: int = 0
    extent_chunks_seen: int = 0
    models: dict[str, int] = field(default_factory=dict)
    cut_during: dict[str, int] = field(default_factory=dict)
    """Cuts by the kind of step in flight."""


def live(life: Life, steps: Iterator[Step], cut_at: int | None) -> tuple[State | None, bool,
                                                                        list[Step]]:
    """Run steps until the cut; returns the state of the step in flight (None if the
    cut came between steps), whether the cut came during the work, and the steps
    acknowledged."""
    done: list[Step] = []
    in_flight: Step | None = None
    try:
        life.open()
        life.opened_at = life.fs.operations
        if cut_at is not None:
            life.fs.fail_at(cut_at, persistent=True)
        for step in steps:
            in_flight = step
            if step.expected is not None:
                with pytest.raises(step.expected):
                    step.run(life)
            else:
                step.run(life)
            done.append(step)
            in_flight = None
    except (OSError, cm.Error):
        return (None if in_flight is None else in_flight.after), True, done
    finally:
        life.worked_at = life.fs.operations
        with contextlib.suppress(OSError, cm.Error):
            life.close()
    return None, False, done


def recover(directory: Path, fs: FaultyFileSystem, rng: random.Random, model: str,
            acked: State, in_flight: State | None, options: dict[str, Any],
            outcomes: Outcomes, where: str) -> State:
    """Cut the power, reopen with the real file system, check; returns the state found."""
    fs.power_loss(rng, model=model)  # type: ignore[arg-type]
    outcomes.models[model] = outcomes.models.get(model, 0) + 1
    candidates = [acked] if in_flight is None else [acked, in_flight]
    with cm.connect(directory, **options) as db:
        found = check(db, candidates, where)
        outcomes.extent_chunks_seen += extent_chunks(db)
    outcomes.recovered += 1
    outcomes.in_flight_survived += found is not acked
    return found


def extent_chunks(db: cm.Database) -> int:
    with db.snapshot() as snap:
        return sum(v.startswith(MAGIC) for _, v in snap.kv.scan_raw(b"\x01\x03", b"\x01\x04"))


def campaign(directory: Path, cuts: int, seed: int) -> Outcomes:
    """Cut power ``cuts`` times in a database that lives on; check each reopen.

    Checkpoints in the background thread make the operation counts vary from run to
    run, so a seed does not replay a run exactly: a failure names the cut, the
    power-loss model and the step in flight instead."""
    rng = random.Random(seed)
    state = State()
    version = 0
    outcomes = Outcomes()
    for cut in range(cuts):
        life = Life(directory, FaultyFileSystem(), OPTIONS)
        generated: list[Step] = []

        def steps(current: State = state, generated: list[Step] = generated
                  ) -> Iterator[Step]:
            nonlocal version
            for _ in range(STEPS_PER_LIFE):
                version += 1
                step = random_step(current, rng, version)
                generated.append(step)
                yield step
                current = step.after

        in_flight, was_cut, done = live(life, steps(), rng.randrange(1, LAST_OPERATION))
        outcomes.cuts_during_work += was_cut
        if was_cut and len(generated) > len(done):
            words = generated[len(done)].text.split()
            kind = " ".join(words[:2] if words[0] in ("import", "failing") else words[:1])
            outcomes.cut_during[kind] = outcomes.cut_during.get(kind, 0) + 1
        outcomes.steps += len(done)
        outcomes.imports += sum(s.text.startswith("import") for s in done)
        acked = done[-1].after if done else state
        model = rng.choice(["prefix", "independent"])
        where = (f"cut {cut} ({model}) after {len(done)} steps, in flight: "
                 f"{generated[len(done)].text if len(generated) > len(done) else None}")
        state = recover(directory, life.fs, rng, model, acked, in_flight, OPTIONS, outcomes,
                        where)
        version += 1
        state = write_more_and_reread(directory, state, rng, version, OPTIONS)
        version += 10
    return outcomes


@pytest.mark.slow
def test_power_cuts_during_imports_lose_nothing_acknowledged(tmp_path: Path) -> None:
    outcomes = campaign(tmp_path / "db", CUTS, 20261206)
    print(f"\ncampaign: {outcomes}")  # shown with -s (release runs)
    assert outcomes.cuts_during_work > CUTS * 2 // 3, outcomes
    cut_in_imports = sum(v for k, v in outcomes.cut_during.items() if "import" in k)
    assert cut_in_imports > CUTS // 3, outcomes
    assert outcomes.imports > CUTS, outcomes
    assert outcomes.extent_chunks_seen > CUTS, outcomes  # recovery did meet extents
    assert len(outcomes.models) == 2, outcomes


def sweep_workload(rng: random.Random) -> list[Step]:
    """A fixed workload touching every kind of import and what follows them."""
    state = State()
    steps: list[Step] = []

    def add(make: Callable[[State], Step]) -> None:
        nonlocal state
        steps.append(make(state))
        state = steps[-1].after

    add(lambda s: step_import(s, rng, 1, "t0", "create", True, np.arange(2500)))
    add(lambda s: step_import(s, rng, 2, "t1", "create", False, np.arange(2100)))
    add(lambda s: kv_step(s, rng, 3))
    add(checkpoint_step)
    add(lambda s: step_import(s, rng, 4, "t0", "upsert", True, np.arange(1500, 3600)))
    add(lambda s: bad_import(s, rng, 5, "t0"))
    add(lambda s: step_import(s, rng, 6, "t1", "append", False, np.arange(1800)))
    add(lambda s: delete_rows(s, rng, 7, "t0"))
    add(lambda s: Step("drop t1", lambda life: life.db.drop_table("t1"), s.with_table("t1",
                                                                                      None)))
    add(lambda s: step_import(s, rng, 8, "t2", "create", False, np.arange(3000)))
    add(checkpoint_step)
    add(lambda s: step_import(s, rng, 9, "t0", "replace", True, np.arange(2200)))
    add(lambda s: step_import(s, rng, 10, "t1", "replace", True, np.arange(1200)))
    add(lambda s: Step("compact t0", lambda life: life.db.table("t0").compact(), s))
    add(lambda s: step_import(s, rng, 11, "t2", "append", False, np.arange(2000)))
    return steps


def test_a_power_cut_at_every_nth_operation_of_an_import_workload(tmp_path: Path) -> None:
    counting = Life(tmp_path / "count", FaultyFileSystem(), QUIET)
    _, was_cut, done = live(counting, iter(sweep_workload(random.Random(1))), None)
    assert not was_cut and len(done) == 15
    total = counting.fs.operations - counting.opened_at  # the work and the close
    work = counting.worked_at - counting.opened_at
    assert work > 60
    rng = random.Random(20261207)
    outcomes = Outcomes()
    for n in range(1, total + 1, SWEEP_STRIDE):
        directory = tmp_path / f"db{n}"
        steps = sweep_workload(random.Random(1))
        life = Life(directory, FaultyFileSystem(), QUIET)
        in_flight, was_cut, done = live(life, iter(steps), n)
        outcomes.cuts_during_work += was_cut
        acked = done[-1].after if done else State()
        model = ["prefix", "independent"][n // SWEEP_STRIDE % 2]
        where = f"cut at operation {n} of {total} ({model}), after {len(done)} steps"
        state = recover(directory, life.fs, rng, model, acked, in_flight, QUIET, outcomes,
                        where)
        write_more_and_reread(directory, state, rng, 100, QUIET)
        shutil.rmtree(directory)
    print(f"\nsweep of {total} operations ({work} before the close): {outcomes}")  # -s
    # Every cut before the close interrupts the work, but one: a failure to publish
    # the last commit's LSN to reader processes is only logged.
    assert outcomes.cuts_during_work >= len(range(1, work + 1, SWEEP_STRIDE)) - 1, outcomes
    assert outcomes.extent_chunks_seen > 0


# -- I/O errors ----------------------------------------------------------------------

ERRNO = {"eio": errno.EIO, "enospc": errno.ENOSPC, "torn": errno.EIO}


def names_the_fault(error: BaseException, code: int) -> bool:
    """The error is the injected ``OSError``, or an engine error that says it."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno == code and \
                "injected fault" in str(seen) and seen.filename:
            return True
        if isinstance(seen, cm.Error) and "injected fault" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def allocated_end(db: cm.Database) -> int:
    """Pages in use: allocated and not free (after a reopen that replayed the WAL,
    the allocated end moves to the file's size, the rest free but protected until
    the next checkpoint)."""
    stats = db.stats()
    return int(stats["data_pages_used"]) - int(stats["data_pages_free"])


def run_step(life: Life, make: Callable[[], Step]) -> State:
    """Run a step without faults; a database whose write-ahead log failed earlier is
    reopened first (as the engine asks). Returns the state after it."""
    assert life.db is not None
    step = make()
    try:
        step.run(life)
    except cm.DurabilityError:
        life.close_quietly()
        life.fs = FaultyFileSystem()
        life.open()
        step = make()
        step.run(life)
    return step.after


def io_base(life: Life) -> State:
    """A database with imported, checkpointed and replayed-only extents."""
    rng = random.Random(3)
    life.open()
    state = State()
    for make in (lambda s: step_import(s, rng, 1, "t0", "create", True, np.arange(3000)),
                 lambda s: step_import(s, rng, 2, "t1", "create", False, np.arange(2000)),
                 lambda s: kv_step(s, rng, 3),
                 checkpoint_step,
                 lambda s: step_import(s, rng, 4, "t0", "upsert", True, np.arange(2000, 4100))):
        step = make(state)
        step.run(life)
        state = step.after
    return state


def io_victim(state: State, version: int) -> Step:
    """The import whose operations fail: 2,600 new rows into the keyed table."""
    return step_import(state, random.Random(version), version, "t0", "append", True,
                       np.arange(5000, 7600))


def io_more(state: State, version: int) -> Step:
    return step_import(state, random.Random(version), version, "t2", "create", False,
                       np.arange(2500))


def count_victim_operations(directory: Path, kinds: frozenset[str] | None) -> tuple[int, int]:
    """Operations (of ``kinds``) of the import and the checkpoint after it, and the
    pages the import takes."""
    life = Life(directory, FaultyFileSystem(), QUIET)
    state = io_base(life)
    assert life.db is not None
    end = allocated_end(life.db)
    before = life.fs.operations_by_kind
    io_victim(state, 10).run(life)
    pages = allocated_end(life.db) - end
    life.db.checkpoint()
    after = life.fs.operations_by_kind
    life.close()
    return sum(after[k] - before[k] for k in after if kinds is None or k in kinds), pages


def reopen(life: Life) -> cm.Database:
    """Close a database that may have failed and open it again (no faults)."""
    life.close_quietly()
    life.fs = FaultyFileSystem()
    return life.open()


@pytest.mark.parametrize("kind", ["eio", "enospc", "torn"])
def test_failing_every_nth_operation_of_an_import_and_its_checkpoint(tmp_path: Path,
                                                                     kind: str) -> None:
    kinds = frozenset({"pwrite"}) if kind == "torn" else None
    total, import_pages = count_victim_operations(tmp_path / "count", kinds)
    assert total > (5 if kind == "torn" else 10) and import_pages >= 3 * 4
    rng = random.Random(kind)
    seen = {"import failed": 0, "import acknowledged": 0, "checkpoint failed": 0,
            "reopened after the log failed": 0}
    for n in range(1, total + 1):
        directory = tmp_path / f"db{n}"
        life = Life(directory, FaultyFileSystem(), QUIET)
        base = io_base(life)
        assert life.db is not None
        end = allocated_end(life.db)
        life.fs.fail_at(n, kinds, fail_with=ERRNO[kind],
                        torn_bytes=rng.randrange(1, 40_000) if kind == "torn" else None)
        acked = base
        try:
            victim = io_victim(base, 10)
            victim.run(life)
            acked = victim.after
            seen["import acknowledged"] += 1
        except (OSError, cm.Error) as e:
            assert names_the_fault(e, ERRNO[kind]), f"operation {n}: unclear error {e!r}"
            seen["import failed"] += 1
            if isinstance(e, cm.DurabilityError):  # the WAL failed: reopen, as it says
                seen["reopened after the log failed"] += 1
                reopen(life)
                assert life.db is not None
                life.db.checkpoint()  # pages freed by the replay wait for a checkpoint
            assert life.db is not None
            # All or nothing: the database is as before the import ...
            check(life.db, [base], f"operation {n}: after the failed import")
            # ... and importing again reuses the failed import's pages.
            victim = io_victim(base, 10)
            victim.run(life)
            acked = victim.after
            # (+ 8: the pages of the run and catalog a checkpoint after a reopen wrote)
            assert allocated_end(life.db) - end <= import_pages + 8, \
                f"operation {n}: the failed import's pages were not reused"
        try:
            life.db.checkpoint()
        except (OSError, cm.Error) as e:
            assert names_the_fault(e, ERRNO[kind]), f"operation {n}: unclear error {e!r}"
            seen["checkpoint failed"] += 1
        assert life.db is not None
        check(life.db, [acked], f"operation {n}: before writing more")
        # Write more (reusing what the failures freed), stop without a checkpoint,
        # and recover: the WAL replays onto whatever checkpoint the file holds.
        acked = run_step(life, lambda state=acked: io_more(state, 11))
        life.close_quietly()
        with cm.connect(directory, **QUIET) as db:
            check(db, [acked], f"operation {n}: reopened")
        write_more_and_reread(directory, acked, rng, 20, QUIET)
        shutil.rmtree(directory)
    assert seen["import failed"] > 3 and seen["checkpoint failed"] > 3, seen
    assert seen["reopened after the log failed"] >= 1, seen


def test_many_failed_imports_do_not_grow_the_data_file(tmp_path: Path) -> None:
    directory = tmp_path / "db"
    counting = Life(tmp_path / "count", FaultyFileSystem(), QUIET)
    counting_state = io_base(counting)
    assert counting.db is not None
    before = counting.fs.operations_by_kind
    end = allocated_end(counting.db)
    io_victim(counting_state, 10).run(counting)
    import_pages = allocated_end(counting.db) - end
    after = counting.fs.operations_by_kind
    counting.close()
    # The import's extent writes, their sync, and its WAL write and sync (the last
    # pwrite publishes the commit's LSN to reader processes; a failure there is logged).
    failing = after["pwrite"] + after["datasync"] - before["pwrite"] - before["datasync"] - 1
    life = Life(directory, FaultyFileSystem(), QUIET)
    base = io_base(life)
    assert life.db is not None
    start = allocated_end(life.db)
    ends = []
    reopens = 0
    rng = random.Random(5)
    for i in range(3 * failing):
        code = rng.choice([errno.EIO, errno.ENOSPC])
        life.fs.fail_at(1 + i % failing, {"pwrite", "datasync"}, fail_with=code,
                        torn_bytes=rng.choice([None, 1000]))
        with pytest.raises((OSError, cm.Error)) as failure:
            io_victim(base, 10 + i).run(life)
        assert names_the_fault(failure.value, code), repr(failure.value)
        if isinstance(failure.value, cm.DurabilityError):
            life.close_quietly()
            life.fs = FaultyFileSystem()
            life.open()
            reopens += 1
        assert life.db is not None
        ends.append(allocated_end(life.db))
    # Every failed import reused the pages of the one before (or, after a reopen,
    # the pages no checkpoint and no replayed commit names).
    assert max(ends) - start <= import_pages, (start, import_pages, ends)
    check(life.db, [base], "after the failed imports")
    # A reopen that replayed the WAL keeps every page the file holds until the next
    # checkpoint (a dropped extent may still be read), so new extents go past the
    # file's end: at most one more 64 MiB growth step per such reopen.
    assert os.path.getsize(directory / "data.pages") <= (1 + reopens) * (64 << 20)
    victim = io_victim(base, 99)
    victim.run(life)
    assert allocated_end(life.db) - start <= import_pages
    life.close()
    with cm.connect(directory, **QUIET) as db:
        check(db, [victim.after], "reopened")


def test_an_import_that_cannot_grow_the_data_file_fails_cleanly(tmp_path: Path) -> None:
    life = Life(tmp_path / "db", FaultyFileSystem(), QUIET)
    db = life.open()
    life.fs.fail_at(1, {"truncate"}, fail_with=errno.ENOSPC)  # growing the data file
    rows, _ = make_rows(np.arange(3000), 1)
    with pytest.raises(cm.DiskFullError, match="import ran out of disk space") as failure:
        db.import_arrow("t0", rows, primary_key="id")
    cause = failure.value.__cause__
    assert isinstance(cause, OSError) and cause.errno == errno.ENOSPC
    assert names_the_fault(cause, errno.ENOSPC)
    assert db.tables() == []
    step = step_import(State(), random.Random(1), 1, "t0", "create", True, np.arange(3000))
    step.run(life)
    check(db, [step.after])
    life.close()
    with cm.connect(tmp_path / "db", **QUIET) as db:
        check(db, [step.after], "reopened")


def test_writing_after_a_failed_meta_sync_keeps_the_database_readable(tmp_path: Path) -> None:
    """``write_meta_slot`` writes the other meta slot and fsyncs it. If the fsync
    fails, the checkpoint counts as failed, but the slot's bytes may be in the file
    (the fault layer, like Linux after a failed fsync, keeps them), so the next open
    may read that checkpoint: its run and catalog pages must not be handed out again
    (an import would write its extents over them)."""
    path = tmp_path / "db"
    fs = FaultyFileSystem()
    db = cm.connect(path, create=True, file_system=fs, **QUIET)
    db.import_arrow("a", make_rows(np.arange(5000), 1)[0])
    db.checkpoint()
    db.import_arrow("a", make_rows(np.arange(5000, 10_000), 2)[0], mode="append")
    fs.fail_at(1, {"sync"})  # the only fsync of a checkpoint: the meta slot's
    with pytest.raises(OSError, match=r"colibri\.meta"):
        db.checkpoint()
    db.import_arrow("b", make_rows(np.arange(20_000), 3)[0])  # acknowledged
    db.close()  # no checkpoint at close (QUIET), like a crash here
    with cm.connect(path, **QUIET) as db:
        assert db.table("a").count() == 10_000
        assert db.table("b").count() == 20_000
