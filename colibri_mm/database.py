"""An open database: :func:`connect`, the :class:`Database` object and ``db.kv``.

Opening reads the meta and the catalog of the last checkpoint (its sorted runs are
mapped, not read), takes the write lock (unless read-only), replays the WAL after
the checkpoint into the in-memory version store, and starts the WAL writer and the
background checkpointer. A commit takes the
writer lock (one write transaction at a time), assigns a CSN, records its changes
as versions (visible to the next writer, not yet to readers), queues its WAL records,
releases the lock, and waits for its group commit; the CSN is published to readers
once the durability mode's level is reached.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt

from .arrow.importer import ImportResult, import_arrow
from .arrow.parquet import PathLike, import_parquet
from .backup import BackupManifest, backup
from .checkpoint import Checkpointer
from .errors import (
    ClosedError,
    CorruptionError,
    DiskFullError,
    Error,
    ReadOnlyError,
    TransactionError,
    is_disk_full,
)
from .format_switch import finish_switch
from .kernels.merge import Entries
from .kv.batch import Batch
from .kv.keys import TABLE_CHUNKS, as_bytes, prefix_end, user_key
from .kv.memtable import Memtable
from .kv.records import KV_CHANGES, encode_changes, encode_entries, record_bounds, split_changes
from .kv.store import StoreVersion
from .kv.wal_apply import WalApplier
from .kv.writeset import WriteSet
from .options import Options
from .storage.checksums import checksum_of
from .storage.extents import Extent, ExtentReader, ExtentWriter, named_extents
from .storage.files import FileSystem
from .storage.meta import (
    READ_VERSION,
    WRITE_VERSION,
    Meta,
    create_meta,
    format_version_text,
    read_meta,
)
from .storage.pagefile import DATA_NAME, PageFile
from .tables import registry, writes
from .tables.chunk_cache import ChunkCache
from .tables.rows import descriptors_among
from .tables.table import Table
from .tables.writes import WriteSettings
from .transaction import Snapshot, Transaction
from .txn.clock import CommitClock
from .txn.reader_table import ReaderTable, hold_slot
from .txn.replay import COMMIT, TransactionAssembler, encode_commit
from .txn.writer_lock import ProcessWriteLock
from .wal.follower import WalFollower
from .wal.reader import ReplayReport, WalReader
from .wal.writer import SmallWalBatch, WalBatch, WalPosition, WalWriter

log = logging.getLogger("colibri_mm")
WAL_DIR = "wal"
SWEEP_EVERY = 4096
"""Commits between sweeps of deleted keys out of the version store."""
SMALL_RECORD = 4096
"""Change records up to this size are framed without numpy when their group fits
in the current WAL block (see ``SmallWalBatch``)."""
MAX_FROZEN_LAYERS = 8
"""A checkpoint is wanted once this many frozen layers (bulk commits, memtables
frozen under them) are in memory: every read consults each layer."""


def connect(path: str | os.PathLike[str], *, create: bool = False,
            file_system: FileSystem | None = None, **options: Any) -> Database:
    """Open the database in directory ``path`` (``create=True`` makes it if missing).

    Options (see :class:`colibri_mm.options.Options`): ``durability`` ("full",
    "normal", "off"), ``page_size`` (at creation), ``readonly``, ``recovery``
    ("point_in_time", "absolute", "skip_corrupted"), ``wal_sync_interval_ms``,
    ``wal_segment_size``, ``lock_timeout`` (seconds to wait for another writer),
    ``max_key_size``, ``max_value_size``.
    """
    return Database(Path(path), create=create, options=Options(**options),
                    file_system=file_system or FileSystem())


class Database:
    """An open colibri-mm database. Use :func:`connect` to get one."""

    def __init__(self, path: Path, *, create: bool, options: Options,
                 file_system: FileSystem) -> None:
        self.path = path
        self.options = options
        self._fs = file_system
        self._closed = False
        self._write_mutex = threading.Lock()
        self._writer_thread: int | None = None
        self._lock: ProcessWriteLock | None = None
        self._writer: WalWriter | None = None
        self._checkpointer: Checkpointer | None = None
        self._commits_since_sweep = 0
        self._checkpoint_lock = threading.RLock()
        """Held by a checkpoint, and by a bulk transaction (which allocates pages)."""
        self._imported: set[Extent] = set()
        """Extents bulk transactions wrote since the last checkpoint."""
        self.extent_reader: ExtentReader | None = None
        self._install_lock = threading.Lock()
        """Serialises replacing the store version (bulk commits, checkpoints)."""
        self._checkpoint_wanted = threading.Event()
        self._checkpoint_thread: threading.Thread | None = None
        self._wal_bytes_at_checkpoint = 0
        self.last_checkpoint: dict[str, Any] = {}
        self.checkpoint_counts = {"written": 0, "failed": 0, "seconds": 0.0}
        """Checkpoints written and failed since opening, and the seconds written ones
        took."""
        self._follower: WalFollower | None = None
        self._refresh_lock = threading.Lock()
        self._live_replay = False
        self._cuts: dict[int, int] = {}
        """Checkpoint id -> first WAL segment a reader of that checkpoint needs."""
        self.read_only_reason: str | None = None
        """Why a database asked to open for writing was opened read-only (its format
        is older or newer than this engine writes); None otherwise."""
        finish_switch(file_system, path)
        self._meta = self._open_meta(create)
        options = self.options
        self._readers: ReaderTable | None = None
        try:
            self._readers = ReaderTable(file_system, path)
            if options.readonly:
                self._readers.claim(0)  # protect every page until we know our checkpoint
            else:
                self._lock = ProcessWriteLock(file_system, path, options.lock_timeout)
                self._lock.publish_written(options.durability != "full")
        except BaseException:
            self._release()
            raise
        try:
            meta, slot = read_meta(file_system, path)
            self._meta = meta
            pages = None
            if not options.readonly or file_system.exists(path / DATA_NAME):
                pages = PageFile(file_system, path, meta.page_size,
                                 writable=not options.readonly)
            self._checkpointer = Checkpointer(file_system, path, meta, slot, pages)
            if pages is not None:
                self.extent_reader = ExtentReader(pages, self._checkpointer.checksum)
            self._clock: CommitClock[StoreVersion] = CommitClock(
                meta.checkpoint_csn,
                StoreVersion(Memtable(), (), self._checkpointer.runs(), meta.checkpoint_id))
            self.recovery, position = self._recover()
            if options.readonly:
                if meta.write_version >= WRITE_VERSION:
                    # Only a database this engine (or a newer one) may write can change
                    # under a reader: nothing writes an older format.
                    self._follower = WalFollower(file_system, path / WAL_DIR,
                                                 self._applied_lsn)
                self._readers.announce(meta.checkpoint_id)
                self._live_replay = True
            else:
                self._claim_replayed_extents()
                self._writer = self._start_writer(position)
                self._checkpoint_thread = threading.Thread(
                    target=self._checkpoint_when_wanted, name="colibri-checkpoint",
                    daemon=True)
                self._checkpoint_thread.start()
        except BaseException:
            self._release()
            raise
        self.kv = DatabaseKv(self)
        self.chunk_cache = ChunkCache(options.chunk_cache_bytes)
        """Parsed table chunks kept for point reads (see ``tables/chunk_cache.py``)."""
        self.write_settings = WriteSettings(options.row_group_rows, options.bulk_changes,
                                            options.tail_rows, self.chunk_cache)

    # -- opening -----------------------------------------------------------------

    def _open_meta(self, create: bool) -> Meta:
        fs = self._fs
        if not fs.exists(self.path / "colibri.meta"):
            if not create:
                raise Error(f"{self.path} is not a colibri-mm database (no colibri.meta); "
                            "pass create=True to make one")
            if self.options.readonly:
                raise ReadOnlyError(f"cannot create {self.path} read-only")
            fs.mkdir(self.path / WAL_DIR)
            fs.sync_dir(self.path)
            create_meta(fs, self.path, Meta(
                read_version=READ_VERSION, write_version=WRITE_VERSION,
                page_size=self.options.page_size, database_id=uuid.uuid4().bytes,
                checkpoint_id=1, checkpoint_lsn=0, checkpoint_csn=0, catalog_root=0,
                free_list_root=0))
            log.info("created database %s", self.path)
        meta, _ = read_meta(fs, self.path)
        version = format_version_text(meta.write_version)
        if meta.write_version < WRITE_VERSION:
            self.read_only_reason = (
                f"{self.path} is in format {version}, which this engine reads but does "
                f"not write (it writes {format_version_text(WRITE_VERSION)}): run "
                f"`coldb migrate --data-dir {self.path}` to migrate it")
        elif meta.write_version > WRITE_VERSION:
            self.read_only_reason = (
                f"{self.path} has write version {version}; this engine writes up to "
                f"{format_version_text(WRITE_VERSION)}: upgrade colibri-mm to write it")
        if self.read_only_reason is not None and not self.options.readonly:
            log.warning("opening read-only: %s", self.read_only_reason)
            self.options = replace(self.options, readonly=True)
        return meta

    def _recover(self) -> tuple[ReplayReport, WalPosition | None]:
        limit = None
        if self.options.readonly and self._readers is not None:
            limit = self._readers.published_lsn()
        applier = WalApplier(self._clock.state, None, self.options.bulk_changes)
        assembler = TransactionAssembler(applier, limit)
        reader = WalReader(self._fs, self.path / WAL_DIR, self._meta.database_id,
                           self.options.recovery, checksum_of(self._meta.write_version))
        started = time.perf_counter()
        report, position = reader.replay(self._meta.checkpoint_lsn, assembler.feed,
                                         repair=not self.options.readonly)
        applier.flush()
        self._clock.install(applier.version)
        report.seconds = time.perf_counter() - started
        # A writable open keeps them in the log; the next checkpoint (even with
        # nothing else to write: ``coldb recover`` closes with one) rolls past them.
        self._unfinished_in_wal = assembler.unfinished_records > 0
        if assembler.unfinished_records:
            report.dropped.append(f"{assembler.unfinished_records} change records of a "
                                  "transaction without its COMMIT (cut by a crash)")
        if assembler.dropped_transactions:
            report.dropped.append(f"{assembler.dropped_transactions} transactions missing "
                                  "a record (salvage)")
        self._clock.assigned = max(self._clock.assigned, assembler.last_csn)
        self._clock.published = self._clock.assigned
        self.replayed_transactions = assembler.transactions
        self._applied_lsn = assembler.last_commit_lsn or self._meta.checkpoint_lsn
        log.info("recovery (%s): %d records, %d transactions, %d bytes in %.3f s%s",
                 report.mode, report.records, assembler.transactions, report.bytes,
                 report.seconds, "; dropped: " + "; ".join(report.dropped)
                 if report.dropped else "")
        return report, position

    def _claim_replayed_extents(self) -> None:
        """Take back from the free space the extents that commits replayed from the
        WAL name (bulk imports after the last checkpoint): that checkpoint's catalog
        does not know them. Every other free page waits for the next checkpoint
        (:meth:`Allocator.protect_until`): a replayed commit may have dropped an
        extent that a reader process or a result held across ``close()`` still
        reads."""
        checkpointer = self._checkpointer
        assert checkpointer is not None
        if checkpointer.pages is None:
            return
        if self.replayed_transactions:
            checkpointer.allocator.protect_until(checkpointer.meta.checkpoint_id + 1,
                                                 checkpointer.pages.pages)
        for layer in self._clock.state.layers():
            for extent in named_extents(layer.newest_entries(), TABLE_CHUNKS,
                                        checkpointer.pages.page_size):
                if extent not in self._imported:
                    checkpointer.allocator.claim(*extent)
                    self._imported.add(extent)

    # -- reader processes ------------------------------------------------------------

    def _refresh(self) -> None:
        """Catch up with the writer (read-only opens): a new checkpoint, then the WAL
        tail up to the writer's published LSN."""
        readers = self._readers
        assert readers is not None and self._checkpointer is not None
        with self._refresh_lock:
            for attempt in range(8):
                meta, slot = read_meta(self._fs, self.path)
                try:
                    # A meta slot being rewritten reads as invalid, so read_meta may
                    # return the older slot: never move back to an older checkpoint.
                    if meta.checkpoint_id > self._checkpointer.meta.checkpoint_id:
                        self._reload(meta, slot)
                    else:
                        self._follow()
                    break
                except CorruptionError:
                    # The writer checkpointed meanwhile and removed what we followed.
                    if attempt == 7 or read_meta(self._fs, self.path)[0] == meta:
                        raise
            pinned = [v.checkpoint_id for v in self._clock.live_states()]
            readers.announce(min([*pinned, self._clock.state.checkpoint_id]))

    def _follow(self) -> None:
        assert self._readers is not None and self._follower is not None
        applier = WalApplier(self._clock.state, self._clock.horizon,
                             self.options.bulk_changes)
        assembler = TransactionAssembler(applier)
        self._follower.poll(assembler, self._readers.published_lsn())
        applier.flush()
        if applier.version is not self._clock.state:
            self._clock.install(applier.version)
        if assembler.transactions:
            self._clock.assigned = max(self._clock.assigned, assembler.last_csn)
            self._clock.publish(self._clock.assigned)

    def _reload(self, meta: Meta, slot: int) -> None:
        """Switch to a newer checkpoint the writer made."""
        assert self._readers is not None and self._checkpointer is not None
        pages = self._checkpointer.pages
        if pages is None and self._fs.exists(self.path / DATA_NAME):
            pages = PageFile(self._fs, self.path, meta.page_size, writable=False)
        checkpointer = Checkpointer(self._fs, self.path, meta, slot, pages)
        applier = WalApplier(StoreVersion(Memtable(), (), checkpointer.runs(),
                                          meta.checkpoint_id), self._clock.horizon,
                             self.options.bulk_changes)
        follower = WalFollower(self._fs, self.path / WAL_DIR, meta.checkpoint_lsn)
        assembler = TransactionAssembler(applier)
        follower.poll(assembler, self._readers.published_lsn())
        applier.flush()
        self._clock.assigned = max(self._clock.assigned, meta.checkpoint_csn,
                                   assembler.last_csn)
        self._clock.install(applier.version)
        self._clock.publish(self._clock.assigned)
        self._checkpointer = checkpointer
        self._follower = follower

    def _start_writer(self, position: WalPosition | None) -> WalWriter:
        if position is None:
            position = WalPosition(segment=1, offset=0,
                                   next_lsn=self._meta.checkpoint_lsn + 1)
        return WalWriter(self._fs, self.path / WAL_DIR, self._meta.database_id,
                         position=position, durability=self.options.durability,
                         sync_interval_ms=self.options.wal_sync_interval_ms,
                         segment_size=self.options.wal_segment_size,
                         block_size=self.options.wal_block_size,
                         publish=self._publish)

    def _publish(self, csn: int, lsn: int) -> None:
        """A group reached its durability level: readers (threads, processes) see it."""
        self._clock.publish(csn)
        if self._lock is not None and self.options.durability == "full":
            try:
                self._lock.publish_lsn(lsn)
            except OSError as e:
                # The commit is durable; only reader processes lag until a later
                # publication succeeds.
                log.error("publishing LSN %d to reader processes failed: %s", lsn, e)

    # -- transactions --------------------------------------------------------------

    def _read_only_error(self, what: str) -> ReadOnlyError:
        """The error for an attempt to ``what`` in a read-only open, saying why it is
        read-only when the format made it so."""
        reason = f" ({self.read_only_reason})" if self.read_only_reason else ""
        return ReadOnlyError(f"{self.path} is open read-only: it cannot {what}{reason}")

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"the database {self.path} is closed")

    def transaction(self) -> Transaction:
        """Begin the write transaction (waits while another thread has one open)."""
        self._begin()
        return Transaction(self)

    def _begin(self) -> None:
        """Take the write mutex for a transaction (released by commit or abort)."""
        self._check_open()
        if self._writer is None:
            raise self._read_only_error("write")
        self._refuse_inside_transaction("begin another write transaction")
        self._write_mutex.acquire()
        self._writer_thread = threading.get_ident()
        if self._closed:
            self._end_transaction()
            raise ClosedError(f"the database {self.path} is closed")

    def snapshot(self) -> Snapshot:
        """A consistent read-only view at the newest published commit.

        In a read-only open while another process writes, the snapshot first catches
        up: it is no older than the last commit the writer published before this call.
        """
        self._check_open()
        if self._follower is not None:
            self._refresh()
        return Snapshot(self)

    def _current_version(self) -> StoreVersion:
        return self._clock.state

    def _refuse_inside_transaction(self, what: str) -> None:
        """Raise instead of waiting forever on this thread's own write transaction."""
        if self._writer_thread == threading.get_ident():
            raise TransactionError(f"cannot {what}: this thread has a write transaction "
                                   "open (commit or abort it first; write through its tx.kv)")

    def _end_transaction(self) -> None:
        self._writer_thread = None
        self._write_mutex.release()

    def _commit(self, writes: WriteSet) -> None:
        """Commit a transaction's write set (called with the write mutex held)."""
        if not writes:
            self._end_transaction()
            return
        try:
            changes = writes.resolve(self.options.bulk_changes)
        except BaseException:
            self._end_transaction()
            raise
        if not isinstance(changes, dict):
            writes.clear()  # merged into ``changes``: free the layers before logging them
        self._commit_changes(changes)

    def _commit_changes(self, changes: dict[bytes, bytes | None] | Entries) -> None:
        """Commit resolved changes (called with the write mutex held, which it releases
        before waiting for durability)."""
        writer = self._writer
        assert writer is not None
        try:
            csn = self._clock.next_csn()
            # Versions first, then the WAL queue: once queued, another committer's
            # group may publish this CSN, and by then every version must be in place.
            # (If submit fails the writer has failed: nothing is published any more.)
            if isinstance(changes, dict):
                batch = _wal_batch(changes, csn)
                active = self._clock.state.active
                active.apply(csn, changes, self._clock.horizon)
            else:
                bounds = record_bounds(changes)
                payload, offsets = encode_entries(changes, bounds,
                                                  encode_commit(csn, len(bounds)))
                batch = WalBatch(payload, offsets, _record_types(len(bounds)), csn)
                with self._install_lock:
                    self._clock.install(self._clock.state.with_batch(Batch(csn, changes)))
            ticket = writer.submit(batch)
        except BaseException:
            self._end_transaction()
            raise
        try:
            # Once queued, the ticket is always waited for (below, whatever happens
            # here), so no group's leadership is left to a committer that went away.
            state = self._clock.state
            self._commits_since_sweep += 1
            if self._commits_since_sweep >= SWEEP_EVERY:
                self._commits_since_sweep = 0
                state.active.sweep(self._clock.horizon(), state.held_below_active)
            dirty = state.dirty_bytes()
            if dirty >= self.options.max_dirty_bytes or \
                    len(state.frozen) >= MAX_FROZEN_LAYERS or \
                    writer.counters.bytes_written - self._wal_bytes_at_checkpoint \
                    >= self.options.checkpoint_wal_bytes:
                self._checkpoint_wanted.set()
        finally:
            self._end_transaction()
            writer.wait(ticket)
        if dirty >= 2 * self.options.max_dirty_bytes or \
                len(state.frozen) >= 2 * MAX_FROZEN_LAYERS:
            # Backpressure: the background checkpoint is not keeping up, so this
            # committer checkpoints itself; memory stays near 2 x max_dirty_bytes.
            # The commit is durable already: a failed checkpoint is logged (as in
            # the background), not raised as if the commit had failed.
            try:
                self._checkpoint()
            except Exception as e:
                log.error("checkpoint after a commit (memory backpressure) failed: %s", e)

    # -- tables --------------------------------------------------------------------

    def create_table(self, name: str, schema: Any,
                     primary_key: str | Sequence[str] | None = None) -> Table:
        """Create table ``name`` with a ``pyarrow.Schema`` and a primary key of one or
        more columns (None: a keyless table), in a transaction of its own."""
        with self.transaction() as tx:
            registry.create(tx.kv, name, schema, primary_key)
        return Table(self, name)

    def table(self, name: str) -> Table:
        """The table named ``name`` (:class:`TableNotFoundError` if there is none)."""
        with self.snapshot() as snap:
            registry.lookup(snap.kv, name)
        return Table(self, name)

    def tables(self) -> list[str]:
        """Names of every table, sorted."""
        with self.snapshot() as snap:
            return registry.names(snap.kv)

    def drop_table(self, name: str) -> None:
        """Remove table ``name`` and its rows and indexes (in a transaction of its
        own; snapshots already open keep seeing it)."""
        with self.transaction() as tx:
            writes.drop_rows(tx.kv, registry.drop(tx.kv, name))

    def import_arrow(self, name: str, data: Any, *,
                     primary_key: str | Sequence[str] | None = None, mode: str = "create",
                     progress: bool = False, total_rows: int | None = None) -> ImportResult:
        """Import ``data`` into table ``name`` in one transaction, streaming.

        ``data``: a ``pa.Table``, ``pa.RecordBatch`` or ``pa.RecordBatchReader``, a
        pandas or polars DataFrame, anything with ``__arrow_c_stream__``, or an
        iterable of record batches. ``mode``: ``"create"`` (a new table with the
        data's schema and ``primary_key``), ``"append"``, ``"upsert"`` (rows with a
        primary key already present replace it) or ``"replace"`` (new rows, schema
        and primary key; indexes on remaining columns rebuilt). All or nothing: a
        schema mismatch, duplicate key or unsupported type raises an error naming
        it and imports nothing. ``progress``: draw a bar (rows, MB/s, time left;
        ``total_rows`` gives it a total when the source cannot say).
        """
        return import_arrow(self, name, data, primary_key=primary_key, mode=mode,
                            progress=progress, total_rows=total_rows)

    def import_parquet(self, name: str, source: PathLike | Sequence[PathLike], *,
                       columns: Sequence[str] | None = None,
                       primary_key: str | Sequence[str] | None = None,
                       mode: str = "create", partitioning: str | None = "hive",
                       progress: bool = False) -> ImportResult:
        """Import Parquet data into table ``name`` like :meth:`import_arrow`.

        ``source``: a file, a list of files, a directory, or a hive-partitioned
        dataset (``partitioning="hive"``: ``key=value`` directories become
        columns), read as a stream through ``pyarrow.dataset``; ``columns``: only
        these.
        """
        return import_parquet(self, name, source, columns=columns, primary_key=primary_key,
                              mode=mode, partitioning=partitioning, progress=progress)

    def rename_table(self, old: str, new: str) -> None:
        """Rename table ``old`` to ``new`` (in a transaction of its own)."""
        with self.transaction() as tx:
            registry.rename(tx.kv, old, new)

    # -- checkpoints ---------------------------------------------------------------

    def checkpoint(self) -> dict[str, Any]:
        """Write the changes since the last checkpoint into the data file.

        Afterwards opening replays no WAL written before this call, and the WAL
        segments before it are deleted. Writers wait only for the moment the
        in-memory versions are frozen; readers never wait. Returns what was written.
        """
        self._check_open()
        if self._writer is None:
            raise self._read_only_error("checkpoint")
        return self._checkpoint()

    def _checkpoint(self) -> dict[str, Any]:
        try:
            result = self._write_checkpoint()
        except BaseException as e:
            self.checkpoint_counts["failed"] += 1
            self.last_checkpoint = {"error": str(e) or type(e).__name__, "at": time.time()}
            if is_disk_full(e):
                raise DiskFullError(
                    f"the checkpoint ran out of disk space ({e}); nothing is lost (the WAL "
                    "keeps every commit): free space and checkpoint again") from e
            raise
        if not result.get("skipped"):
            self.checkpoint_counts["written"] += 1
            self.checkpoint_counts["seconds"] += result["seconds"]
        return result

    def _write_checkpoint(self) -> dict[str, Any]:
        writer = self._writer
        checkpointer = self._checkpointer
        assert writer is not None and checkpointer is not None
        self._refuse_inside_transaction("checkpoint")
        with self._checkpoint_lock:
            started = time.perf_counter()
            self._write_mutex.acquire()
            try:
                writer.flush()
                version = self._clock.state
                frozen = version.active
                if len(frozen) == 0 and not version.frozen and not self._unfinished_in_wal:
                    return {"entries": 0, "skipped": True}
                csn = self._clock.assigned
                lsn = writer.position.next_lsn - 1
                cut = writer.roll()
                self._wal_bytes_at_checkpoint = writer.counters.bytes_written
                # Memtables frozen by a checkpoint that failed are written by this one.
                frozen_all = (frozen, *version.frozen) if len(frozen) or not version.frozen \
                    else version.frozen
                with self._install_lock:
                    self._clock.install(StoreVersion(Memtable(), frozen_all, version.runs,
                                                     version.checkpoint_id))
            finally:
                self._write_mutex.release()
            imported = set(self._imported)
            result = checkpointer.write(frozen_all, version.runs, lsn, csn,
                                        self._oldest_visible_checkpoint(), imported)
            self._imported -= imported
            with self._install_lock:
                current = self._clock.state
                self._clock.install(StoreVersion(
                    current.active,
                    tuple(m for m in current.frozen if all(m is not f for f in frozen_all)),
                    result.runs, result.meta.checkpoint_id))
            self._cuts[result.meta.checkpoint_id] = cut
            removed = self._remove_unneeded_segments(result.meta.checkpoint_id)
            self.last_checkpoint = {
                "checkpoint_id": result.meta.checkpoint_id, "lsn": lsn, "csn": csn,
                "entries": result.entries, "run_bytes": result.run_bytes,
                "merged_runs": result.merged_runs, "runs": len(result.runs),
                "wal_segments_removed": removed,
                "seconds": time.perf_counter() - started, "at": time.time(),
            }
            self._unfinished_in_wal = False
            log.info("checkpoint %d: %d entries, %d bytes, %d runs merged, %.3f s",
                     result.meta.checkpoint_id, result.entries, result.run_bytes,
                     result.merged_runs, self.last_checkpoint["seconds"])
            return dict(self.last_checkpoint)

    def _oldest_visible_checkpoint(self) -> int:
        """The oldest checkpoint a snapshot, a lease or a reader process may read:
        pages released by a later checkpoint must not be reused yet."""
        checkpointer = self._checkpointer
        assert self._readers is not None and checkpointer is not None
        in_use = [v.checkpoint_id for v in self._clock.live_states()]
        by_readers = self._readers.oldest_checkpoint()
        if by_readers is not None:
            in_use.append(by_readers)
        return min(in_use, default=checkpointer.meta.checkpoint_id)

    @contextmanager
    def bulk_transaction(self) -> Iterator[tuple[Transaction, WriteSettings]]:
        """A write transaction whose table chunks of at least a few pages are written
        as extents of the data file (``storage/extents.py``) rather than into the
        WAL: yields the transaction and the write settings that do so. The extents
        are synced before the commit, which logs only their descriptors. No
        checkpoint runs meanwhile (both allocate pages). Commits on leaving the
        block normally, aborts on an exception."""
        self._check_open()
        checkpointer = self._checkpointer
        if self._writer is None or checkpointer is None or checkpointer.pages is None:
            raise self._read_only_error("import")
        self._refuse_inside_transaction("import")  # before the lock a checkpoint holds
        with self._checkpoint_lock:
            tx = self.transaction()
            extents = ExtentWriter(checkpointer.pages, checkpointer.allocator,
                                   self._oldest_visible_checkpoint())
            try:
                yield tx, replace(self.write_settings, extents=extents)
                extents.sync()
            except BaseException as e:
                tx.abort()
                extents.release()  # no commit named them: free again at once
                if is_disk_full(e):
                    raise DiskFullError(
                        f"the import ran out of disk space ({e}); it was rolled back and "
                        "nothing of it is stored: free space and run it again") from e
                raise
            # Known before the commit: a checkpoint the commit runs itself (memory
            # backpressure) must count them.
            self._imported.update(extents.extents)
            tx.commit()

    def _remove_unneeded_segments(self, newest: int) -> int:
        """Delete WAL segments no reader process needs (each replays the WAL after the
        checkpoint it reads); keep everything if a reader is on an unknown one."""
        assert self._writer is not None and self._readers is not None
        oldest = self._readers.oldest_checkpoint()
        needed = newest if oldest is None else min(oldest, newest)
        if needed not in self._cuts:
            return 0
        for old in [k for k in self._cuts if k < needed]:
            del self._cuts[old]
        return self._writer.remove_segments_before(self._cuts[needed])

    def _checkpoint_when_wanted(self) -> None:
        while True:
            self._checkpoint_wanted.wait()
            if self._closed:
                return
            self._checkpoint_wanted.clear()
            try:
                self._checkpoint()
            except Exception as e:
                log.error("automatic checkpoint failed: %s", e)

    def verify(self) -> dict[str, int]:
        """Check every page of the checkpoint against its CRC and every run's
        structure, and every extent a table chunk names against its page CRCs.

        Raises :class:`CorruptionError` naming the file and offset of the first damage;
        returns what was checked. (The WAL was checked by recovery at open.)
        """
        self._check_open()
        runs = self._clock.state.runs
        extents = extent_pages = 0
        with self.snapshot() as snap:
            chunks = snap.kv.range_raw(TABLE_CHUNKS, prefix_end(TABLE_CHUNKS))
            for _, value in descriptors_among(chunks):
                if self.extent_reader is not None:
                    extent_pages += -(-len(self.extent_reader.check(value)) //
                                      self._meta.page_size)
                    extents += 1
        return {"runs": len(runs), "run_pages": sum(r.extent.count for r in runs),
                "run_entries": sum(len(r) for r in runs), "extents": extents,
                "extent_pages": extent_pages}

    def backup(self, target: str | os.PathLike[str], *,
               progress: bool = False) -> BackupManifest:
        """Copy the database to ``target`` (a new directory, or a ``.tar.gz`` file)
        while writers keep committing: a consistent online backup of every commit
        written when it starts, with a manifest of CRC-32Cs. Needs the database open
        for writing. See :func:`colibri_mm.backup.backup` and ``docs/OPERATIONS.md``.
        """
        return backup(self, target, progress=progress)

    # -- the rest ------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters and state, as a flat dict of numbers and strings."""
        stats: dict[str, Any] = {
            "path": str(self.path),
            "readonly": self.options.readonly,
            "format_version": format_version_text(self._meta.write_version),
            "read_only_reason": self.read_only_reason,
            "durability": self.options.durability,
            "page_size": self._meta.page_size,
            "checkpoint_id": self._checkpointer.meta.checkpoint_id
            if self._checkpointer else self._meta.checkpoint_id,
            "published_csn": self._clock.published,
            "live_snapshots": self._clock.live_snapshots,
            "kv_keys_in_memory": sum(len(m) for m in self._clock.state.layers()),
            "kv_layers_in_memory": len(self._clock.state.layers()),
            "kv_bytes_in_memory": self._clock.state.dirty_bytes(),
            "kv_runs": len(self._clock.state.runs),
            "last_checkpoint": dict(self.last_checkpoint),
            "checkpoints_written": self.checkpoint_counts["written"],
            "checkpoints_failed": self.checkpoint_counts["failed"],
            "checkpoint_seconds_total": self.checkpoint_counts["seconds"],
            "recovery_mode": self.recovery.mode,
            "recovery_records": self.recovery.records,
            "recovery_transactions": self.replayed_transactions,
            "recovery_bytes": self.recovery.bytes,
            "recovery_seconds": self.recovery.seconds,
            "recovery_dropped": list(self.recovery.dropped),
        }
        if self._checkpointer is not None:
            allocator = self._checkpointer.allocator
            stats["data_pages_used"] = allocator.end
            stats["data_pages_free"] = allocator.free_pages
        if self._writer is not None:
            c = self._writer.counters
            position = self._writer.position
            stats.update({
                "wal_commits": c.commits, "wal_groups": c.groups,
                "wal_bytes_written": c.bytes_written, "wal_syncs": c.syncs,
                "wal_sync_seconds": c.sync_seconds, "wal_largest_group": c.largest_group,
                "wal_segments_created": c.segments_created, "wal_segment": position.segment,
                "wal_next_lsn": position.next_lsn,
            })
        return stats

    def close(self) -> None:
        """Finish: sync the WAL, release the lock (idempotent).

        Waits for a write transaction in another thread to end first.
        """
        if self._closed:
            return
        self._refuse_inside_transaction("close the database")
        try:
            state = self._clock.state
            if self._writer is not None and self.options.checkpoint_on_close and \
                    (len(state.active) or state.frozen or self._unfinished_in_wal):
                try:
                    self._checkpoint()
                except (Error, OSError) as e:
                    log.warning("checkpoint at close failed (the WAL keeps every commit): %s",
                                e)
        finally:
            with self._write_mutex:
                self._closed = True
            self._checkpoint_wanted.set()
            if self._checkpoint_thread is not None:
                self._checkpoint_thread.join()
            try:
                self._keep_leased_pages()
            finally:
                self._release()

    def _keep_leased_pages(self) -> None:
        """Zero-copy results still alive read pages of the data file: a reader slot
        announcing the oldest checkpoint they read stays claimed until the last of
        them is freed, so no later writer (this process after a reopen, or another)
        reuses those pages."""
        leases = self._clock.live_leases()
        if not leases:
            return
        oldest = min(state.checkpoint_id for _, state in leases)
        try:
            holder = hold_slot(self._fs, self.path, oldest)
        except Error as e:
            log.warning("%d zero-copy results outlive the database, and their pages "
                        "cannot be protected (%s): copy them before closing", len(leases), e)
            return
        for lease, _ in leases:
            lease.keeper = holder

    def _release(self) -> None:
        try:
            if self._writer is not None:
                self._writer.close()
        finally:
            if self._checkpointer is not None and self._checkpointer.pages is not None:
                self._checkpointer.pages.close()
            if self._lock is not None:
                self._lock.release()
            if self._readers is not None:
                self._readers.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("read-only" if self._writer is None else "open")
        return f"<colibri_mm.Database {str(self.path)!r} {state}>"


def _wal_batch(writes: dict[bytes, bytes | None], csn: int) -> SmallWalBatch | WalBatch:
    """A transaction's WAL records: its change records, then its COMMIT."""
    keys = list(writes)
    values = list(writes.values())
    if len(keys) == 1:
        payloads = [encode_changes(keys, values)]
    else:
        payloads = [encode_changes(keys[i:j], values[i:j])
                    for i, j in split_changes(keys, values)]
    commit = encode_commit(csn, len(payloads))
    if len(payloads) == 1 and len(payloads[0]) <= SMALL_RECORD:
        return SmallWalBatch([(KV_CHANGES, payloads[0]), (COMMIT, commit)], csn)
    types = _record_types(len(payloads))
    payloads.append(commit)
    offsets = np.array([0, *itertools.accumulate(map(len, payloads))], np.int64)
    return WalBatch(np.frombuffer(b"".join(payloads), np.uint8), offsets, types, csn)


def _record_types(change_records: int) -> npt.NDArray[np.uint8]:
    """WAL record types of a transaction: its change records, then its COMMIT."""
    if change_records == 1:
        return _ONE_RECORD_AND_COMMIT
    types = np.full(change_records + 1, KV_CHANGES, np.uint8)
    types[-1] = COMMIT
    return types


_ONE_RECORD_AND_COMMIT = np.array([KV_CHANGES, COMMIT], np.uint8)
_ONE_RECORD_AND_COMMIT.flags.writeable = False


class DatabaseKv:
    """``db.kv``: each call is its own transaction (writes) or snapshot (reads)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def put(self, key: Any, value: Any) -> None:
        """Set ``key`` to ``value`` and commit."""
        options = self._db.options
        change: dict[bytes, bytes | None] = {
            user_key(key, "key", options.max_key_size):
            as_bytes(value, "value", options.max_value_size)}
        self._db._begin()
        self._db._commit_changes(change)

    def put_many(self, keys: Any, values: Any) -> int:
        """Set many pairs in one transaction; returns how many."""
        with self._db.transaction() as tx:
            return tx.kv.put_many(keys, values)

    def delete(self, key: Any) -> bool:
        """Delete ``key`` and commit; True if it existed."""
        with self._db.transaction() as tx:
            return tx.kv.delete(key)

    def get(self, key: Any) -> bytes | None:
        """The newest committed value of ``key``, or None (its own brief snapshot)."""
        db = self._db
        k = user_key(key, "key", db.options.max_key_size)
        db._check_open()
        if db._follower is not None:
            db._refresh()
        snapshot_id, csn, version = db._clock.open_snapshot()
        try:
            return version.get(k, csn)
        finally:
            db._clock.close_snapshot(snapshot_id)

    def scan(self, start: Any = None, end: Any = None,
             prefix: Any = None) -> Iterator[tuple[bytes, bytes]]:
        """Ordered pairs from one snapshot taken when iteration starts."""
        with self._db.snapshot() as snap:
            yield from snap.kv.scan(start, end, prefix)


