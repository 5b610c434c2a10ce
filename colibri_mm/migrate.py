"""Format migration: rewriting every checksum of a database from one format version to
another, beside the old files, then switching to the new files atomically and keeping
the old ones as a rollback copy (``coldb migrate``).

Formats 0.9 and 1.0 have the same structures and differ in the checksum (zlib CRC-32
against CRC-32C) and in the meta's version field(s) (``docs/FORMAT.md`` sections 1 and
4.1). So one transform, "rewrite every checksum from format A to format B", migrates
0.9 to 1.0 and, for building test fixtures, 1.0 to 0.9:

- meta: the current slot, re-encoded in the target layout (the other slot zeroed);
- data file: copied (holes stay holes); each run's pages checked with the old
  checksum, the extent descriptors its values hold rewritten (their page CRCs:
  the extent's pages are checked with the old checksum and summed with the new),
  and the run's page CRCs recomputed; the catalog re-encoded with them;
- WAL: every segment header and fragment checked and re-framed with the new
  checksum, descriptors inside change records rewritten the same way.

Descriptors no reader can reach keep their bytes: one hidden by a newer run's
delete, or logged at or below the checkpoint's LSN (its pages may belong to
something else by now, so there is nothing to check them against).

Any damage stops the migration before the switch, naming the file and offset (a torn
tail of the last WAL segment is not damage: it is left out, as recovery would). The
switch and its crash states are :mod:`.format_switch`'s; this module writes the new
files into ``DIR/.migrate-<to>/``, syncs them, checks them when asked (``verify``),
and switches, the old files going to ``DIR/.rollback-<from>/``. :func:`rollback`
switches back if the database has not been written since.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from .arrow.progress import Progress
from .errors import CorruptionError, FormatVersionError, MigrationError
from .format_switch import (
    DATABASE_FILES,
    WAL_NAME,
    finish_switch,
    refuse_open_readers,
    switch,
    switch_pending,
)
from .kernels import walcodec
from .kernels.walcodec import DecodeStatus
from .kv.keys import TABLE_CHUNKS
from .kv.records import KV_CHANGES, PUT, decode_changes
from .kv.run import HEADER_BYTES, Run
from .storage.catalog import Catalog, read_catalog
from .storage.checksums import FORMAT_0_9, FORMAT_1_0, FormatChecksum, checksum_of
from .storage.extents import (
    DESCRIPTOR_BYTES,
    Descriptor,
    ExtentReader,
    is_descriptor,
    with_prefix,
)
from .storage.files import File, FileSystem
from .storage.meta import (
    META_FILE_SIZE,
    META_NAME,
    SLOT_OFFSETS,
    Meta,
    format_version_text,
    read_meta,
)
from .storage.pagefile import DATA_NAME, PageFile
from .txn.writer_lock import ProcessWriteLock
from .wal.segment import RECORDS_OFFSET, SegmentHeader, segment_numbers, segment_path

FORMATS = {"0.9": FORMAT_0_9, "1.0": FORMAT_1_0}
"""The formats a migration converts between, by name."""
RECORD_NAME = "migration.json"
"""Kept in the rollback copy: what was migrated, and the last LSN it held."""
COPY_BYTES = 8 << 20
"""The data file is copied in pieces of this size (all-zero pieces stay holes)."""


def staging_name(version: int) -> str:
    """Directory (inside the database's) where a migration to ``version`` writes."""
    return f".migrate-{format_version_text(version)}"


def rollback_name(version: int) -> str:
    """Directory holding the files of format ``version`` a migration replaced."""
    return f".rollback-{format_version_text(version)}"


def rolled_back_name(version: int) -> str:
    """Directory the files of format ``version`` go to when a rollback replaces them
    (deleted once it is done)."""
    return f".rolled-back-{format_version_text(version)}"


@dataclass
class MigrationReport:
    """What a migration found and did."""

    directory: Path
    source: str
    target: str
    dry_run: bool
    done_before: bool = False
    """The database was already in the target format: nothing to do."""
    runs: int = 0
    run_pages: int = 0
    descriptors: int = 0
    """Extent descriptors rewritten (in runs and in WAL records)."""
    extent_pages: int = 0
    wal_segments: int = 0
    wal_records: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    last_lsn: int = 0
    """LSN of the last record migrated (or the checkpoint's): the rollback's mark."""
    dropped: list[str] = field(default_factory=list)
    """Torn WAL tails left out (what recovery would have dropped)."""
    verified: dict[str, Any] | None = None
    """With ``verify``: the content both databases hold (keys, tables, rows)."""
    seconds: float = 0.0

    def summary(self) -> list[str]:
        """The report as lines for people."""
        if self.done_before:
            return [f"{self.directory} is already in format {self.target}: nothing to do"]
        verb = "would rewrite" if self.dry_run else "rewrote"
        lines = [f"{self.directory}: format {self.source} -> {self.target}"
                 + (" (dry run: nothing written)" if self.dry_run else ""),
                 f"checked and {verb} {self.runs} runs ({self.run_pages} pages), "
                 f"{self.descriptors} extent descriptors ({self.extent_pages} pages), "
                 f"{self.wal_segments} WAL segments ({self.wal_records} records)",
                 f"read {self.bytes_read / 1e6:.1f} MB, "
                 f"{'would write' if self.dry_run else 'wrote'} "
                 f"{self.bytes_written / 1e6:.1f} MB in {self.seconds:.2f} s"]
        lines += [f"left out a torn WAL tail: {line}" for line in self.dropped]
        if self.verified is not None:
            lines.append(f"verified: {self.verified['keys']} keys and "
                         f"{sum(t['rows'] for t in self.verified['tables'].values())} rows "
                         f"in {len(self.verified['tables'])} tables read the same")
        if not self.dry_run:
            kept = self.directory / rollback_name(FORMATS[self.source])
            lines.append(f"the old files are in {kept} (`coldb migrate --rollback` "
                         "restores them)")
        return lines


class _Output:
    """Where the transform writes: files under the staging directory, or nowhere (a
    dry run, which only counts)."""

    def __init__(self, fs: FileSystem, root: Path | None, report: MigrationReport) -> None:
        self._fs = fs
        self.root = root
        self._report = report

    def create(self, name: str) -> File | None:
        if self.root is None:
            return None
        return self._fs.open(self.root / name, create=True, exclusive=True)

    def write(self, file: File | None, data: Any, offset: int) -> None:
        self._report.bytes_written += memoryview(data).nbytes
        if file is not None:
            file.pwrite(data, offset)

    def finish(self, file: File | None, size: int | None = None) -> None:
        if file is None:
            return
        try:
            if size is not None:
                file.truncate(size)
            file.sync()
        finally:
            file.close()


class _Transform:
    """Rewrites one database's checksums from ``source`` to ``target`` (see the
    module docstring) into an :class:`_Output`."""

    def __init__(self, fs: FileSystem, directory: Path, meta: Meta, target_version: int,
                 output: _Output, report: MigrationReport, progress: Progress) -> None:
        self._fs = fs
        self._directory = directory
        self._meta = meta
        self._target_version = target_version
        self._source: FormatChecksum = checksum_of(meta.write_version)
        self._target: FormatChecksum = checksum_of(target_version)
        self._output = output
        self._report = report
        self._progress = progress
        self._pages: PageFile | None = None
        self._extents: ExtentReader | None = None

    def run(self) -> None:
        """Rewrite the data file, the WAL and the meta, in that order (the meta is
        what makes the staging directory a database)."""
        fs = self._fs
        if fs.exists(self._directory / DATA_NAME):
            self._pages = PageFile(fs, self._directory, self._meta.page_size, writable=False)
            self._extents = ExtentReader(self._pages, self._source)
        try:
            if self._pages is not None:
                self._data_file(self._pages)
            self._wal()
        finally:
            if self._pages is not None:
                self._pages.close()
        self._meta_file()

    # -- the data file ---------------------------------------------------------------

    def _data_file(self, pages: PageFile) -> None:
        patches: list[tuple[int, npt.NDArray[np.uint8] | bytes]] = []
        if self._meta.catalog_root:
            catalog = read_catalog(pages, self._meta.catalog_root, self._source)
            runs = []
            for ref in catalog.runs:
                image = self._run_image(pages, Run(pages, ref, checksum=self._source),
                                        set(ref.named))
                patches.append((ref.first, image))
                runs.append(replace(ref, page_crcs=self._target.pages(image,
                                                                       pages.page_size)))
            encoded = Catalog(catalog.end, tuple(runs), catalog.free).encode(self._target)
            patches.append((self._meta.catalog_root, encoded))
        file = self._output.create(DATA_NAME)
        source = self._fs.open(pages.path, writable=False)
        try:
            size = source.size()
            for offset in range(0, size, COPY_BYTES):
                piece = source.pread(min(COPY_BYTES, size - offset), offset)
                self._report.bytes_read += len(piece)
                self._progress.add(len(piece), len(piece))
                if np.frombuffer(piece, np.uint8).any():
                    self._output.write(file, piece, offset)
        finally:
            source.close()
        for first_page, data in patches:
            self._output.write(file, data, first_page * pages.page_size)
        self._output.finish(file, size)

    def _run_image(self, pages: PageFile, run: Run,
                   live: set[tuple[int, int]]) -> npt.NDArray[np.uint8]:
        """The run's pages (checked with the old checksum by reading the run) with the
        descriptors of the extents in ``live`` rewritten."""
        entries = run.arrays()
        image = np.array(pages.view(run.extent.first, run.extent.count))
        self._report.runs += 1
        self._report.run_pages += run.extent.count
        if entries.kinds.size == 0:
            return image
        # The run's arrays are views of its pages, so a value's place in the run is
        # its address minus the address of the kinds, which begin at HEADER_BYTES.
        values_at = HEADER_BYTES + (entries.value_data.ctypes.data - entries.kinds.ctypes.data)
        chunks = np.flatnonzero(with_prefix(entries, TABLE_CHUNKS, PUT))
        starts = entries.value_offsets[chunks]
        ends = entries.value_offsets[chunks + 1]
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            value = entries.value_data[start:end].tobytes()
            if end - start < DESCRIPTOR_BYTES or not is_descriptor(value):
                continue
            if Descriptor.decode(value, pages.page_size).extent not in live:
                continue  # shadowed by a newer run: never read (module docstring)
            image[values_at + start : values_at + end] = np.frombuffer(
                self._descriptor(value), np.uint8)
        return image

    def _descriptor(self, value: bytes) -> bytes:
        """``value`` (an extent descriptor) with its extent's pages checked against it
        and its CRCs in the target checksum."""
        if self._pages is None or self._extents is None:
            raise CorruptionError("an extent descriptor names pages of a data file the "
                                  "database does not have", path=str(self._directory))
        descriptor = Descriptor.decode(value, self._pages.page_size)
        self._extents.check(value)
        view = self._pages.view(descriptor.first, descriptor.count)
        self._report.descriptors += 1
        self._report.extent_pages += descriptor.count
        rewritten = replace(descriptor, page_crcs=self._target.pages(view,
                                                                     self._pages.page_size))
        return rewritten.encode()

    # -- the WAL -----------------------------------------------------------------------

    def _wal(self) -> None:
        wal_dir = self._directory / WAL_NAME
        if not self._fs.exists(wal_dir):
            return
        if self._output.root is not None:
            self._fs.mkdir(self._output.root / WAL_NAME)
        numbers = segment_numbers(self._fs.listdir(wal_dir))
        self._report.last_lsn = self._meta.checkpoint_lsn
        for index, number in enumerate(numbers):
            self._segment(segment_path(wal_dir, number), number, index == len(numbers) - 1)
        if self._output.root is not None:
            self._fs.sync_dir(self._output.root / WAL_NAME)

    def _segment(self, path: Path, number: int, last: bool) -> None:
        file = self._fs.open(path, writable=False)
        try:
            data = file.pread(file.size(), 0)
        finally:
            file.close()
        self._report.bytes_read += len(data)
        self._progress.add(len(data), len(data))
        header = SegmentHeader.decode(data[:RECORDS_OFFSET], path, self._source)
        decoded = walcodec.decode(memoryview(data)[RECORDS_OFFSET:], segment=number,
                                  block_size=header.block_size, checksum=self._source.name)
        status = decoded.status
        if status not in (DecodeStatus.OK, DecodeStatus.UNWRITTEN):
            offset = RECORDS_OFFSET + decoded.error_offset
            if not (last and status == DecodeStatus.TRUNCATED):
                raise CorruptionError(f"WAL {status.name.lower()} record: the migration "
                                      "stops before changing anything", path=str(path),
                                      offset=offset)
            self._report.dropped.append(f"{path}: {len(data) - RECORDS_OFFSET - decoded.end} "
                                        f"bytes from offset {RECORDS_OFFSET + decoded.end}")
        payload = np.array(decoded.payload)  # writable: descriptors are rewritten in it
        for i in range(len(decoded)):
            lsn = int(decoded.lsns[i])
            if decoded.types[i] == KV_CHANGES and lsn > self._meta.checkpoint_lsn:
                self._rewrite_record(payload, int(decoded.offsets[i]),
                                     int(decoded.offsets[i + 1]), f"{path} LSN {lsn}")
        if len(decoded):
            self._report.last_lsn = max(self._report.last_lsn, int(decoded.lsns[-1]))
        body = walcodec.encode(payload, decoded.offsets, decoded.types, decoded.lsns,
                               segment=number, block_size=header.block_size,
                               checksum=self._target.name)
        if body.size != decoded.end:
            raise CorruptionError("re-framing a WAL segment changed its layout",
                                  path=str(path))
        out = self._output.create(f"{WAL_NAME}/{path.name}")
        self._output.write(out, header.encode(self._target), 0)
        self._output.write(out, body, RECORDS_OFFSET)
        self._output.finish(out)
        self._report.wal_segments += 1
        self._report.wal_records += len(decoded)

    def _rewrite_record(self, payload: npt.NDArray[np.uint8], start: int, end: int,
                        where: str) -> None:
        """Rewrite, in place, the descriptors among the table chunks a change record
        (``payload[start:end]``) puts."""
        keys, values = decode_changes(payload[start:end], where)
        at = end - sum(len(v) for v in values if v is not None)
        for key, value in zip(keys, values, strict=True):
            if value is None:
                continue
            if key.startswith(TABLE_CHUNKS) and len(value) >= DESCRIPTOR_BYTES and \
                    is_descriptor(value):
                payload[at : at + len(value)] = np.frombuffer(self._descriptor(value),
                                                              np.uint8)
            at += len(value)

    # -- the meta ----------------------------------------------------------------------

    def _meta_file(self) -> None:
        _, slot = read_meta(self._fs, self._directory)
        image = bytearray(META_FILE_SIZE)
        encoded = replace(self._meta, read_version=self._target_version,
                          write_version=self._target_version).encode()
        image[SLOT_OFFSETS[slot] : SLOT_OFFSETS[slot] + len(encoded)] = encoded
        self._report.bytes_read += META_FILE_SIZE
        file = self._output.create(META_NAME)
        self._output.write(file, bytes(image), 0)
        self._output.finish(file)


def migrate(directory: str | Path, *, to: str = "1.0", dry_run: bool = False,
            verify: bool = False, progress: bool = False,
            file_system: FileSystem | None = None) -> MigrationReport:
    """Migrate the database in ``directory`` to format ``to``.

    Checks every checksum of the old format, writes the new files into
    ``directory/.migrate-<to>/`` and syncs them, then switches atomically, keeping the
    old files in ``directory/.rollback-<from>/`` (see the module docstring).

    Parameters
    ----------
    directory : str or Path
        The database directory. No process may have it open for writing.
    to : str
        Target format: ``"1.0"`` (``"0.9"`` is for building test fixtures).
    dry_run : bool
        Check everything and report what would be written; write nothing.
    verify : bool
        Before switching, open the new files read-only, check every page and index,
        and compare every key and every table row with the old database.
    progress : bool
        Draw a progress bar (bytes read).
    file_system : FileSystem, optional
        The file layer (tests pass a fault-injecting one).

    Returns
    -------
    MigrationReport

    Raises
    ------
    CorruptionError
        Old bytes fail their checksum (the file and offset are named); nothing changed.
    MigrationError
        The database cannot be migrated as asked (a rollback copy is in the way, or
        ``verify`` found a difference); nothing changed.
    LockedError
        Another process has the database open, for writing or (unless ``dry_run``)
        for reading; nothing changed.
    """
    fs = file_system or FileSystem()
    path = Path(directory)
    if to not in FORMATS:
        raise MigrationError(f"unknown target format {to!r}; known: {', '.join(FORMATS)}")
    target_version = FORMATS[to]
    if not fs.exists(path / META_NAME) and not switch_pending(fs, path):
        raise MigrationError(f"{path} is not a colibri-mm database (no {META_NAME})")
    finish_switch(fs, path)
    lock = ProcessWriteLock(fs, path, 0.0)
    try:
        # Nothing is written through this lock: reader opens (verify) see every
        # commit in the WAL.
        lock.publish_written(True)
        return _migrate_locked(fs, path, target_version, dry_run, verify, progress)
    finally:
        lock.release()


def _migrate_locked(fs: FileSystem, path: Path, target_version: int, dry_run: bool,
                    verify: bool, progress: bool) -> MigrationReport:
    started = time.perf_counter()
    meta, _ = read_meta(fs, path)
    source_version = meta.write_version
    report = MigrationReport(path, format_version_text(source_version),
                             format_version_text(target_version), dry_run)
    staging = path / staging_name(target_version)
    if source_version == target_version:
        report.done_before = True
        if not dry_run:
            _remove_tree(fs, staging)  # an attempt that stopped before its switch
        return report
    if source_version not in FORMATS.values():
        raise FormatVersionError(f"{path} is in format {report.source}; migration knows "
                                 f"formats {', '.join(FORMATS)}")
    rollback_dir = path / rollback_name(source_version)
    if any(fs.exists(rollback_dir / name) for name in DATABASE_FILES):
        raise MigrationError(f"{rollback_dir} already holds a database: move it away "
                             "before migrating again")
    output_root = None if dry_run else staging
    if not dry_run:
        refuse_open_readers(fs, path, f"migrating it to format {report.target}")
        _remove_tree(fs, staging)  # an attempt that stopped before its switch
        _remove_tree(fs, path / rolled_back_name(target_version))  # a finished rollback's
        fs.mkdir(staging)
    try:
        with Progress(f"migrate {report.source} -> {report.target}", _bytes_to_read(fs, path),
                      progress, unit="B") as bar:
            _Transform(fs, path, meta, target_version, _Output(fs, output_root, report),
                       report, bar).run()
        if dry_run:
            report.seconds = time.perf_counter() - started
            return report
        fs.sync_dir(staging)
        fs.sync_dir(path)
        if verify:
            report.verified = _compare(path, staging)
        # Again, now that the new files are ready: a reader may have opened meanwhile.
        # (switch checks once more, at its commit point.)
        refuse_open_readers(fs, path, f"migrating it to format {report.target}")
    except BaseException:
        if not dry_run:
            _remove_tree(fs, staging)
        raise
    _remove_file(fs, staging / "LOCK")  # made by the verifying open; not a database file
    _write_record(fs, rollback_dir, report)
    switch(fs, path, staging.name, rollback_dir.name)
    _remove_tree(fs, staging)
    report.seconds = time.perf_counter() - started
    return report


def rollback(directory: str | Path, *,
             file_system: FileSystem | None = None) -> dict[str, Any]:
    """Put back the files a migration replaced (``directory/.rollback-<from>/``).

    Refused if the migrated database has been written since the migration (its last
    LSN passed the one recorded then): rolling back would lose those commits.
    Returns what was restored (the record the migration kept).

    Raises
    ------
    MigrationError
        No rollback copy, or the database was written after the migration.
    """
    fs = file_system or FileSystem()
    path = Path(directory)
    finish_switch(fs, path)
    lock = ProcessWriteLock(fs, path, 0.0)
    try:
        meta, _ = read_meta(fs, path)
        record = _find_record(fs, path, meta.write_version)
        source_version = FORMATS[record["from"]]
        last_lsn = _last_lsn(fs, path, meta)
        if last_lsn > int(record["last_lsn"]):
            raise MigrationError(
                f"{path} was written after the migration (LSN {last_lsn} > "
                f"{record['last_lsn']}): rolling back to format {record['from']} would lose "
                "those commits; back it up, or migrate the other way")
        rollback_dir = path / rollback_name(source_version)
        displaced = path / rolled_back_name(meta.write_version)
        _remove_tree(fs, displaced)
        switch(fs, path, rollback_dir.name, displaced.name)
        _remove_tree(fs, displaced)
        _remove_tree(fs, rollback_dir)
        return record
    finally:
        lock.release()


def _find_record(fs: FileSystem, path: Path, version: int) -> dict[str, Any]:
    """The record of the migration that produced format ``version`` in ``path``."""
    for name, source_version in FORMATS.items():
        record_path = path / rollback_name(source_version) / RECORD_NAME
        if source_version == version or not fs.exists(record_path):
            continue
        file = fs.open(record_path, writable=False)
        try:
            record: dict[str, Any] = json.loads(file.pread(file.size(), 0))
        finally:
            file.close()
        if record.get("to") == format_version_text(version) and record.get("from") == name:
            return record
    raise MigrationError(f"{path} has no rollback copy of a migration to format "
                         f"{format_version_text(version)} (nothing to roll back)")


def _last_lsn(fs: FileSystem, path: Path, meta: Meta) -> int:
    """The LSN of the last record in the WAL (or of the checkpoint)."""
    last = meta.checkpoint_lsn
    wal_dir = path / WAL_NAME
    if not fs.exists(wal_dir):
        return last
    checksum = checksum_of(meta.write_version)
    for number in segment_numbers(fs.listdir(wal_dir)):
        file = fs.open(segment_path(wal_dir, number), writable=False)
        try:
            data = file.pread(file.size(), 0)
        finally:
            file.close()
        header = SegmentHeader.decode(data[:RECORDS_OFFSET], segment_path(wal_dir, number),
                                      checksum)
        decoded = walcodec.decode(memoryview(data)[RECORDS_OFFSET:], segment=number,
                                  block_size=header.block_size, checksum=checksum.name)
        if len(decoded):
            last = max(last, int(decoded.lsns[-1]))
    return last


def _write_record(fs: FileSystem, rollback_dir: Path, report: MigrationReport) -> None:
    """Write what the rollback needs into the rollback directory, before the switch."""
    fs.mkdir(rollback_dir)
    record = {"from": report.source, "to": report.target, "last_lsn": report.last_lsn,
              "migrated_at": time.time()}
    record_path = rollback_dir / RECORD_NAME
    file = fs.open(record_path, create=True)
    try:
        file.truncate(0)
        file.pwrite(json.dumps(record, indent=1).encode(), 0)
        file.sync()
    finally:
        file.close()
    fs.sync_dir(rollback_dir)


def _bytes_to_read(fs: FileSystem, path: Path) -> int:
    total = 0
    for name in (DATA_NAME, *(f"{WAL_NAME}/{n}" for n in (
            fs.listdir(path / WAL_NAME) if fs.exists(path / WAL_NAME) else []))):
        if fs.exists(path / name):
            file = fs.open(path / name, writable=False)
            try:
                total += file.size()
            finally:
                file.close()
    return total


def _remove_file(fs: FileSystem, path: Path) -> None:
    if fs.exists(path):
        fs.remove(path)


def _remove_tree(fs: FileSystem, path: Path) -> None:
    """Delete ``path`` and what it holds (files and one level of directories: the
    WAL's), if it exists."""
    if not fs.exists(path):
        return
    for name in fs.listdir(path):
        child = path / name
        if child.is_dir():
            _remove_tree(fs, child)
        else:
            fs.remove(child)
    fs.remove_dir(path)


def content_digest(directory: str | Path) -> dict[str, Any]:
    """What a database holds, as digests: its keys and values, and per table the row
    count and a digest of its rows in scan order, read from a read-only open (with
    every page, extent and index checked first)."""
    import colibri_mm

    with colibri_mm.connect(directory, readonly=True) as db:
        db.verify()
        with db.snapshot() as snap:
            keys = hashlib.sha256()
            count = 0
            for key, value in snap.kv.scan():
                keys.update(len(key).to_bytes(8, "little") + key)
                keys.update(len(value).to_bytes(8, "little") + value)
                count += 1
            tables = {}
            for name in snap.tables():
                table = snap.table(name)
                problems = table.verify()
                if problems:
                    raise MigrationError(f"table {name!r} of {directory} fails its check: "
                                         + "; ".join(problems))
                rows = hashlib.sha256(table.schema.serialize().to_pybytes())
                n = 0
                for batch in table.to_arrow_reader():
                    rows.update(_batch_bytes(batch))
                    n += batch.num_rows
                tables[name] = {"rows": n, "sha256": rows.hexdigest()}
    return {"keys": count, "kv_sha256": keys.hexdigest(), "tables": tables}


def _batch_bytes(batch: pa.RecordBatch) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return bytes(sink.getvalue())


def _compare(old: Path, new: Path) -> dict[str, Any]:
    """Digests of both databases; :class:`MigrationError` if they differ."""
    before = content_digest(old)
    after = content_digest(new)
    if before != after:
        raise MigrationError(f"the migrated database reads differently from {old}: "
                             f"{before} before, {after} after; nothing was switched")
    return after
