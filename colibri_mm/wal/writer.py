"""The WAL writer: appends transactions' records to segment files with group commit.

A committing transaction hands its encoded records to :meth:`WalWriter.submit`
(under the database's writer lock, so batches queue in commit order) and then calls
:meth:`WalWriter.wait` (after releasing that lock). The first waiter that finds no
leader becomes the leader: it frames every queued batch in one kernel call, writes
them with one ``pwrite``, syncs once if the durability mode asks for it, publishes
the group's last commit sequence number (CSN) and wakes the others. Batches that
arrive meanwhile form the next group.

Durability modes:

- ``full``: ``fdatasync`` before any commit of the group is acknowledged.
- ``normal``: every commit is written to the OS before it is acknowledged (a process
  crash loses nothing); a background thread syncs at most every
  ``sync_interval_ms``, so a power cut may lose the commits of that window.
- ``off``: written to the OS, synced only at segment roll and close.

If a write or sync fails, the writer cuts the segment back to where the failed
group began, refuses every later commit with :class:`DurabilityError`, and the
database must be reopened; recovery then finds exactly the acknowledged commits.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ..errors import ClosedError, DiskFullError, DurabilityError, is_disk_full
from ..kernels import walcodec
from ..storage.files import File, FileSystem
from .segment import RECORDS_OFFSET, SegmentHeader, segment_numbers, segment_path

DURABILITY_MODES = ("full", "normal", "off")
ZERO_AHEAD = 1 << 20
"""In mode ``full``, small groups are written into space zero-filled ahead of them
(this many bytes at a time): overwriting allocated blocks lets each commit's
``fdatasync`` write data only, not the file's growth (measured 1.4-1.9x more syncs
per second than appending here). Recovery reads the zeros as unwritten space."""
PARK_SECONDS = 0.05
"""A parked committer looks again this often even unwoken, so leadership is never
stranded (say, when the committer nudged to lead was interrupted)."""
ZERO_AHEAD_LARGEST_GROUP = 64 << 10
"""Bigger groups are appended as they are: zero-filling would double their writes."""


@dataclass
class WalBatch:
    """The records of one transaction: record i is ``payload[offsets[i]:offsets[i+1]]``
    with WAL record type ``types[i]``; ``csn`` is the commit's sequence number."""

    payload: npt.NDArray[np.uint8]
    offsets: npt.NDArray[np.int64]
    types: npt.NDArray[np.uint8]
    csn: int

    @property
    def record_count(self) -> int:
        """Number of records."""
        return int(self.types.size)

    def as_arrays(self) -> WalBatch:
        """This batch."""
        return self


@dataclass
class SmallWalBatch:
    """The records of a small transaction as ``(record type, payload)`` pairs: a group
    of these that fits in the current block is framed without numpy
    (:meth:`~colibri_mm.kernels.walcodec.SegmentFramer.encode_small`)."""

    records: list[tuple[int, bytes]]
    csn: int

    @property
    def record_count(self) -> int:
        """Number of records."""
        return len(self.records)

    def as_arrays(self) -> WalBatch:
        """The same records as a :class:`WalBatch`."""
        offsets = np.zeros(len(self.records) + 1, np.int64)
        np.cumsum([len(payload) for _, payload in self.records], out=offsets[1:])
        return WalBatch(np.frombuffer(b"".join(p for _, p in self.records), np.uint8),
                        offsets, np.array([t for t, _ in self.records], np.uint8), self.csn)


class WalTicket:
    """A submitted batch, until its group is written (see :meth:`WalWriter.wait`)."""

    __slots__ = ("batch", "done", "error", "first_lsn", "signalled", "wake")

    def __init__(self, batch: WalBatch | SmallWalBatch) -> None:
        self.batch = batch
        self.done = False
        self.error: BaseException | None = None
        self.first_lsn = 0
        self.wake = threading.Lock()
        """Held while its committer is parked; released (under the writer's lock,
        once: see ``signalled``) when the ticket is done or its committer should try
        to lead, so only the threads concerned wake."""
        self.wake.acquire()
        self.signalled = False


def _signal(ticket: WalTicket) -> None:
    """Wake ``ticket``'s parked committer (called with the writer's lock held)."""
    if not ticket.signalled:
        ticket.signalled = True
        ticket.wake.release()


@dataclass
class WalPosition:
    """Where the writer appends: segment number, byte offset in it, next LSN."""

    segment: int
    offset: int
    next_lsn: int


@dataclass
class WalCounters:
    """Running totals for ``db.stats()`` and metrics."""

    commits: int = 0
    groups: int = 0
    bytes_written: int = 0
    syncs: int = 0
    largest_group: int = 0
    segments_created: int = 0
    sync_seconds: float = 0.0


def wal_failure(what: str, error: OSError) -> DurabilityError:
    """The error that ends the WAL after ``error``: :class:`DiskFullError` when the
    file system is full, else :class:`DurabilityError`."""
    if is_disk_full(error):
        return DiskFullError(f"{what}: the file system is full ({error}); the commit is "
                             "not durable: free space, then reopen the database (nothing "
                             "acknowledged is lost)")
    return DurabilityError(f"{what}: {error}; the commit is not durable and the database "
                           "must be reopened")


class WalWriter:
    """Appends framed records to the WAL of one database (see the module docstring)."""

    def __init__(self, fs: FileSystem, wal_dir: Path, database_id: bytes, *,
                 position: WalPosition, durability: str, sync_interval_ms: float,
                 segment_size: int, block_size: int,
                 publish: Callable[[int, int], None]) -> None:
        if durability not in DURABILITY_MODES:
            raise ValueError(f"durability must be one of {DURABILITY_MODES}, got {durability!r}")
        self._fs = fs
        self._wal_dir = wal_dir
        self._database_id = database_id
        self._durability = durability
        self._segment_size = segment_size
        self._block_size = block_size
        self._publish = publish
        self._position = position
        self._cond = threading.Condition()
        self._io_lock = threading.Lock()
        self._queue: list[WalTicket] = []
        self._leading = False
        self._failure: DurabilityError | None = None
        self._closed = False
        self._unsynced = False
        self.counters = WalCounters()
        self._file = self._open_segment(position)
        self._zeroed_until = self._file.size()
        self._framer = walcodec.SegmentFramer(position.segment, block_size)
        self._stop_syncer = threading.Event()
        self._syncer: threading.Thread | None = None
        if durability == "normal":
            self._syncer = threading.Thread(target=self._sync_periodically,
                                            args=(sync_interval_ms / 1000.0,),
                                            name="colibri-wal-sync", daemon=True)
            self._syncer.start()

    @property
    def position(self) -> WalPosition:
        """Where the next group will be appended."""
        return self._position

    def _open_segment(self, position: WalPosition) -> File:
        path = segment_path(self._wal_dir, position.segment)
        if position.offset > 0:
            return self._fs.open(path)
        header = SegmentHeader(position.segment, position.next_lsn, self._block_size,
                               self._database_id)
        file = self._fs.open(path, create=True, exclusive=True)
        try:
            file.pwrite(header.encode(), 0)
            file.datasync()
            self._fs.sync_dir(self._wal_dir)
        except BaseException:
            file.close()
            # A later roll creates the same segment again (exclusively); a reader
            # takes a header it cannot read for a segment being created.
            with contextlib.suppress(OSError):
                self._fs.remove(path)
            raise
        position.offset = RECORDS_OFFSET
        self.counters.segments_created += 1
        return file

    def submit(self, batch: WalBatch | SmallWalBatch) -> WalTicket:
        """Queue a transaction's records; call under the writer lock, in CSN order."""
        with self._cond:
            self._check_usable()
            ticket = WalTicket(batch)
            self._queue.append(ticket)
            return ticket

    def _check_usable(self) -> None:
        if self._failure is not None:
            raise type(self._failure)(f"the write-ahead log failed earlier ({self._failure}); "
                                  "reopen the database")
        if self._closed:
            raise ClosedError("the write-ahead log is closed")

    def wait(self, ticket: WalTicket) -> None:
        """Return once ``ticket``'s group has reached the durability mode's level.

        Raises :class:`DurabilityError` if its group could not be written or synced.
        """
        while True:
            with self._cond:
                if ticket.done:
                    break
                group = None
                if not self._leading:
                    self._leading = True
                    group, self._queue = self._queue, []
            if group is not None:
                self._lead(group)
                continue
            woken = ticket.wake.acquire(timeout=PARK_SECONDS)
            if woken:
                with self._cond:
                    ticket.signalled = False  # the lock is ours again: re-armed
        if ticket.error is not None:
            raise ticket.error

    def _lead(self, group: list[WalTicket]) -> None:
        """Write ``group`` as the leader, give leadership up, wake exactly the threads
        of ``group`` and nudge the first queued committer to lead next."""
        try:
            self._write_group(group)
        finally:
            with self._cond:
                for ticket in group:
                    if not ticket.done:  # _write_group itself failed (not an I/O error)
                        self._failure = self._failure or DurabilityError(
                            "the WAL writer failed while writing a group")
                        ticket.error = self._failure
                        ticket.done = True
                    _signal(ticket)
                self._leading = False
                if self._queue:
                    _signal(self._queue[0])
                self._cond.notify_all()  # flush() and close() wait for this

    def _write_group(self, group: list[WalTicket]) -> None:
        failure = self._failure
        if failure is None:
            try:
                self._append(group)
            except OSError as e:
                failure = wal_failure("writing the WAL failed", e)
                self._failure = failure
        with self._cond:
            for ticket in group:
                ticket.error = failure
                ticket.done = True

    def _append(self, group: list[WalTicket]) -> None:
        batches = [t.batch for t in group]
        records = batches[0].record_count if len(batches) == 1 else \
            sum(b.record_count for b in batches)
        with self._io_lock:
            position = self._position
            first_lsn = position.next_lsn
            framed = self._frame(batches, first_lsn, position.offset - RECORDS_OFFSET)
            if position.offset > RECORDS_OFFSET and \
                    position.offset + len(framed) > self._segment_size:
                self._roll()
                position = self._position
                framed = self._frame(batches, first_lsn, position.offset - RECORDS_OFFSET)
            start = position.offset
            try:
                if self._durability == "full" and len(framed) <= ZERO_AHEAD_LARGEST_GROUP:
                    self._zero_ahead(start + len(framed))
                self._file.pwrite(framed, start)
                if self._durability == "full":
                    self._sync_locked()
                else:
                    self._unsynced = True
            except OSError:
                self._cut_back(start)
                raise
            position.offset = start + len(framed)
            position.next_lsn = first_lsn + records
        lsn = first_lsn
        for ticket in group:
            ticket.first_lsn = lsn
            lsn += ticket.batch.record_count
        c = self.counters
        c.commits += len(group)
        c.groups += 1
        c.bytes_written += len(framed)
        c.largest_group = max(c.largest_group, len(group))
        self._publish(batches[-1].csn, first_lsn + records - 1)

    def _frame(self, batches: list[WalBatch | SmallWalBatch], first_lsn: int,
               position: int) -> bytes | npt.NDArray[np.uint8]:
        """The group's records framed for ``position``: in Python when they are all
        small and fit in the current block, else with the kernel."""
        if all(type(b) is SmallWalBatch for b in batches):
            framed = self._framer.encode_small(
                [r for b in batches for r in b.records],  # type: ignore[union-attr]
                first_lsn, position)
            if framed is not None:
                return framed
        payload, offsets, types = _concatenate([b.as_arrays() for b in batches])
        return self._framer.encode(payload, offsets, types, first_lsn, position)

    def _zero_ahead(self, end: int) -> None:
        """Make sure the file is zero-filled past ``end`` (see :data:`ZERO_AHEAD`)."""
        if end <= self._zeroed_until:
            return
        start = max(self._zeroed_until, self._position.offset)
        self._file.pwrite(bytes(end - start + ZERO_AHEAD), start)
        self._zeroed_until = end + ZERO_AHEAD

    def _cut_back(self, offset: int) -> None:
        """Best effort after a failed write or sync: drop the group's bytes."""
        self._zeroed_until = min(self._zeroed_until, offset)
        try:
            self._file.truncate(offset)
            self._file.datasync()
        except OSError:
            pass

    def _sync_locked(self) -> None:
        started = time.perf_counter()
        self._file.datasync()
        self.counters.syncs += 1
        self.counters.sync_seconds += time.perf_counter() - started
        self._unsynced = False

    def _roll(self) -> None:
        """Close the current segment (synced) and start the next one. If the next
        one cannot be created (a full disk), the current one stays open and in use."""
        self._sync_locked()
        position = WalPosition(self._position.segment + 1, 0, self._position.next_lsn)
        following = self._open_segment(position)
        self._file.close()
        self._file = following
        self._zeroed_until = self._file.size()
        self._framer = walcodec.SegmentFramer(position.segment, self._block_size)
        self._position = position

    def _sync_periodically(self, interval: float) -> None:
        while not self._stop_syncer.wait(interval):
            with self._io_lock:
                if self._unsynced and self._failure is None:
                    try:
                        self._sync_locked()
                    except OSError as e:
                        self._failure = wal_failure("syncing the WAL failed", e)

    def flush(self) -> None:
        """Write every queued batch and sync (called with no commit able to queue more)."""
        while True:
            with self._cond:
                if self._failure is not None:
                    self._check_usable()
                if not self._queue and not self._leading:
                    break
                if self._leading:
                    self._cond.wait()
                    continue
                self._leading = True
                group, self._queue = self._queue, []
            self._lead(group)
        self.sync()

    def roll(self) -> int:
        """Start a new segment now; returns its number (for a checkpoint's cut)."""
        with self._io_lock:
            self._roll()
            return self._position.segment

    def remove_segments_before(self, segment: int) -> int:
        """Delete the segment files numbered below ``segment``; returns how many."""
        removed = 0
        for number in segment_numbers(self._fs.listdir(self._wal_dir)):
            if number < segment:
                self._fs.remove(segment_path(self._wal_dir, number))
                removed += 1
        if removed:
            self._fs.sync_dir(self._wal_dir)
        return removed

    def sync(self) -> None:
        """Make everything written so far durable (any mode)."""
        with self._io_lock:
            if self._unsynced:
                self._sync_locked()

    def close(self) -> None:
        """Sync what was written, cut the zero-filled space off, close (idempotent)."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            while self._leading:
                self._cond.wait()
        self._stop_syncer.set()
        if self._syncer is not None:
            self._syncer.join()
        try:
            if self._failure is None:
                if self._zeroed_until > self._position.offset:
                    self._file.truncate(self._position.offset)  # a clean end, no zeros
                    self._unsynced = True
                self.sync()
        finally:
            self._file.close()


def _concatenate(batches: list[WalBatch]) -> tuple[npt.NDArray[np.uint8],
                                                  npt.NDArray[np.int64],
                                                  npt.NDArray[np.uint8]]:
    """One payload, offsets and types array for a group of batches."""
    if len(batches) == 1:
        only = batches[0]
        return only.payload, only.offsets, only.types
    payload = np.concatenate([b.payload for b in batches])
    lengths = np.concatenate([np.diff(b.offsets) for b in batches])
    offsets = np.zeros(lengths.size + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return payload, offsets, np.concatenate([b.types for b in batches])
