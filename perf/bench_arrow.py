"""Arrow benchmarks: Arrow and Parquet import into durable tables and export back,
against DuckDB, pyarrow and an Arrow IPC file, with the peak memory of each.

Table as the issue's anchors: ``id int64, x float64, y int32, ts timestamp[us],
s string`` (``s``: 4 to 20 random lowercase letters; about 440 MB of Arrow data at
10,000,000 rows), generated with numpy from a fixed seed. The row count is
``COLIBRI_BENCH_ARROW_ROWS`` (default 10,000,000, the issue's size). Lines:

- ``db.import_arrow`` into a fresh database (durability ``"full"``: committed and
  synced when it returns), without a primary key, against DuckDB importing the same
  Arrow table into a file database (``CREATE TABLE t AS SELECT * FROM arrow_tbl``,
  ``CHECKPOINT``); with ``primary_key="id"``, against DuckDB loading it into a table
  with ``PRIMARY KEY (id)``; and, as a goal, the keyless import against writing the
  same table as an Arrow IPC file and syncing it (the physical floor);
- ``db.import_parquet`` of a Parquet file against DuckDB ``CREATE TABLE t AS SELECT *
  FROM read_parquet(...)`` + ``CHECKPOINT``;
- ``table.to_arrow_table()`` of the keyed table after a checkpoint, against DuckDB
  ``SELECT * FROM t`` to an Arrow table, from its keyed file database (both made by
  the keyed imports of the memory runs below);
- ``table.to_parquet`` of the same table against ``pyarrow.parquet.write_table`` of
  the rows in memory (snappy both);
- the memory each of those calls needs (informational): every call runs once in a
  fresh child process (``python -m perf.bench_arrow --child OP SOURCE TARGET``) that
  opens its input (the rows come from an Arrow IPC file, memory-mapped, the same for
  ours and the anchor), resets its peak RSS (``/proc/self/clear_refs``), makes the
  call and reports ``ru_maxrss`` minus its RSS just before the call. These runs come
  first and also check that ours and the anchor give the same answers (row count,
  sums of ``x`` and ``y``, bytes of ``s``) at full size.

Timed calls that write get a fresh database or file per round (set-up, check and
clean-up untimed: :func:`perf.bench_kv.best_fresh_times`); round 0, the warm-up, is a
200,000-row slice for the imports. DuckDB runs with ``SET threads=2``.

Run as ``python -m perf.bench_arrow`` from the repository root; prints JSON lines.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import colibri_mm as cm
from perf.bench_kv import MB, Scratch, Trial, best_fresh_times, filesystem, proc_status_mb
from perf.harness import best_times, log, report

SEED = 20261206
ROWS = int(os.environ.get("COLIBRI_BENCH_ARROW_ROWS", "10000000"))
WARM_ROWS = min(ROWS, 200_000)
"""Rows imported in the warm-up round (Numba kernels loaded, code paths faulted in)."""
ROOT = Path(__file__).resolve().parent.parent
DUCKDB = f"DuckDB {duckdb.__version__}, SET threads=2, file database"
PYARROW = f"pyarrow {pa.__version__}"
SCHEMA_SQL = "id BIGINT PRIMARY KEY, x DOUBLE, y INTEGER, ts TIMESTAMP, s VARCHAR"
"""The keyed DuckDB anchor's table."""


class Answer(NamedTuple):
    """What ours and the anchor must agree on for a table of rows."""

    rows: int
    sum_x: float
    sum_y: int
    s_bytes: int


def check(ok: bool, message: str) -> None:
    """Stop the run (no figure is reported) when a result is wrong."""
    if not ok:
        raise RuntimeError(f"bench_arrow check failed: {message}")


def check_answer(got: Answer, expected: Answer, what: str) -> None:
    """``got`` is ``expected`` (``sum_x`` to rounding)."""
    check(got.rows == expected.rows and got.sum_y == expected.sum_y
          and got.s_bytes == expected.s_bytes
          and abs(got.sum_x - expected.sum_x) < 1e-6 * max(expected.rows, 1),
          f"{what}: got {got}, expected {expected}")


def make_rows(rng: np.random.Generator, n: int) -> pa.Table:
    """The anchor table's rows: unique ids in random order, and strings of 4 to 20
    random letters built as Arrow buffers (no Python object per row)."""
    lengths = rng.integers(4, 21, n, dtype=np.int32)
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(lengths, out=offsets[1:])
    letters = rng.integers(ord("a"), ord("z") + 1, int(offsets[-1]), dtype=np.uint8)
    strings = pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(letters))
    return pa.table({
        "id": pa.array(rng.permutation(n), pa.int64()),
        "x": pa.array(rng.random(n), pa.float64()),
        "y": pa.array(rng.integers(-1000, 1000, n, dtype=np.int32), pa.int32()),
        "ts": pa.array(rng.integers(0, 2**40, n), pa.timestamp("us")),
        "s": strings,
    })


def answer_of(table: pa.Table) -> Answer:
    """The :class:`Answer` of an Arrow table."""
    def total(array: pa.ChunkedArray) -> int | float:
        value = pc.sum(array).as_py()
        return 0 if value is None else value

    return Answer(table.num_rows, float(total(table.column("x"))),
                  int(total(table.column("y"))), int(total(pc.binary_length(table.column("s")))))


def ours_answer(db: cm.Database) -> Answer:
    """The :class:`Answer` of our table ``t``."""
    table = db.table("t")
    answer = answer_of(table.to_arrow_table())
    check(table.count() == answer.rows, "table.count() disagrees with the scan")
    return answer


def duck_answer(con: duckdb.DuckDBPyConnection) -> Answer:
    """The :class:`Answer` of DuckDB's table ``t``."""
    row = con.execute("SELECT count(*), coalesce(sum(x), 0), coalesce(sum(y), 0), "
                      "coalesce(sum(strlen(s)), 0) FROM t").fetchall()[0]
    return Answer(int(row[0]), float(row[1]), int(row[2]), int(row[3]))


def duck_connect(path: Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(path, read_only=read_only)
    con.execute("SET threads=2")
    return con


def duck_load_arrow(con: duckdb.DuckDBPyConnection, rows: pa.Table, *, keyed: bool) -> None:
    """DuckDB's import of ``rows``: a new table, then a checkpoint."""
    con.register("arrow_tbl", rows)
    if keyed:
        con.execute(f"CREATE TABLE t ({SCHEMA_SQL})")
        con.execute("INSERT INTO t SELECT * FROM arrow_tbl")
    else:
        con.execute("CREATE TABLE t AS SELECT * FROM arrow_tbl")
    con.execute("CHECKPOINT")
    con.unregister("arrow_tbl")


def duck_load_parquet(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    con.execute("CREATE TABLE t AS SELECT * FROM read_parquet(?)", [str(path)])
    con.execute("CHECKPOINT")


def write_ipc(rows: pa.Table, path: Path) -> None:
    """``rows`` as an Arrow IPC file, synced (file and directory)."""
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, rows.schema) as writer:
        writer.write_table(rows)
    for name, flags in ((path, os.O_RDONLY), (path.parent, os.O_RDONLY | os.O_DIRECTORY)):
        fd = os.open(name, flags)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_ipc(path: Path) -> pa.Table:
    """The rows of an Arrow IPC file, memory-mapped (no copy)."""
    return pa.ipc.open_file(pa.memory_map(str(path))).read_all()


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


# -- the timed lines --------------------------------------------------------------------

def ours_import(scratch: Scratch, call: Callable[[cm.Database, int], object],
                expected: Callable[[int], Answer]) -> Callable[[int], Trial]:
    """Set-up of one round of our import: a fresh database; ``call(db, r)`` is timed."""
    def setup(r: int) -> Trial:
        path = scratch.new("ours")
        db = cm.connect(path, create=True, checkpoint_on_close=False)

        def finish() -> None:
            check_answer(ours_answer(db), expected(r), "our import")
            db.close()
            remove(path)

        return lambda: call(db, r), finish
    return setup


def duck_import(scratch: Scratch, call: Callable[[duckdb.DuckDBPyConnection, int], object],
                expected: Callable[[int], Answer]) -> Callable[[int], Trial]:
    """Set-up of one round of DuckDB's import into a fresh file database."""
    def setup(r: int) -> Trial:
        path = scratch.new("duckdb.db")
        con = duck_connect(path)

        def finish() -> None:
            check_answer(duck_answer(con), expected(r), "DuckDB's import")
            con.close()
            remove(path)
            remove(path.with_name(path.name + ".wal"))

        return lambda: call(con, r), finish
    return setup


def round_inputs(rows: pa.Table, warm: pa.Table
                 ) -> tuple[Callable[[int], pa.Table], Callable[[int], Answer]]:
    """The table round ``r`` imports (``warm`` in the untimed round 0, ``rows`` after)
    and the answer it must give."""
    answers = {0: answer_of(warm)}
    full = answer_of(rows)
    return (lambda r: warm if r == 0 else rows), (lambda r: answers.get(r, full))


def bench_import_arrow(rows: pa.Table, warm: pa.Table, scratch: Scratch,
                       repeat: int = 2) -> None:
    data, expected = round_inputs(rows, warm)

    def ipc(r: int) -> Trial:
        path = scratch.new("rows.arrow")

        def finish() -> None:
            check_answer(answer_of(read_ipc(path)), expected(r), "the IPC file")
            remove(path)

        return lambda: write_ipc(data(r), path), finish

    ours = ours_import(scratch, lambda db, r: db.import_arrow("t", data(r)), expected)
    duck = duck_import(scratch, lambda con, r: duck_load_arrow(con, data(r), keyed=False),
                       expected)
    ours_s, duck_s, ipc_s = best_fresh_times([ours, duck, ipc], repeat)
    nbytes = rows.nbytes
    measures = (f"db.import_arrow('t', table) of {ROWS:,} rows ({nbytes / MB:,.0f} MB of "
                "Arrow data) without a primary key into a fresh database, durability=full "
                "(committed and synced when it returns)")
    report("arrow.import_arrow", measures, "rows/s", ROWS / ours_s,
           anchor=f"{DUCKDB}, CREATE TABLE t AS SELECT * FROM arrow_tbl, CHECKPOINT",
           anchor_value=ROWS / duck_s, target_ratio=2.0, repeat=repeat)
    report("arrow.import_arrow vs IPC file", f"goal (not a target): {measures}", "rows/s",
           ROWS / ours_s, anchor=f"{PYARROW}, the same table written with pa.ipc.new_file "
           "and fsync'd (the physical floor)", anchor_value=ROWS / ipc_s,
           target_ratio=0.5, repeat=repeat)


def bench_import_arrow_keyed(rows: pa.Table, warm: pa.Table, scratch: Scratch,
                             repeat: int = 2) -> None:
    data, expected = round_inputs(rows, warm)

    ours = ours_import(scratch, lambda db, r: db.import_arrow("t", data(r), primary_key="id"),
                       expected)
    duck = duck_import(scratch, lambda con, r: duck_load_arrow(con, data(r), keyed=True),
                       expected)
    ours_s, duck_s = best_fresh_times([ours, duck], repeat)
    report("arrow.import_arrow keyed", f"db.import_arrow('t', table, primary_key='id') of "
           f"{ROWS:,} rows into a fresh database, durability=full (unique keys checked, "
           "primary key index written)", "rows/s", ROWS / ours_s,
           anchor=f"{DUCKDB}, CREATE TABLE t ({SCHEMA_SQL}), INSERT INTO t SELECT * FROM "
           "arrow_tbl, CHECKPOINT", anchor_value=ROWS / duck_s, target_ratio=2.0,
           repeat=repeat)


def bench_import_parquet(rows: pa.Table, source: Path, warm_source: Path, scratch: Scratch,
                         repeat: int = 2) -> None:
    answers = {0: answer_of(pq.read_table(warm_source))}
    full = answer_of(rows)

    def path(r: int) -> Path:
        return warm_source if r == 0 else source

    def expected(r: int) -> Answer:
        return answers.get(r, full)

    ours = ours_import(scratch, lambda db, r: db.import_parquet("t", path(r)), expected)
    duck = duck_import(scratch, lambda con, r: duck_load_parquet(con, path(r)), expected)
    ours_s, duck_s = best_fresh_times([ours, duck], repeat)
    report("arrow.import_parquet", f"db.import_parquet('t', path) of one Parquet file "
           f"({source.stat().st_size / MB:,.0f} MB, snappy, {ROWS:,} rows) without a primary "
           "key into a fresh database, durability=full", "rows/s", ROWS / ours_s,
           anchor=f"{DUCKDB}, CREATE TABLE t AS SELECT * FROM read_parquet(path), CHECKPOINT",
           anchor_value=ROWS / duck_s, target_ratio=1.5, repeat=repeat)


def bench_to_arrow(ours_path: Path, duck_path: Path, expected: Answer,
                   repeat: int = 5) -> None:
    db = cm.connect(ours_path)
    con = duck_connect(duck_path, read_only=True)
    try:
        db.checkpoint()
        table = db.table("t")

        def ours() -> pa.Table:
            return table.to_arrow_table()

        def duck() -> pa.Table:
            return con.sql("SELECT * FROM t").to_arrow_table()

        check_answer(answer_of(ours()), expected, "our to_arrow_table")
        check_answer(answer_of(duck()), expected, "DuckDB's Arrow table")
        ours_s, duck_s = best_times([ours, duck], repeat)
    finally:
        con.close()
        db.close()
    report("arrow.to_arrow_table", f"table.to_arrow_table() of all columns of the {ROWS:,}-row "
           "keyed table, after a checkpoint (columns point into the mapped file; a chunk's "
           "page CRCs are checked on its first read in a process, here the untimed warm-up)",
           "rows/s",
           ROWS / ours_s, anchor=f"{DUCKDB}, SELECT * FROM t .to_arrow_table(), the same rows",
           anchor_value=ROWS / duck_s, target_ratio=3.0, repeat=repeat)


def bench_to_parquet(rows: pa.Table, ours_path: Path, scratch: Scratch,
                     repeat: int = 2) -> None:
    db = cm.connect(ours_path)
    expected = answer_of(rows)
    try:
        table = db.table("t")

        def written(path: Path, what: str) -> Callable[[], None]:
            def finish() -> None:
                check_answer(answer_of(pq.read_table(path)), expected, what)
                remove(path)
            return finish

        def ours(r: int) -> Trial:
            path = scratch.new("ours.parquet")
            return lambda: table.to_parquet(path), written(path, "our Parquet file")

        def anchor(r: int) -> Trial:
            path = scratch.new("pyarrow.parquet")
            return lambda: pq.write_table(rows, path), written(path, "pyarrow's Parquet file")

        ours_s, anchor_s = best_fresh_times([ours, anchor], repeat)
    finally:
        db.close()
    report("arrow.to_parquet", f"table.to_parquet(path) of the {ROWS:,}-row keyed table "
           "(snappy), after a checkpoint", "rows/s", ROWS / ours_s,
           anchor=f"{PYARROW}, pyarrow.parquet.write_table of the same rows held in memory "
           "(snappy)", anchor_value=ROWS / anchor_s, target_ratio=1.0, repeat=repeat)


# -- memory: one call per child process ----------------------------------------------------

def child_import_arrow(source: Path, target: Path, keyed: bool) -> Callable[[], Answer]:
    rows = read_ipc(source)
    start_measure()
    db = cm.connect(target, create=True)
    db.import_arrow("t", rows, primary_key="id" if keyed else None)
    return finish_measure(lambda: ours_answer(db), db.close)


def child_duck_arrow(source: Path, target: Path, keyed: bool) -> Callable[[], Answer]:
    rows = read_ipc(source)
    start_measure()
    con = duck_connect(target)
    duck_load_arrow(con, rows, keyed=keyed)
    return finish_measure(lambda: duck_answer(con), con.close)


def child_import_parquet(source: Path, target: Path) -> Callable[[], Answer]:
    start_measure()
    db = cm.connect(target, create=True)
    db.import_parquet("t", source)
    return finish_measure(lambda: ours_answer(db), db.close)


def child_duck_parquet(source: Path, target: Path) -> Callable[[], Answer]:
    start_measure()
    con = duck_connect(target)
    duck_load_parquet(con, source)
    return finish_measure(lambda: duck_answer(con), con.close)


def child_to_arrow(source: Path, target: Path) -> Callable[[], Answer]:
    db = cm.connect(source)
    table = db.table("t")
    start_measure()
    result = table.to_arrow_table()
    return finish_measure(lambda: answer_of(result), db.close)


def child_duck_to_arrow(source: Path, target: Path) -> Callable[[], Answer]:
    con = duck_connect(source, read_only=True)
    start_measure()
    result = con.sql("SELECT * FROM t").to_arrow_table()
    return finish_measure(lambda: answer_of(result), con.close)


def child_to_parquet(source: Path, target: Path) -> Callable[[], Answer]:
    db = cm.connect(source)
    table = db.table("t")
    start_measure()
    table.to_parquet(target)
    return finish_measure(lambda: answer_of(pq.read_table(target)), db.close)


def child_write_parquet(source: Path, target: Path) -> Callable[[], Answer]:
    rows = read_ipc(source)
    start_measure()
    pq.write_table(rows, target)
    return finish_measure(lambda: answer_of(pq.read_table(target)), lambda: None)


CHILD_CALLS: dict[str, Callable[[Path, Path], Callable[[], Answer]]] = {
    "import-arrow": lambda s, t: child_import_arrow(s, t, keyed=False),
    "duckdb-arrow": lambda s, t: child_duck_arrow(s, t, keyed=False),
    "import-arrow-keyed": lambda s, t: child_import_arrow(s, t, keyed=True),
    "duckdb-arrow-keyed": lambda s, t: child_duck_arrow(s, t, keyed=True),
    "import-parquet": child_import_parquet,
    "duckdb-parquet": child_duck_parquet,
    "to-arrow": child_to_arrow,
    "duckdb-to-arrow": child_duck_to_arrow,
    "to-parquet": child_to_parquet,
    "pyarrow-write-parquet": child_write_parquet,
}
"""The calls a child process can measure: each opens its input, calls
:func:`start_measure`, makes the call and returns :func:`finish_measure`'s result."""

_measure: dict[str, float] = {}


def start_measure() -> None:
    """Reset the peak RSS of this process to its current RSS and start the clock."""
    Path("/proc/self/clear_refs").write_text("5")
    _measure["before_mb"] = proc_status_mb("VmRSS")
    _measure["start"] = time.perf_counter()


def finish_measure(answer: Callable[[], Answer],
                   close: Callable[[], None]) -> Callable[[], Answer]:
    """Note the peak RSS and time since :func:`start_measure`; returns the call that
    computes the answer afterwards (then closes)."""
    _measure["seconds"] = time.perf_counter() - _measure["start"]
    _measure["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB

    def answer_and_close() -> Answer:
        try:
            return answer()
        finally:
            close()
    return answer_and_close


def child_main(call: str, source: Path, target: Path) -> None:
    """Make one call (see :data:`CHILD_CALLS`) and print what it took as a JSON line."""
    answer = CHILD_CALLS[call](source, target)()
    print(json.dumps({"before_mb": _measure["before_mb"], "peak_mb": _measure["peak_mb"],
                      "seconds": _measure["seconds"], "answer": answer._asdict()}), flush=True)


class ChildRun(NamedTuple):
    added_mb: float
    """Peak RSS during the call minus RSS just before it."""
    before_mb: float
    seconds: float
    answer: Answer


def run_child(call: str, source: Path, target: Path) -> ChildRun:
    """Run ``call`` in a fresh child process (``python -m perf.bench_arrow --child``)."""
    out = subprocess.run([sys.executable, "-m", "perf.bench_arrow", "--child", call,
                          str(source), str(target)], cwd=ROOT, check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    result = json.loads(out.splitlines()[-1])
    return ChildRun(result["peak_mb"] - result["before_mb"], result["before_mb"],
                    result["seconds"], Answer(**result["answer"]))


MEMORY_LINES = (
    ("import_arrow", "db.import_arrow of the rows of a memory-mapped IPC file, no key",
     "import-arrow", "duckdb-arrow", "DuckDB CREATE TABLE AS + CHECKPOINT"),
    ("import_arrow keyed", "db.import_arrow(..., primary_key='id') of the same rows",
     "import-arrow-keyed", "duckdb-arrow-keyed", "DuckDB PRIMARY KEY table, INSERT + CHECKPOINT"),
    ("import_parquet", "db.import_parquet of the Parquet file", "import-parquet",
     "duckdb-parquet", "DuckDB CREATE TABLE AS SELECT * FROM read_parquet + CHECKPOINT"),
    ("to_arrow_table", "table.to_arrow_table() of the keyed table (RSS before the result "
     "is read)", "to-arrow", "duckdb-to-arrow", "DuckDB SELECT * FROM t .to_arrow_table()"),
    ("to_parquet", "table.to_parquet of the keyed table", "to-parquet",
     "pyarrow-write-parquet", "pyarrow.parquet.write_table of the memory-mapped rows"),
)
"""Per line: name, what ours does, our child call, the anchor's child call, the anchor."""


def measure_memory(ipc: Path, parquet: Path, scratch: Scratch,
                   expected: Answer) -> tuple[dict[str, ChildRun], Path, Path]:
    """Every call of :data:`MEMORY_LINES` in a child of its own, checked against
    ``expected``; returns the runs and the keyed tables the children made (ours,
    DuckDB's) for the export lines."""
    ours_keyed, duck_keyed = scratch.new("ours-keyed"), scratch.new("duckdb-keyed.db")
    plan = [
        ("import-arrow", ipc, scratch.new("ours")),
        ("duckdb-arrow", ipc, scratch.new("duckdb.db")),
        ("import-arrow-keyed", ipc, ours_keyed),
        ("duckdb-arrow-keyed", ipc, duck_keyed),
        ("import-parquet", parquet, scratch.new("ours")),
        ("duckdb-parquet", parquet, scratch.new("duckdb.db")),
        ("to-arrow", ours_keyed, scratch.new("unused")),
        ("duckdb-to-arrow", duck_keyed, scratch.new("unused")),
        ("to-parquet", ours_keyed, scratch.new("ours.parquet")),
        ("pyarrow-write-parquet", ipc, scratch.new("pyarrow.parquet")),
    ]
    runs: dict[str, ChildRun] = {}
    for call, source, target in plan:
        log(f"bench_arrow: child {call}")
        runs[call] = run_child(call, source, target)
        check_answer(runs[call].answer, expected, f"child {call}")
        if target not in (ours_keyed, duck_keyed):
            remove(target)
            remove(target.with_name(target.name + ".wal"))
    return runs, ours_keyed, duck_keyed


def report_memory(runs: dict[str, ChildRun]) -> None:
    for name, what, ours, anchor, anchor_text in MEMORY_LINES:
        mine, theirs = runs[ours], runs[anchor]
        report(f"arrow.peak RSS {name}", f"informational: peak RSS added by {what}, {ROWS:,} "
               f"rows, one run in a fresh child process (its RSS before the call: "
               f"{mine.before_mb:,.0f} MB; {mine.seconds:.1f} s)", "MB", mine.added_mb,
               anchor=f"{anchor_text}, the same way: {theirs.added_mb:,.0f} MB (RSS before "
               f"{theirs.before_mb:,.0f} MB; {theirs.seconds:.1f} s)")


def main() -> None:
    """Run every Arrow benchmark, one JSON line per measurement on stdout."""
    rng = np.random.default_rng(SEED)
    log(f"bench_arrow: making {ROWS:,} rows")
    rows = make_rows(rng, ROWS)
    warm = rows.slice(0, WARM_ROWS)
    expected = answer_of(rows)
    with tempfile.TemporaryDirectory(prefix="colibri-bench-arrow-") as tmp:
        scratch = Scratch(Path(tmp))
        fs = filesystem(scratch.root)
        log(f"bench_arrow: working in {tmp} ({fs})")
        if fs.startswith("tmpfs"):
            log("bench_arrow: warning: tmpfs makes fsync free; set TMPDIR to a real disk")
        ipc, parquet, warm_parquet = (scratch.new("rows.arrow"), scratch.new("rows.parquet"),
                                      scratch.new("warm.parquet"))
        write_ipc(rows, ipc)
        pq.write_table(rows, parquet)
        pq.write_table(warm, warm_parquet)
        log("bench_arrow: memory (and answers) of each call in a child process")
        runs, ours_keyed, duck_keyed = measure_memory(ipc, parquet, scratch, expected)
        log("bench_arrow: import_arrow")
        bench_import_arrow(rows, warm, scratch)
        log("bench_arrow: import_arrow keyed")
        bench_import_arrow_keyed(rows, warm, scratch)
        log("bench_arrow: import_parquet")
        bench_import_parquet(rows, parquet, warm_parquet, scratch)
        log("bench_arrow: to_arrow_table")
        bench_to_arrow(ours_keyed, duck_keyed, expected)
        log("bench_arrow: to_parquet")
        bench_to_parquet(rows, ours_keyed, scratch)
        report_memory(runs)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Arrow benchmarks (JSON lines on stdout).")
    parser.add_argument("--child", nargs=3, metavar=("CALL", "SOURCE", "TARGET"),
                        help="measure one call in this process (used by the benchmark "
                        f"itself): CALL is one of {', '.join(CHILD_CALLS)}")
    args = parser.parse_args()
    if args.child:
        child_main(args.child[0], Path(args.child[1]), Path(args.child[2]))
    else:
        main()
