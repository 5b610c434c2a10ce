"""Peak memory of a large Parquet import: ``db.import_parquet`` of a dataset of about
4 GB of Arrow data, in a fresh child process, with its time and WAL bytes.

A release-size measurement, not part of ``make perf``; its runs are recorded by hand
in ``perf/CAMPAIGNS.md``. The dataset has the benchmark table's schema (``id int64``
unique, in random order, ``x float64``, ``y int32``, ``ts timestamp[us]``, ``s
string`` of 4 to 20 random letters; about 44 bytes of Arrow data a row), generated
from a fixed seed one batch of :data:`BATCH_ROWS` rows at a time and streamed with a
``pyarrow.parquet.ParquetWriter`` into files of :data:`FILE_BATCHES` batches (one row
group per batch, snappy), so the generator never holds more than a batch.

Then, for each import (keyless; with ``--keyed`` also ``primary_key="id"``), a child
process (``python -m perf.import_memory --child ...``) opens a fresh database
(durability ``"full"``), imports the directory, checks the row count and prints its
figures: peak RSS (``ru_maxrss``) when the import returns and after ``close()`` (which
checkpoints), RSS before the import (interpreter, numpy, pyarrow, colibri_mm), rows,
seconds, rows/s, MB/s of Arrow data, WAL bytes written (``db.stats()``) and the size
of the database directory. Everything written under ``DIR`` is deleted at the end
unless ``--keep``.

Usage, from the repository root::

    python -m perf.import_memory DIR [--gb 4] [--keyed] [--keep]

prints one JSON line per import on stdout, progress on stderr.
"""

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import colibri_mm as cm

SEED = 20261207
BATCH_ROWS = 1_000_000
"""Rows generated, and written as one row group, at a time."""
FILE_BATCHES = 8
"""Batches per Parquet file."""
MB = 1e6
"""Bytes in a MB (decimal, like the benchmarks)."""
GB = 1e9
ROOT = Path(__file__).resolve().parent.parent
ID_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
"""Odd, so ``i * ID_MULTIPLIER mod 2**64`` is a bijection: unique ids in random order."""


def log(message: str) -> None:
    """Progress note on stderr (stdout carries only JSON lines)."""
    print(message, file=sys.stderr, flush=True)


def make_batch(rng: np.random.Generator, first: int, n: int) -> pa.Table:
    """Rows ``first`` to ``first + n`` of the dataset (ids unique across batches)."""
    with np.errstate(over="ignore"):
        ids = (np.arange(first, first + n, dtype=np.uint64) * ID_MULTIPLIER).view(np.int64)
    lengths = rng.integers(4, 21, n, dtype=np.int32)
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(lengths, out=offsets[1:])
    letters = rng.integers(ord("a"), ord("z") + 1, int(offsets[-1]), dtype=np.uint8)
    return pa.table({
        "id": pa.array(ids, pa.int64()),
        "x": pa.array(rng.random(n), pa.float64()),
        "y": pa.array(rng.integers(-1000, 1000, n, dtype=np.int32), pa.int32()),
        "ts": pa.array(rng.integers(0, 2**40, n), pa.timestamp("us")),
        "s": pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(letters)),
    })


def write_dataset(directory: Path, target_bytes: float) -> dict[str, Any]:
    """Parquet files under ``directory`` holding at least ``target_bytes`` of Arrow
    data, streamed batch by batch; returns rows, Arrow bytes, files and file bytes."""
    directory.mkdir(parents=True)
    rng = np.random.default_rng(SEED)
    rows = arrow_bytes = files = 0
    writer: pq.ParquetWriter | None = None
    start = time.perf_counter()
    try:
        while arrow_bytes < target_bytes:
            batch = make_batch(rng, rows, BATCH_ROWS)
            if rows % (BATCH_ROWS * FILE_BATCHES) == 0:
                if writer is not None:
                    writer.close()
                writer = pq.ParquetWriter(directory / f"part-{files:04d}.parquet",
                                          batch.schema, compression="snappy")
                files += 1
            assert writer is not None
            writer.write_table(batch, row_group_size=BATCH_ROWS)
            rows += batch.num_rows
            arrow_bytes += batch.nbytes
            del batch
    finally:
        if writer is not None:
            writer.close()
    file_bytes = sum(p.stat().st_size for p in directory.iterdir())
    log(f"import_memory: wrote {rows:,} rows ({arrow_bytes / GB:.2f} GB of Arrow data) as "
        f"{files} Parquet files ({file_bytes / GB:.2f} GB) in "
        f"{time.perf_counter() - start:.0f} s")
    return {"rows": rows, "arrow_bytes": arrow_bytes, "files": files,
            "parquet_bytes": file_bytes}


def rss_mb() -> float:
    """This process's resident set size now (VmRSS), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / MB
    raise RuntimeError("no VmRSS in /proc/self/status")


def peak_rss_mb() -> float:
    """This process's peak resident set size so far (``ru_maxrss``), in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB


def directory_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def child(data: Path, database: Path, keyed: bool) -> None:
    """Import ``data`` into a fresh database at ``database``; print the figures."""
    before = rss_mb()
    db = cm.connect(database, create=True)
    start = time.perf_counter()
    result = db.import_parquet("t", data, primary_key="id" if keyed else None)
    seconds = time.perf_counter() - start
    peak_import = peak_rss_mb()
    stats = db.stats()
    rows = db.table("t").count()
    if rows != result.rows:
        raise RuntimeError(f"import_memory: the table holds {rows:,} rows, the import "
                           f"read {result.rows:,}")
    start = time.perf_counter()
    db.close()
    close_seconds = time.perf_counter() - start
    print(json.dumps({
        "keyed": keyed, "rows": rows, "arrow_bytes": result.bytes, "seconds": seconds,
        "rows_per_s": rows / seconds, "mb_per_s": result.bytes / MB / seconds,
        "peak_rss_mb": peak_import, "rss_before_mb": before,
        "peak_rss_with_close_mb": peak_rss_mb(), "close_seconds": close_seconds,
        "wal_bytes_written": stats["wal_bytes_written"],
        "database_bytes": directory_bytes(database),
    }), flush=True)


def run_import(data: Path, database: Path, keyed: bool) -> dict[str, Any]:
    """:func:`child` in a fresh process; its figures."""
    command = [sys.executable, "-m", "perf.import_memory", "--child", str(data),
               str(database)] + (["--keyed"] if keyed else [])
    out = subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.PIPE,
                         text=True).stdout
    figures: dict[str, Any] = json.loads(out.splitlines()[-1])
    return figures


def main(directory: Path, gb: float, keyed: bool, keep: bool) -> None:
    """Write the dataset under ``directory``, import it (keyless, then keyed if asked)
    and print the figures of each import as a JSON line."""
    data = directory / "parquet"
    try:
        dataset = write_dataset(data, gb * GB)
        for with_key in [False, True] if keyed else [False]:
            database = directory / ("db-keyed" if with_key else "db-keyless")
            log(f"import_memory: importing {'with' if with_key else 'without'} a primary key")
            figures = run_import(data, database, with_key)
            if figures["rows"] != dataset["rows"]:
                raise RuntimeError(f"import_memory: imported {figures['rows']:,} rows of "
                                   f"{dataset['rows']:,}")
            figures.update({"files": dataset["files"],
                            "parquet_bytes": dataset["parquet_bytes"]})
            print(json.dumps(figures), flush=True)
            log(f"import_memory: {figures['rows']:,} rows in {figures['seconds']:.1f} s "
                f"({figures['rows_per_s']:,.0f} rows/s, {figures['mb_per_s']:,.0f} MB/s); "
                f"peak RSS {figures['peak_rss_mb']:,.0f} MB (with close "
                f"{figures['peak_rss_with_close_mb']:,.0f} MB, before "
                f"{figures['rss_before_mb']:,.0f} MB); WAL "
                f"{figures['wal_bytes_written'] / MB:,.1f} MB")
            if not keep:
                shutil.rmtree(database)
    finally:
        if not keep:
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description="Peak memory of db.import_parquet of a large dataset (JSON lines).")
    parser.add_argument("dir", type=Path, nargs="?", help="working directory (the dataset and the "
                        "databases go under it; must not hold them already)")
    parser.add_argument("--gb", type=float, default=4.0,
                        help="GB (10^9 bytes) of Arrow data to write (default 4)")
    parser.add_argument("--keyed", action="store_true",
                        help="also import with primary_key='id'")
    parser.add_argument("--keep", action="store_true",
                        help="keep the dataset and databases")
    parser.add_argument("--child", nargs=2, type=Path, metavar=("DATA", "DATABASE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.keyed)
    elif args.dir is None:
        parser.error("the working directory DIR is required")
    else:
        main(args.dir, args.gb, args.keyed, args.keep)
