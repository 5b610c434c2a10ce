"""Online physical backups: copying a database while it commits, and restoring and
verifying such a copy.

This module owns the backup's layout and its manifest (``docs/FORMAT.md`` section
10). A backup is a database directory frozen at one commit, the LSN ``L``: the meta
file, the data file's allocated pages, and the WAL segments from the checkpoint's
first needed one up to ``L``, the last one cut just after ``L``'s record, plus
``manifest.json`` naming every file with its size and CRC-32C. Opening it replays
the WAL up to ``L`` and stops: the copy equals the source as it was at ``L``.

How the source is held still (``docs/OPERATIONS.md`` explains it for operators):
for a few milliseconds the backup holds the checkpoint lock and the write mutex,
flushes the WAL and records its position, reads the meta file, and claims a slot
of the reader table announcing the current checkpoint, exactly as a reader process
does. Then it lets go and copies. While the slot is held no checkpoint reuses a
page that checkpoint (or a commit up to ``L``) uses, nor deletes a WAL segment it
needs; pages are only ever written into free space (checkpoints and bulk imports
are the only writers of the data file), and the WAL only grows past ``L``. So
writers, checkpoints and imports all go on during the copy.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import re
import shutil
import tarfile
import tempfile
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ._version import __version__
from .arrow.progress import Progress
from .errors import BackupError, CorruptionError, FormatVersionError, LockedError, ReadOnlyError
from .kernels.checksum import crc32c
from .storage.files import File, FileSystem
from .storage.meta import META_FILE_SIZE, META_NAME, READ_VERSION, Meta, format_version_text
from .storage.pagefile import DATA_NAME
from .txn.reader_table import ReaderTable
from .wal.segment import segment_holding, segment_numbers, segment_path

if TYPE_CHECKING:
    from .check import CheckReport
    from .database import Database

log = logging.getLogger("colibri_mm")
MANIFEST_NAME = "manifest.json"
BACKUP_FORMAT = 1
"""Version of the backup layout and manifest (``docs/FORMAT.md`` section 10)."""
COPY_BLOCK = 8 << 20
"""Bytes read and written per call while copying."""
TAR_SUFFIXES = (".tar.gz", ".tgz")
GZIP_LEVEL = 1
"""zlib level of ``.tar.gz`` backups: data pages are mostly Arrow buffers and zeros,
where higher levels cost several times the time for a few percent."""
WAL_DIR = "wal"
_MEMBER = re.compile(rf"^(?:{re.escape(MANIFEST_NAME)}|{re.escape(META_NAME)}|"
                     rf"{re.escape(DATA_NAME)}|{WAL_DIR}/[0-9a-f]{{16}}\.wal)$")
"""Names a backup may hold (anything else in a tarball is refused, never extracted)."""
_OWN_CRC_LINE = b'  "manifest_crc32c": '
"""The manifest's last line but one: its CRC-32C covers every byte before this line."""


@dataclass(frozen=True)
class BackupFile:
    """One file of a backup: its path inside the backup (``/``-separated), size and
    CRC-32C."""

    path: str
    size: int
    crc32c: int


@dataclass(frozen=True)
class BackupManifest:
    """What ``manifest.json`` says about a backup (``docs/FORMAT.md`` section 10).

    Attributes
    ----------
    database_format
        The database's format version as text (``"1.0"``), from its meta slot.
    read_version, write_version
        The meta slot's version numbers (``major << 8 | minor``).
    database_id
        The database's 16-byte id, as 32 hex digits.
    checkpoint_id, checkpoint_lsn
        The checkpoint the copied data file holds.
    lsn
        The last WAL record in the backup: a restore replays up to it and no further.
    csn
        The commit sequence number of the last commit in the backup.
    created_at
        UTC time the backup's position was taken, ISO 8601.
    files
        Every file except the manifest, in copy order.
    """

    database_format: str
    read_version: int
    write_version: int
    database_id: str
    page_size: int
    checkpoint_id: int
    checkpoint_lsn: int
    lsn: int
    csn: int
    created_at: str
    colibri_mm_version: str
    files: tuple[BackupFile, ...]

    @property
    def total_bytes(self) -> int:
        """Bytes of every file listed."""
        return sum(f.size for f in self.files)

    def encode(self) -> bytes:
        """The manifest as written: UTF-8 JSON with two-space indents, keys in a fixed
        order, CRCs as 8 lower-case hex digits, and last its own CRC-32C over every
        byte before the line that holds it."""
        document: dict[str, Any] = {"backup_format": BACKUP_FORMAT}
        document.update(asdict(self))
        document["files"] = [{"path": f.path, "size": f.size, "crc32c": f"{f.crc32c:08x}"}
                             for f in self.files]
        covered = json.dumps(document, indent=2).removesuffix("\n}").encode() + b",\n"
        return covered + _OWN_CRC_LINE + f'"{crc32c(covered):08x}"\n}}\n'.encode()

    @classmethod
    def decode(cls, data: bytes, where: str) -> BackupManifest:
        """Parse and check a manifest: :class:`CorruptionError` naming ``where`` if it
        is damaged, :class:`BackupError` if it is of a backup format this engine does
        not read."""
        own_crc = data.rfind(b"\n" + _OWN_CRC_LINE)
        try:
            document = json.loads(data)
            stored = int(document["manifest_crc32c"], 16)
        except (ValueError, KeyError, TypeError) as e:
            raise CorruptionError(f"{where} is damaged or not a colibri-mm backup manifest "
                                  f"({type(e).__name__}: {e})", path=where) from None
        if own_crc < 0 or stored != crc32c(data[: own_crc + 1]):
            raise CorruptionError(f"{where} fails its own CRC-32C (manifest_crc32c)",
                                  path=where)
        if document.get("backup_format") != BACKUP_FORMAT:
            raise BackupError(f"{where}: backup format {document.get('backup_format')!r} "
                              f"is not {BACKUP_FORMAT}, the one this colibri-mm reads")
        try:
            files = tuple(BackupFile(f["path"], int(f["size"]), int(f["crc32c"], 16))
                          for f in document["files"])
            fields = {k: document[k] for k in cls.__dataclass_fields__ if k != "files"}
            manifest = cls(**fields, files=files)
        except (ValueError, KeyError, TypeError) as e:
            raise CorruptionError(f"{where} lacks a field or has a wrong one "
                                  f"({type(e).__name__}: {e})", path=where) from None
        for file in manifest.files:
            if not _MEMBER.match(file.path) or file.path == MANIFEST_NAME:
                raise CorruptionError(f"{where} names an unexpected file {file.path!r}",
                                      path=where)
        return manifest

    def summary(self) -> dict[str, Any]:
        """The manifest without its file list, plus the file count and total bytes
        (what ``coldb backup`` prints and the server's ``COLDB.BACKUP`` returns)."""
        summary = {k: v for k, v in asdict(self).items() if k != "files"}
        summary.update(files=len(self.files), bytes=self.total_bytes)
        return summary


@dataclass(frozen=True)
class RestoreReport:
    """What :func:`restore` put in place and found on opening it."""

    manifest: BackupManifest
    data_dir: Path
    lsn: int
    """Last LSN replayed on opening: the manifest's ``lsn``."""
    keys: int
    """Keys of ``db.kv``."""
    table_rows: dict[str, int]
    """Live rows of each table."""
    seconds: float


@dataclass(frozen=True)
class _CopyPoint:
    """What a backup copies, fixed while the source was held still."""

    meta: Meta
    meta_image: bytes
    data_bytes: int
    segments: tuple[int, ...]
    last_segment_end: int
    lsn: int
    csn: int
    taken_at: float
    """Seconds since the epoch when the position was read."""


# -- taking a backup -------------------------------------------------------------------


def backup(db: Database, target: str | os.PathLike[str], *,
           progress: bool = False) -> BackupManifest:
    """Copy the open database ``db`` to ``target`` while it keeps committing.

    ``target`` ending in ``.tar.gz`` or ``.tgz`` gets a gzip-compressed tarball,
    anything else a directory; it must not exist yet (a directory may exist if it
    is empty). The copy is written beside the target and renamed into place once
    complete and synced, so a failed backup never leaves a partial one under the
    final name. See the module docstring for what is held and for how long.

    Raises :class:`~colibri_mm.errors.ReadOnlyError` if ``db`` is open read-only
    (only the writer can hold its checkpoints still), :class:`BackupError` if the
    target exists.
    """
    target = Path(target)
    tarball = target.name.endswith(TAR_SUFFIXES)
    if target.is_symlink() or (target.exists() and (
            tarball or not target.is_dir() or any(target.iterdir()))):
        raise BackupError(f"{target} already exists; a backup goes to a new path")
    if not target.parent.is_dir():
        raise BackupError(f"{target.parent} is not a directory")
    fs = db._fs
    with _staging_directory(target, ".partial") as staging:
        manifest = _copy_database(db, staging, progress)
        if tarball:
            _write_tarball(fs, staging, manifest, target)
        else:
            fs.rename(staging, target)  # replaces an empty directory
            fs.sync_dir(target.parent)
    return manifest


def backup_to(db: Database, path: str) -> dict[str, Any]:
    """:func:`backup` of ``db`` to ``path`` (on this host) for a server command:
    returns the manifest's :meth:`~BackupManifest.summary`."""
    return backup(db, path).summary()


@contextmanager
def _staging_directory(beside: Path, suffix: str) -> Iterator[Path]:
    """A new directory next to ``beside`` (same file system, so it can be renamed
    into place), deleted at the end of the block unless it was renamed away."""
    staging = Path(tempfile.mkdtemp(prefix=f".{beside.name}.", suffix=suffix,
                                    dir=beside.parent))
    os.chmod(staging, 0o755)  # mkdtemp makes it private; a database directory is not
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _copy_database(db: Database, staging: Path, progress: bool) -> BackupManifest:
    """Copy ``db`` into the empty directory ``staging``, write and sync the manifest."""
    fs = db._fs
    fs.mkdir(staging / WAL_DIR)
    with _held_still(db) as point:
        sources = [(DATA_NAME, db.path / DATA_NAME, point.data_bytes)]
        for number in point.segments:
            path = segment_path(db.path / WAL_DIR, number)
            size = point.last_segment_end if number == point.segments[-1] else \
                _file_size(fs, path)
            sources.append((f"{WAL_DIR}/{path.name}", path, size))
        total = len(point.meta_image) + sum(size for _, _, size in sources)
        with Progress("backup", total, progress, unit="B") as counter:
            files = [_copy_into(fs, staging / META_NAME, io.BytesIO(point.meta_image),
                                len(point.meta_image), counter, sync=True)]
            for name, path, size in sources:
                source = fs.open(path, writable=False)
                try:
                    files.append(_copy_into(fs, staging / name, _FileReader(source), size,
                                            counter, sync=True))
                finally:
                    source.close()
    meta = point.meta
    names = [META_NAME, *(name for name, _, _ in sources)]
    manifest = BackupManifest(
        database_format=format_version_text(meta.read_version),
        read_version=meta.read_version, write_version=meta.write_version,
        database_id=meta.database_id.hex(), page_size=meta.page_size,
        checkpoint_id=meta.checkpoint_id, checkpoint_lsn=meta.checkpoint_lsn,
        lsn=point.lsn, csn=point.csn,
        created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(point.taken_at)),
        colibri_mm_version=__version__,
        files=tuple(BackupFile(name, size, crc)
                    for name, (size, crc) in zip(names, files, strict=True)))
    encoded = manifest.encode()
    _copy_into(fs, staging / MANIFEST_NAME, io.BytesIO(encoded), len(encoded), None,
               sync=True)
    fs.sync_dir(staging / WAL_DIR)
    fs.sync_dir(staging)
    return manifest


@contextmanager
def _held_still(db: Database) -> Iterator[_CopyPoint]:
    """The source's copy point, with the pages and WAL segments it needs kept from
    reuse and deletion until the block ends (see the module docstring).

    If every reader slot is taken by reader processes, the checkpoint lock itself
    is held for the whole block instead: still consistent, but checkpoints, bulk
    imports and memory backpressure then wait for the copy.
    """
    db._check_open()
    if db._writer is None:
        raise ReadOnlyError(f"{db.path} is open read-only: only the process writing a "
                            "database can back it up (against a server: coldb --server)")
    db._refuse_inside_transaction("back up the database")
    pin = ReaderTable(db._fs, db.path)
    try:
        with db._checkpoint_lock:
            point = _copy_point(db)
            try:
                pin.claim(point.meta.checkpoint_id)
            except LockedError:
                log.warning("backup of %s: every reader slot is taken, so checkpoints "
                            "wait for the copy", db.path)
                yield point
                return
        yield point
    finally:
        pin.close()


def _copy_point(db: Database) -> _CopyPoint:
    """Flush the WAL and read where it ends, the meta and the allocated size of the
    data file (called with the checkpoint lock held: nothing else writes the data
    file or the meta, nor deletes WAL segments)."""
    writer, checkpointer = db._writer, db._checkpointer
    assert writer is not None and checkpointer is not None and checkpointer.pages is not None
    fs = db._fs
    db._write_mutex.acquire()  # no commit queues WAL records while the position is read
    try:
        writer.flush()
        position = writer.position
        segment, end, lsn = position.segment, position.offset, position.next_lsn - 1
        csn = db._clock.assigned
    finally:
        db._write_mutex.release()
    taken_at = time.time()
    meta = checkpointer.meta
    meta_file = fs.open(db.path / META_NAME, writable=False)
    try:
        meta_image = meta_file.pread(META_FILE_SIZE, 0)
    finally:
        meta_file.close()
    wal_dir = db.path / WAL_DIR
    numbers = segment_numbers(fs.listdir(wal_dir))
    holding = segment_holding(fs, wal_dir, numbers, meta.checkpoint_lsn + 1)
    first = holding[0] if holding is not None else 0
    pages = checkpointer.pages
    # Page 0 is never written, so a new database's file may be shorter than ``end``.
    data_bytes = min(checkpointer.allocator.end * pages.page_size,
                     pages.pages * pages.page_size)
    return _CopyPoint(meta, meta_image, data_bytes,
                      tuple(n for n in numbers[first:] if n <= segment), end, lsn, csn,
                      taken_at)


# -- copying files ---------------------------------------------------------------------


class _Readable(Protocol):
    """Where a copy reads from: a file object, or :class:`_FileReader`."""

    def read(self, size: int, /) -> bytes: ...


class _FileReader:
    """Sequential reads of a :class:`File` of the file layer."""

    def __init__(self, file: File) -> None:
        self._file = file
        self._offset = 0

    def read(self, size: int) -> bytes:
        data = self._file.pread(size, self._offset)
        self._offset += len(data)
        return data


def _copy_into(fs: FileSystem, path: Path, source: _Readable, size: int,
               counter: Progress | None, *, sync: bool) -> tuple[int, int]:
    """Create ``path`` and copy ``size`` bytes of ``source`` into it (synced if
    ``sync``); (size, CRC-32C) of them. A source shorter than ``size`` is a
    :class:`CorruptionError` naming the file."""
    target = fs.open(path, create=True, exclusive=True)
    try:
        crc = 0
        offset = 0
        while offset < size:
            block = source.read(min(COPY_BLOCK, size - offset))
            if not block:
                raise CorruptionError(f"{path.name} ends after {offset} bytes of {size}",
                                      path=str(path), offset=offset)
            target.pwrite(block, offset)
            crc = crc32c(block, crc)
            offset += len(block)
            if counter is not None:
                counter.add(len(block), len(block))
        if sync:
            target.sync()
    finally:
        target.close()
    return size, crc


def _file_size(fs: FileSystem, path: Path) -> int:
    file = fs.open(path, writable=False)
    try:
        return file.size()
    finally:
        file.close()


def _write_tarball(fs: FileSystem, staging: Path, manifest: BackupManifest,
                   target: Path) -> None:
    """Tar and gzip the backup in ``staging`` (manifest first) beside ``target``, sync
    it and rename it into place."""
    partial = target.with_name(target.name + ".partial")
    try:
        with partial.open("xb") as raw:
            with tarfile.open(fileobj=raw, mode="w:gz", compresslevel=GZIP_LEVEL) as tar:
                for name in [MANIFEST_NAME, *(f.path for f in manifest.files)]:
                    tar.add(staging / name, arcname=name, recursive=False)
            raw.flush()
            os.fsync(raw.fileno())
        fs.rename(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    fs.sync_dir(target.parent)


# -- reading a backup ------------------------------------------------------------------


def _unpack(source: Path, staging: Path, fs: FileSystem, progress: bool,
            sync: bool) -> BackupManifest:
    """Copy the backup at ``source`` (a directory or a tarball) into the empty
    directory ``staging`` as a database directory (the manifest left out), and
    check every file against the manifest: :class:`CorruptionError` naming the
    first file that is missing, of the wrong size or fails its CRC, before
    anything is used. ``sync``: make what was written durable."""
    fs.mkdir(staging / WAL_DIR)
    if source.is_dir():
        manifest = _read_manifest(source / MANIFEST_NAME)
        found = _unpack_directory(source, manifest, staging, fs, progress, sync)
    elif source.is_file():
        manifest, found = _unpack_tarball(source, staging, fs, progress, sync)
    else:
        raise BackupError(f"{source}: no such backup (a directory or a .tar.gz file)")
    for file in manifest.files:
        got = found.get(file.path)
        where = str(source / file.path) if source.is_dir() else f"{source}:{file.path}"
        if got is None:
            raise CorruptionError(f"the backup lacks {file.path}, which its manifest "
                                  "lists", path=where)
        if got != (file.size, file.crc32c):
            raise CorruptionError(
                f"{file.path} does not match the manifest: {got[0]} bytes with CRC-32C "
                f"{got[1]:08x}, the manifest says {file.size} bytes with {file.crc32c:08x}",
                path=where)
    extra = sorted(found.keys() - {f.path for f in manifest.files})
    if extra:
        raise CorruptionError(f"the backup holds {extra[0]}, which its manifest does not "
                              "list", path=str(source))
    if manifest.read_version > READ_VERSION:
        raise FormatVersionError(
            f"{source} holds a database of format {manifest.database_format}; this "
            f"engine reads up to {format_version_text(READ_VERSION)}: upgrade colibri-mm")
    if sync:
        fs.sync_dir(staging / WAL_DIR)
        fs.sync_dir(staging)
    return manifest


def _read_manifest(path: Path) -> BackupManifest:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BackupError(f"{path.parent} is not a colibri-mm backup (it has no "
                          f"{MANIFEST_NAME})") from None
    return BackupManifest.decode(data, str(path))


def _unpack_directory(source: Path, manifest: BackupManifest, staging: Path,
                      fs: FileSystem, progress: bool,
                      sync: bool) -> dict[str, tuple[int, int]]:
    """Copy the files the manifest lists that ``source`` holds; (size, CRC) of each."""
    found: dict[str, tuple[int, int]] = {}
    with Progress("read backup", manifest.total_bytes, progress, unit="B") as counter:
        for file in manifest.files:
            path = source / file.path
            if path.is_file():
                with path.open("rb") as reader:
                    found[file.path] = _copy_into(fs, staging / file.path, reader,
                                                  path.stat().st_size, counter, sync=sync)
    return found


def _unpack_tarball(source: Path, staging: Path, fs: FileSystem, progress: bool,
                    sync: bool) -> tuple[BackupManifest, dict[str, tuple[int, int]]]:
    """Extract the files of the tarball ``source`` (only names a backup holds, only
    regular files); the manifest and (size, CRC) of each other file."""
    found: dict[str, tuple[int, int]] = {}
    manifest: BackupManifest | None = None
    try:
        with tarfile.open(source, "r:gz") as tar, \
                Progress("read backup", None, progress, unit="B") as counter:
            for member in tar:
                name = member.name
                if not member.isfile() or not _MEMBER.match(name) or name in found or \
                        (name == MANIFEST_NAME and manifest is not None):
                    raise BackupError(f"{source} holds {name!r}, which is not a file of a "
                                      "colibri-mm backup")
                reader = tar.extractfile(member)
                assert reader is not None  # a regular file
                if name == MANIFEST_NAME:
                    manifest = BackupManifest.decode(reader.read(), f"{source}:{name}")
                else:
                    found[name] = _copy_into(fs, staging / name, reader, member.size,
                                             counter, sync=sync)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise CorruptionError(f"{source} is not a readable .tar.gz ({e})",
                              path=str(source)) from None
    if manifest is None:
        raise BackupError(f"{source} is not a colibri-mm backup (it has no {MANIFEST_NAME})")
    return manifest, found


# -- restoring and verifying -----------------------------------------------------------


def restore(source: str | os.PathLike[str], data_dir: str | os.PathLike[str], *,
            force: bool = False, progress: bool = False) -> RestoreReport:
    """Restore the backup at ``source`` (a directory or ``.tar.gz``) into
    ``data_dir``.

    Every file is copied beside ``data_dir`` and checked against the manifest's
    sizes and CRC-32Cs before anything at ``data_dir`` changes; then the copy is
    synced and renamed into place (an existing ``data_dir``, only with ``force``,
    is moved aside first and deleted afterwards), and the database is opened once:
    recovery replays the WAL up to the backup's LSN. Returns what it found.

    Raises :class:`BackupError` if ``data_dir`` is not empty and ``force`` is not
    given, :class:`CorruptionError` naming the damaged file of a damaged backup.
    """
    from .database import connect

    started = time.perf_counter()
    source, data_dir = Path(source), Path(data_dir)
    if data_dir.exists() and not data_dir.is_dir():
        raise BackupError(f"{data_dir} exists and is not a directory")
    occupied = data_dir.is_dir() and any(data_dir.iterdir())
    if occupied and not force:
        raise BackupError(f"{data_dir} is not empty; restoring replaces it only when "
                          "forced (--force)")
    fs = FileSystem()
    fs.mkdir(data_dir.parent)
    with _staging_directory(data_dir, ".restoring") as staging:
        manifest = _unpack(source, staging, fs, progress, sync=True)
        aside = _moved_aside(fs, data_dir) if occupied else None
        try:
            fs.rename(staging, data_dir)  # replaces an empty directory
        except BaseException:
            if aside is not None:
                fs.rename(aside, data_dir)
            raise
        fs.sync_dir(data_dir.parent)
    if aside is not None:
        shutil.rmtree(aside)
    with connect(data_dir) as db:
        _require_lsn(db._applied_lsn, manifest, data_dir)
        keys = sum(1 for _ in db.kv.scan())
        rows = {name: db.table(name).count() for name in db.tables()}
    return RestoreReport(manifest, data_dir, manifest.lsn, keys, rows,
                         time.perf_counter() - started)


def _moved_aside(fs: FileSystem, data_dir: Path) -> Path:
    """Rename the directory ``data_dir`` to a new name beside it; returns that name."""
    aside = Path(tempfile.mkdtemp(prefix=f".{data_dir.name}.", suffix=".replaced",
                                  dir=data_dir.parent))
    fs.rename(data_dir, aside)  # over the empty directory mkdtemp made
    return aside


def verify_backup(source: str | os.PathLike[str], *,
                  progress: bool = False) -> tuple[BackupManifest, CheckReport]:
    """Check the backup at ``source``: its manifest, every file's size and CRC-32C,
    then a full :func:`~colibri_mm.check.check_database` of a temporary restored
    copy opened read-only with absolute recovery.

    Raises :class:`CorruptionError` naming the first damaged file; returns the
    manifest and the check's report (whose problems the caller looks at).
    """
    from .check import check_database
    from .database import connect

    source = Path(source)
    with tempfile.TemporaryDirectory(prefix="colibri-verify-") as scratch:
        copy = Path(scratch) / "db"
        manifest = _unpack(source, copy, FileSystem(), progress, sync=False)
        with connect(copy, readonly=True, recovery="absolute") as db:
            _require_lsn(db._applied_lsn, manifest, source)
            return manifest, check_database(db)


def _require_lsn(applied: int, manifest: BackupManifest, where: Path) -> None:
    """The WAL replayed on opening a restored backup must end at its manifest's LSN."""
    if applied != manifest.lsn:
        raise CorruptionError(f"the backup's WAL ends at LSN {applied}, its manifest "
                              f"says {manifest.lsn}", path=str(where))
