"""From WAL records back to committed transactions.

A transaction is written as its change records followed by one COMMIT record
(record type :data:`COMMIT`) whose payload is ``u64 csn, u32 record_count`` (the
number of change records before it, little-endian). Replay applies a transaction
only when its COMMIT is present and every one of its change records precedes it
with consecutive LSNs; anything else (a torn tail, records lost to salvage) is
dropped whole, so no partial transaction is ever visible.

The usual case, a stretch of records in which every transaction is whole, is
recognised with a few numpy operations and handed on as one
:class:`TransactionRun` of arrays; records around damage, or continuing a
transaction begun in an earlier buffer, go through the record-by-record path that
defines the rules above and are handed on as :class:`CommittedTransaction` objects.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

from ..kernels.walcodec import DecodedRecords

COMMIT = 2
"""WAL record type closing a transaction."""
_COMMIT = struct.Struct("<QI")


def encode_commit(csn: int, record_count: int) -> bytes:
    """Payload of a COMMIT record."""
    return _COMMIT.pack(csn, record_count)


class Record(NamedTuple):
    """A change record read back from the WAL: its payload is
    ``buffer[start:end]`` (``buffer`` is shared by the records decoded together)."""

    type: int
    buffer: npt.NDArray[np.uint8]
    start: int
    end: int

    @property
    def payload(self) -> npt.NDArray[np.uint8]:
        """The payload bytes (a view)."""
        return self.buffer[self.start : self.end]


@dataclass
class CommittedTransaction:
    """A transaction read back from the WAL: its CSN, the LSN of its COMMIT, and its
    change records."""

    csn: int
    commit_lsn: int
    records: list[Record]


@dataclass
class TransactionRun:
    """Consecutive whole transactions whose records share one buffer. Transaction k
    has CSN ``csns[k]``, its COMMIT at ``commit_lsns[k]`` and ``record_counts[k]``
    change records; the change records of all of them, in order, are
    ``buffer[record_starts[i]:record_ends[i]]`` of type ``record_types[i]``."""

    buffer: npt.NDArray[np.uint8]
    record_types: npt.NDArray[np.uint8]
    record_starts: npt.NDArray[np.int64]
    record_ends: npt.NDArray[np.int64]
    record_counts: npt.NDArray[np.int64]
    csns: npt.NDArray[np.uint64]
    commit_lsns: npt.NDArray[np.uint64]


class TransactionSink(Protocol):
    """What receives the whole transactions, in commit order."""

    def add(self, tx: CommittedTransaction) -> None:
        """One transaction."""

    def add_run(self, run: TransactionRun) -> None:
        """Several consecutive transactions."""


class TransactionAssembler:
    """Feeds on decoded WAL records; hands every whole transaction to ``sink``."""

    def __init__(self, sink: TransactionSink, limit_lsn: int | None = None) -> None:
        self._sink = sink
        self._limit_lsn = limit_lsn
        self._stopped = False
        self._pending: list[tuple[int, Record]] = []
        self.transactions = 0
        self.dropped_transactions = 0
        self.last_csn = 0
        self.last_commit_lsn = 0

    def feed(self, decoded: DecodedRecords, first: int = 0, stop: int | None = None) -> None:
        """Take records ``first`` to ``stop`` (exclusive; None: all) of ``decoded``.

        With a ``limit_lsn``, the first COMMIT past it and everything after is ignored
        (commits the writer has not published yet).
        """
        if self._stopped:
            return
        stop = len(decoded) if stop is None else stop
        if self._pending:
            # The first transaction began in an earlier buffer: record by record.
            commits = np.flatnonzero(decoded.types[first:stop] == COMMIT)
            through = first + int(commits[0]) + 1 if commits.size else stop
            self._feed_records(decoded, first, through)
            first = through
        first = self._feed_run(decoded, first, stop)
        self._feed_records(decoded, first, stop)

    def _feed_run(self, decoded: DecodedRecords, first: int, stop: int) -> int:
        """Hand on, as one run, the whole transactions from ``first`` up to the last
        COMMIT before ``stop`` if they follow every rule; returns the index after
        what was handed on (``first`` if nothing was)."""
        if self._stopped or self._pending:
            return first
        types = decoded.types[first:stop]
        commits = np.flatnonzero(types == COMMIT)
        if self._limit_lsn is not None:
            # Commits past the limit are left to the record-by-record path, which stops.
            commits = commits[decoded.lsns[first + commits] <= np.uint64(self._limit_lsn)]
        if commits.size == 0:
            return first
        end = int(commits[-1]) + 1
        lsns = decoded.lsns[first : first + end]
        offsets = decoded.offsets
        commit_starts = offsets[first + commits]
        if np.any(np.diff(lsns) != 1) or np.any(offsets[first + commits + 1] - commit_starts
                                                != _COMMIT.size):
            return first
        raw = decoded.payload[commit_starts[:, None] + np.arange(_COMMIT.size)]
        csns = raw[:, :8].copy().view("<u8").ravel()
        counts = raw[:, 8:].copy().view("<u4").ravel().astype(np.int64)
        if np.any(np.diff(commits, prepend=-1) - 1 != counts):
            return first
        commit_lsns = lsns[commits]
        changes = np.flatnonzero(types[:end] != COMMIT) + first
        self._sink.add_run(TransactionRun(
            decoded.payload, decoded.types[changes], offsets[changes], offsets[changes + 1],
            counts, csns, commit_lsns))
        self.transactions += int(commits.size)
        self.last_csn = int(csns[-1])
        self.last_commit_lsn = int(commit_lsns[-1])
        return first + end

    def _feed_records(self, decoded: DecodedRecords, first: int, stop: int) -> None:
        """The record-by-record path (see the module docstring)."""
        if self._stopped or first >= stop:
            return
        offsets = decoded.offsets.tolist()
        types = decoded.types.tolist()
        lsns = decoded.lsns.tolist()
        buffer = decoded.payload
        for i in range(first, stop):
            if types[i] == COMMIT:
                if self._limit_lsn is not None and lsns[i] > self._limit_lsn:
                    self._stopped = True
                    self._pending = []
                    return
                self._commit(lsns[i], buffer[offsets[i] : offsets[i + 1]])
            else:
                if self._pending and self._pending[-1][0] + 1 != lsns[i]:
                    self._drop_pending()
                self._pending.append((lsns[i], Record(types[i], buffer, offsets[i],
                                                      offsets[i + 1])))

    def _commit(self, lsn: int, payload: npt.NDArray[np.uint8]) -> None:
        csn, count = _COMMIT.unpack(payload.tobytes())
        pending = self._pending
        if len(pending) > count:
            # Change records of an earlier transaction that never got its COMMIT (a
            # crash cut it; the writer went on after it on restart): not this one's.
            self.dropped_transactions += 1
            pending = pending[len(pending) - count :]
        whole = len(pending) == count and (not pending or (
            pending[-1][0] + 1 == lsn and pending[0][0] + count == lsn))
        if whole:
            self._sink.add(CommittedTransaction(csn, lsn, [record for _, record in pending]))
            self.transactions += 1
            self.last_csn = csn
            self.last_commit_lsn = lsn
        else:
            self.dropped_transactions += 1
        self._pending = []

    def _drop_pending(self) -> None:
        self._pending = []
        self.dropped_transactions += 1

    @property
    def unfinished_records(self) -> int:
        """Change records read after the last COMMIT (a transaction cut by a crash)."""
        return len(self._pending)
