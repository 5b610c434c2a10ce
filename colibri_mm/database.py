"""An open database: :func:`connect`, the :class:`Database` object and ``db.kv``.

Opening reads the meta, takes the write lock (unless read-only), replays the WAL
into the in-memory version store, and starts the WAL writer. A commit takes the
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
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from .errors import ClosedError, CorruptionError, Error, ReadOnlyError
from .kv.keys import as_bytes
from .kv.memtable import Memtable
from .kv.records import KV_CHANGES, decode_changes, encode_changes, split_changes
from .options import Options
from .storage.files import FileSystem
from .storage.meta import READ_VERSION, WRITE_VERSION, Meta, create_meta, read_meta
from .transaction import Snapshot, Transaction
from .txn.clock import CommitClock
from .txn.replay import COMMIT, CommittedTransaction, TransactionAssembler, encode_commit
from .txn.writer_lock import ProcessWriteLock
from .wal.reader import ReplayReport, WalReader
from .wal.writer import WalBatch, WalPosition, WalWriter

log = logging.getLogger("colibri_mm")
WAL_DIR = "wal"
SWEEP_EVERY = 4096
"""Commits between sweeps of deleted keys out of the version store."""


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
        self._lock: ProcessWriteLock | None = None
        self._writer: WalWriter | None = None
        self._memtable = Memtable()
        self._commits_since_sweep = 0
        self._meta = self._open_meta(create)
        if not options.readonly:
            self._lock = ProcessWriteLock(file_system, path, options.lock_timeout)
        try:
            self._clock = CommitClock(self._meta.checkpoint_csn)
            self.recovery, position = self._recover()
            if not options.readonly:
                self._writer = self._start_writer(position)
        except BaseException:
            self._release()
            raise
        self.kv = DatabaseKv(self)

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
        if meta.write_version > WRITE_VERSION and not self.options.readonly:
            raise ReadOnlyError(
                f"{self.path} was written by a newer format (write version "
                f"{meta.write_version >> 8}.{meta.write_version & 0xFF}); open it with "
                "readonly=True or upgrade colibri-mm")
        return meta

    def _recover(self) -> tuple[ReplayReport, WalPosition | None]:
        assembler = TransactionAssembler(self._replay_transaction)
        reader = WalReader(self._fs, self.path / WAL_DIR, self._meta.database_id,
                           self.options.recovery)
        report, position = reader.replay(self._meta.checkpoint_lsn, assembler.feed,
                                         repair=not self.options.readonly)
        if assembler.unfinished_records:
            report.dropped.append(f"{assembler.unfinished_records} change records of a "
                                  "transaction without its COMMIT (cut by a crash)")
        if assembler.dropped_transactions:
            report.dropped.append(f"{assembler.dropped_transactions} transactions missing "
                                  "a record (salvage)")
        self._clock.assigned = max(self._clock.assigned, assembler.last_csn)
        self._clock.published = self._clock.assigned
        self.replayed_transactions = assembler.transactions
        log.info("recovery (%s): %d records, %d transactions, %d bytes in %.3f s%s",
                 report.mode, report.records, assembler.transactions, report.bytes,
                 report.seconds, "; dropped: " + "; ".join(report.dropped)
                 if report.dropped else "")
        return report, position

    def _replay_transaction(self, tx: CommittedTransaction) -> None:
        changes: dict[bytes, bytes | None] = {}
        for record_type, payload in tx.records:
            if record_type != KV_CHANGES:
                raise CorruptionError(f"WAL record of unknown type {record_type} in the "
                                      f"transaction committed at LSN {tx.commit_lsn}")
            keys, values = decode_changes(payload, f"the transaction committed at LSN "
                                                   f"{tx.commit_lsn}")
            changes.update(zip(keys, values, strict=True))
        self._memtable.apply(tx.csn, changes, horizon=tx.csn)

    def _start_writer(self, position: WalPosition | None) -> WalWriter:
        if position is None:
            position = WalPosition(segment=1, offset=0,
                                   next_lsn=self._meta.checkpoint_lsn + 1)
        return WalWriter(self._fs, self.path / WAL_DIR, self._meta.database_id,
                         position=position, durability=self.options.durability,
                         sync_interval_ms=self.options.wal_sync_interval_ms,
                         segment_size=self.options.wal_segment_size,
                         block_size=self.options.wal_block_size,
                         publish=self._clock.publish)

    # -- transactions --------------------------------------------------------------

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
            raise ReadOnlyError(f"{self.path} is open read-only")
        self._write_mutex.acquire()
        if self._closed:
            self._write_mutex.release()
            raise ClosedError(f"the database {self.path} is closed")

    def snapshot(self) -> Snapshot:
        """A consistent read-only view at the newest published commit."""
        self._check_open()
        return Snapshot(self)

    def _end_transaction(self) -> None:
        self._write_mutex.release()

    def _commit(self, writes: dict[bytes, bytes | None]) -> None:
        """Commit a transaction's write set (called with the write mutex held)."""
        writer = self._writer
        assert writer is not None
        try:
            if not writes:
                return
            csn = self._clock.next_csn()
            ticket = writer.submit(_wal_batch(writes, csn))
            self._memtable.apply(csn, writes, self._clock.horizon())
            self._commits_since_sweep += 1
            if self._commits_since_sweep >= SWEEP_EVERY:
                self._commits_since_sweep = 0
                self._memtable.sweep(self._clock.horizon())
        finally:
            self._write_mutex.release()
        writer.wait(ticket)

    # -- the rest ------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters and state, as a flat dict of numbers and strings."""
        stats: dict[str, Any] = {
            "path": str(self.path),
            "readonly": self.options.readonly,
            "durability": self.options.durability,
            "page_size": self._meta.page_size,
            "checkpoint_id": self._meta.checkpoint_id,
            "published_csn": self._clock.published,
            "live_snapshots": self._clock.live_snapshots,
            "kv_keys_in_memory": len(self._memtable),
            "recovery_mode": self.recovery.mode,
            "recovery_records": self.recovery.records,
            "recovery_transactions": self.replayed_transactions,
            "recovery_bytes": self.recovery.bytes,
            "recovery_seconds": self.recovery.seconds,
            "recovery_dropped": list(self.recovery.dropped),
        }
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
        with self._write_mutex:
            self._closed = True
        self._release()

    def _release(self) -> None:
        try:
            if self._writer is not None:
                self._writer.close()
        finally:
            if self._lock is not None:
                self._lock.release()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("read-only" if self._writer is None else "open")
        return f"<colibri_mm.Database {str(self.path)!r} {state}>"


def _wal_batch(writes: dict[bytes, bytes | None], csn: int) -> WalBatch:
    """A transaction's WAL records: its changes, then its COMMIT."""
    keys = list(writes)
    values = list(writes.values())
    payloads = [encode_changes(keys[i:j], values[i:j]) for i, j in split_changes(keys, values)]
    payloads.append(encode_commit(csn, len(payloads)))
    offsets = np.array([0, *itertools.accumulate(map(len, payloads))], np.int64)
    if len(payloads) == 2:
        types = _ONE_RECORD_AND_COMMIT
    else:
        types = np.full(len(payloads), KV_CHANGES, np.uint8)
        types[-1] = COMMIT
    return WalBatch(np.frombuffer(b"".join(payloads), np.uint8), offsets, types, csn)


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
            as_bytes(key, "key", options.max_key_size):
            as_bytes(value, "value", options.max_value_size)}
        self._db._begin()
        self._db._commit(change)

    def put_many(self, keys: Any, values: Any) -> int:
        """Set many pairs in one transaction; returns how many."""
        with self._db.transaction() as tx:
            return tx.kv.put_many(keys, values)

    def delete(self, key: Any) -> bool:
        """Delete ``key`` and commit; True if it existed."""
        with self._db.transaction() as tx:
            return tx.kv.delete(key)

    def get(self, key: Any) -> bytes | None:
        """The newest committed value of ``key``, or None."""
        with self._db.snapshot() as snap:
            return snap.kv.get(key)

    def scan(self, start: Any = None, end: Any = None,
             prefix: Any = None) -> Iterator[tuple[bytes, bytes]]:
        """Ordered pairs from one snapshot taken when iteration starts."""
        with self._db.snapshot() as snap:
            yield from snap.kv.scan(start, end, prefix)


