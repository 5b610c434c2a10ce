"""Checking a whole open database: every checksum and every structural invariant
that the files let us check, with a report per table.

This module owns the invariants ``coldb check`` and ``coldb verify-backup`` test
(``docs/OPERATIONS.md``, section "Check"):

- checksums: every page of the checkpoint's sorted runs and every extent a table
  chunk names (:meth:`Database.verify`; the WAL was checked by the recovery of
  the open that the caller chose, ``absolute`` for a full check);
- space: the extents in use (runs, the catalog, the extents the catalog lists per
  run, the extents the live table chunks name) lie inside the data file and its
  allocated pages and do not overlap each other; the free extents do not overlap
  each other or anything in use; every extent a live chunk names is listed by the
  catalog or by an import replayed from the WAL;
- order and versions (MVCC): each run's keys are distinct and in byte order, the
  oldest run holds no delete markers, the checkpoint's CSN is not past the
  published one, commits replayed into memory are newer than the checkpoint and in
  commit order;
- tables: each chunk has row counts that agree with its rows and delete marks, no
  delete mark names a missing chunk, the table's row count agrees with its rows,
  and every index (the primary key and each secondary one) holds exactly one entry
  per live row, pointing at it (:func:`~colibri_mm.tables.verify.verify_table`).

Damage is reported as problems, not raised, so one report lists all of it.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import CorruptionError
from .kv.batch import Batch
from .kv.keys import TABLE_CHUNKS, prefix_end
from .kv.records import DELETE, PUT
from .kv.views import KvView
from .storage.catalog import catalog_pages
from .storage.extents import Descriptor, Extent, named_extents
from .tables import registry
from .tables.catalog import TableDef, table_part
from .tables.indexes import indexes_of
from .tables.keys import key_numbers
from .tables.rows import (
    CHUNKS,
    COUNTS,
    DELETED,
    descriptors_among,
    index_prefix,
    live_chunks,
    row_count,
)
from .tables.tail import TAIL_CHUNK
from .tables.verify import verify_table

if TYPE_CHECKING:
    from .database import Database


@dataclass
class TableCheck:
    """What the check found in one table."""

    name: str
    rows: int = 0
    """Live rows."""
    chunks: int = 0
    extents: int = 0
    """Chunks stored as extents of the data file (bulk imports)."""
    index_entries: int = 0
    """Entries of the primary key index and every secondary index."""
    problems: list[str] = field(default_factory=list)


@dataclass
class CheckReport:
    """What :func:`check_database` checked and found."""

    checksums: dict[str, int]
    """What :meth:`Database.verify` checked (runs, pages, entries, extents)."""
    data_pages: int = 0
    """Allocated pages of the data file (the checkpoint's end)."""
    free_pages: int = 0
    extents_in_use: int = 0
    tables: list[TableCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Problems outside any table."""

    @property
    def all_problems(self) -> list[str]:
        """Every problem, those of tables prefixed by the table's name."""
        return [*self.problems, *(f"table {t.name!r}: {p}" for t in self.tables
                                  for p in t.problems)]

    @property
    def ok(self) -> bool:
        """Whether nothing was found."""
        return not self.all_problems

    def to_dict(self) -> dict[str, Any]:
        """The report as plain data (for JSON)."""
        report = asdict(self)
        report["ok"] = self.ok
        return report


def check_database(db: Database) -> CheckReport:
    """Check every checksum and invariant of ``db`` (see the module docstring) in one
    snapshot; damage is listed in the report's problems."""
    try:
        report = CheckReport(db.verify())
    except CorruptionError as e:
        report = CheckReport({}, problems=[f"checksum: {e}"])
    with db.snapshot() as snap:
        view = snap.kv
        _check_versions(db, report)
        _check_space(db, view, report)
        for name in registry.names(view):
            report.tables.append(_check_table(view, registry.lookup(view, name)))
    return report


# -- space -----------------------------------------------------------------------------


def _check_space(db: Database, view: KvView, report: CheckReport) -> None:
    checkpointer = db._checkpointer
    if checkpointer is None or checkpointer.pages is None:
        return  # a read-only open of a database that never wrote its data file
    pages = checkpointer.pages
    catalog = checkpointer.catalog
    file_pages = pages.pages
    report.data_pages = catalog.end
    report.free_pages = sum(f.count for f in catalog.free)
    problems = report.problems
    used: dict[Extent, str] = {}
    for i, run in enumerate(catalog.runs):
        used[(run.first, run.count)] = f"sorted run {i}"
        for named in run.named:
            used.setdefault(named, f"an extent named by run {i}")
    root = checkpointer.meta.catalog_root
    if root:
        used[(root, catalog_pages(len(catalog.encode()), pages.page_size))] = "the catalog"
    for (first, count), what in used.items():
        if first < 1 or first + count > min(catalog.end, file_pages):
            problems.append(f"{what} (pages {first}..{first + count - 1}) lies outside "
                            f"the allocated pages 1..{catalog.end - 1} of the data file "
                            f"({file_pages} pages)")
    for free in catalog.free:
        if free.first < 1 or free.first + free.count > catalog.end:
            problems.append(f"free pages {free.first}..{free.first + free.count - 1} lie "
                            f"outside the allocated pages 1..{catalog.end - 1}")
    problems += _overlaps([*((e, what) for e, what in used.items()),
                           *(((f.first, f.count), "free extent") for f in catalog.free)])
    chunks = view.range_raw(TABLE_CHUNKS, prefix_end(TABLE_CHUNKS))
    live = {Descriptor.decode(value, pages.page_size).extent
            for _, value in descriptors_among(chunks)}
    replayed: set[Extent] = set()
    for layer in db._clock.state.layers():
        replayed |= named_extents(layer.newest_entries(), TABLE_CHUNKS, pages.page_size)
    replayed -= used.keys()
    for first, count in sorted(live - used.keys() - replayed):
        problems.append(f"a table chunk names pages {first}..{first + count - 1}, which "
                        "neither the checkpoint's catalog nor a commit replayed from the "
                        "WAL lists")
    for first, count in sorted(replayed):
        if first < 1 or first + count > file_pages:
            problems.append(f"an import replayed from the WAL names pages {first}.."
                            f"{first + count - 1}, outside the data file ({file_pages} "
                            "pages)")
    in_checkpoint = [(e, what) for e, what in used.items() if what != "free extent"]
    problems += _overlaps([*in_checkpoint, *((e, "an extent imported since the "
                                              "checkpoint") for e in sorted(replayed))])
    report.extents_in_use = len(used) + len(replayed)


def _overlaps(extents: list[tuple[Extent, str]]) -> list[str]:
    """A problem for each extent that overlaps the one before it in page order."""
    problems = []
    for ((first_a, count_a), what_a), ((first_b, count_b), what_b) in itertools.pairwise(
            sorted(extents)):
        if first_b < first_a + count_a:
            problems.append(f"{what_a} (pages {first_a}..{first_a + count_a - 1}) overlaps "
                            f"{what_b} (pages {first_b}..{first_b + count_b - 1})")
    return problems


# -- order and versions ----------------------------------------------------------------


def _check_versions(db: Database, report: CheckReport) -> None:
    problems = report.problems
    state = db._clock.state
    checkpoint_csn = db._checkpointer.meta.checkpoint_csn if db._checkpointer else 0
    if checkpoint_csn > db._clock.published:
        problems.append(f"the checkpoint holds commits up to CSN {checkpoint_csn}, past "
                        f"the newest published one ({db._clock.published})")
    batch_csns = [layer.csn for layer in state.layers() if isinstance(layer, Batch)]
    if any(newer <= older for newer, older in itertools.pairwise(batch_csns)):
        problems.append(f"commits in memory are out of commit order (CSNs {batch_csns})")
    if batch_csns and batch_csns[-1] <= checkpoint_csn:
        problems.append(f"a commit replayed into memory (CSN {batch_csns[-1]}) is not "
                        f"newer than the checkpoint (CSN {checkpoint_csn})")
    for i, run in enumerate(state.runs):
        try:
            entries = run.arrays()
        except CorruptionError:
            continue  # reported with the checksums
        where = f"sorted run {i} (pages {run.extent.first}..)"
        kinds = np.asarray(entries.kinds)
        if not np.isin(kinds, (PUT, DELETE)).all():
            problems.append(f"{where} holds entries of unknown kinds")
        if i == len(state.runs) - 1 and (kinds == DELETE).any():
            problems.append(f"{where} is the oldest run but holds delete markers")
        keys = pa.LargeBinaryArray.from_buffers(
            pa.large_binary(), kinds.size,
            [None, pa.py_buffer(np.ascontiguousarray(entries.key_offsets)),
             pa.py_buffer(np.ascontiguousarray(entries.key_data))])
        if kinds.size > 1 and not pc.all(pc.less(keys[:-1], keys[1:])).as_py():
            problems.append(f"{where} has keys out of order or repeated")


# -- tables ----------------------------------------------------------------------------


def _check_table(view: KvView, definition: TableDef) -> TableCheck:
    result = TableCheck(definition.name)
    try:
        _check_rows(view, definition, result)
        result.problems += verify_table(view, definition)
    except CorruptionError as e:
        result.problems.append(str(e))
    return result


def _check_rows(view: KvView, definition: TableDef, result: TableCheck) -> None:
    """Chunks, their row counts and delete marks, the row count, index entries."""
    part = table_part(definition)
    name = definition.name
    chunks = view.range_raw(CHUNKS + part, prefix_end(CHUNKS + part))
    numbers = key_numbers(name, chunks.keys, len(CHUNKS) + 4, 1)[:, 0]
    result.chunks = int(numbers.size)
    result.extents = sum(1 for _ in descriptors_among(chunks))
    counted = view.range_raw(COUNTS + part, prefix_end(COUNTS + part))
    counted_chunks = key_numbers(name, counted.keys, len(COUNTS) + 4, 1)[:, 0].tolist()
    value_offsets, values = counted.values()
    if (np.diff(value_offsets) != 8).any():
        raise CorruptionError("a chunk's row counts are damaged")
    counts = dict(zip(counted_chunks, values.view(">u4").reshape(-1, 2).tolist(),
                      strict=True))
    marks = key_numbers(name, view.range_raw(DELETED + part, prefix_end(DELETED + part)).keys,
                        len(DELETED) + 4, 2)
    marked_chunks, marks_per_chunk = np.unique(marks[:, 0], return_counts=True)
    marked = dict(zip(marked_chunks.tolist(), marks_per_chunk.tolist(), strict=True))
    for chunk in sorted(marked.keys() - set(numbers.tolist())):
        result.problems.append(f"{marked[chunk]} delete marks name chunk {chunk}, which "
                               "does not exist")
    for chunk in sorted(counts.keys() - set(numbers.tolist())):
        result.problems.append(f"chunk {chunk} has row counts but no rows")
    live_rows = 0
    for chunk, positions, _ in live_chunks(view, definition, columns=[]):
        live_rows += int(positions.size)
        if chunk == TAIL_CHUNK:
            continue
        stored_deleted = counts.get(chunk)
        deleted = marked.get(chunk, 0)
        if stored_deleted is None:
            result.problems.append(f"chunk {chunk} has no row counts")
        elif stored_deleted != [positions.size + deleted, deleted]:
            result.problems.append(
                f"chunk {chunk}: its counts say {stored_deleted[0]} rows stored and "
                f"{stored_deleted[1]} deleted; it holds {positions.size + deleted} with "
                f"{deleted} delete marks")
    result.rows = live_rows
    counted_rows = row_count(view, definition)
    if counted_rows != live_rows:
        result.problems.append(f"the row counts add up to {counted_rows} rows, the chunks "
                               f"hold {live_rows} live ones")
    if definition.primary_key is not None:
        prefix = index_prefix(definition)
        result.index_entries += len(view.range_raw(prefix, prefix_end(prefix)))
    result.index_entries += sum(index.len(view) for index in indexes_of(definition))
