"""Parquet in and out: ``db.import_parquet`` (a file, a list of files, a directory
or a hive-partitioned dataset, read through ``pyarrow.dataset`` as a stream) and
``table.to_parquet`` / ``table.to_dataset`` (written as a stream of batches)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from ..errors import SchemaError
from .importer import ImportResult, import_arrow
from .progress import Progress

if TYPE_CHECKING:
    from ..database import Database
    from ..tables.table import Table

PathLike = str | os.PathLike[str]
READ_BATCH_ROWS = 65536
"""Rows per batch read from Parquet (memory in flight is a few batches)."""


def open_dataset(source: PathLike | Sequence[PathLike],
                 partitioning: str | None = "hive") -> ds.Dataset:
    """The Parquet dataset at ``source`` (a missing path or a file that is not
    Parquet raises an error naming it)."""
    paths = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    if not paths:
        raise ValueError("import_parquet needs at least one file")
    for path in paths:
        if not Path(path).exists():
            raise FileNotFoundError(f"no such Parquet file or directory: {os.fspath(path)}")
    files = [os.fspath(p) for p in paths]
    if len(files) == 1 and Path(files[0]).is_file():
        # One file is one file's columns (as pq.read_table reads it): key=value
        # directories above it are not partitions of a dataset the caller named.
        partitioning = None
    try:
        return ds.dataset(files[0] if len(files) == 1 else files, format="parquet",
                          partitioning=partitioning)
    except (pa.ArrowInvalid, OSError) as e:
        raise SchemaError(f"cannot read {', '.join(files)} as Parquet: {e}") from None


def import_parquet(db: Database, name: str, source: PathLike | Sequence[PathLike], *,
                   columns: Sequence[str] | None = None,
                   primary_key: str | Sequence[str] | None = None, mode: str = "create",
                   partitioning: str | None = "hive", progress: bool = False) -> ImportResult:
    """Import the Parquet data at ``source`` (``columns``: only these) into table
    ``name``, streaming; the modes are those of :func:`.importer.import_arrow`."""
    dataset = open_dataset(source, partitioning)
    if columns is not None:
        missing = [c for c in columns if c not in dataset.schema.names]
        if missing:
            raise SchemaError(f"the Parquet data has no column {missing[0]!r} (it has "
                              f"{', '.join(dataset.schema.names)})")
    try:
        # One file read ahead at a time (pyarrow's default of 4 multiplies the
        # memory a large dataset's import holds, for no gain in speed here).
        scanner = dataset.scanner(columns=None if columns is None else list(columns),
                                  batch_size=READ_BATCH_ROWS, use_threads=True,
                                  fragment_readahead=1)
        total = dataset.count_rows() if progress else None
        return import_arrow(db, name, scanner.to_reader(), primary_key=primary_key,
                            mode=mode, progress=progress, total_rows=total)
    except pa.ArrowInvalid as e:
        raise SchemaError(f"reading the Parquet data at {source}: {e}") from None


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A path beside ``path`` (``path.partial``) to write a file to: renamed over
    ``path`` when the block ends, removed if it raises, so a failed export leaves
    no partial file (and an older file at ``path`` stays as it was)."""
    partial = path.with_name(path.name + ".partial")
    try:
        yield partial
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def to_parquet(table: Table, path: PathLike, *, columns: Sequence[str] | None = None,
               filter: Any = None, compression: str = "snappy",
               row_group_size: int = 1 << 20, progress: bool = False) -> int:
    """Write the rows of a snapshot of ``table`` to the Parquet file ``path``;
    returns the number of rows. The file is written beside its final name and
    renamed into place, so a failed export leaves no partial file."""
    reader = table.to_arrow_reader(READ_BATCH_ROWS, columns, filter)
    with replacing(Path(path)) as partial, \
            Progress(f"export {table.name}", None, progress) as counter, \
            pq.ParquetWriter(partial, reader.schema, compression=compression) as writer:
        # Batches are gathered (views, no copies) into row groups of
        # row_group_size rows: a row group per batch makes files bigger and
        # slower to write and to read.
        pending: list[pa.RecordBatch] = []
        pending_rows = 0
        for batch in reader:
            pending.append(batch)
            pending_rows += batch.num_rows
            counter.add(batch.num_rows, batch.nbytes)
            if pending_rows >= row_group_size:
                writer.write_table(pa.Table.from_batches(pending, reader.schema),
                                   row_group_size=row_group_size)
                pending, pending_rows = [], 0
        if pending:
            writer.write_table(pa.Table.from_batches(pending, reader.schema),
                               row_group_size=row_group_size)
    return counter.rows


def to_dataset(table: Table, base_dir: PathLike, *, partitioning: Sequence[str] = (),
               columns: Sequence[str] | None = None, filter: Any = None,
               existing_data_behavior: str = "error") -> None:
    """Write the rows of a snapshot of ``table`` as a Parquet dataset under
    ``base_dir``, in hive-style directories of the ``partitioning`` columns
    (``pyarrow.dataset.write_dataset``, streaming)."""
    schema = table.schema
    missing = [c for c in partitioning if c not in schema.names]
    if missing:
        raise SchemaError(f"table {table.name!r} has no column {missing[0]!r} to "
                          "partition by")
    reader = table.to_arrow_reader(READ_BATCH_ROWS, columns, filter)
    ds.write_dataset(reader, base_dir, format="parquet",
                     partitioning=list(partitioning) or None,
                     partitioning_flavor="hive" if partitioning else None,
                     existing_data_behavior=existing_data_behavior)
