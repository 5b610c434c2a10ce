"""From WAL records back to committed transactions.

A transaction is written as its change records followed by one COMMIT record
(record type :data:`COMMIT`) whose payload is ``u64 csn, u32 record_count`` (the
number of change records before it, little-endian). Replay applies a transaction
only when its COMMIT is present and every one of its change records precedes it
with consecutive LSNs; anything else (a torn tail, records lost to salvage) is
dropped whole, so no partial transaction is ever visible.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

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


class TransactionAssembler:
    """Feeds on decoded WAL records; calls ``apply`` once per whole transaction."""

    def __init__(self, apply: Callable[[CommittedTransaction], None],
                 limit_lsn: int | None = None) -> None:
        self._apply = apply
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
        offsets = decoded.offsets.tolist()
        types = decoded.types.tolist()
        lsns = decoded.lsns.tolist()
        buffer = decoded.payload
        for i in range(first, len(types) if stop is None else stop):
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
            self._apply(CommittedTransaction(csn, lsn, [record for _, record in pending]))
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
