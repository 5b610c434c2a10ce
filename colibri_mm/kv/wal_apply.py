"""Applying committed transactions read back from the WAL to the key/value store.

Used at open (recovery) and by read-only opens following a writer. Transactions are
collected until :meth:`WalApplier.flush` (or :data:`FLUSH_BYTES` of records): if they
hold at least ``bulk_changes`` changes, all their records are
decoded in one kernel call, sorted and installed as one
:class:`~colibri_mm.kv.batch.Batch` at the CSN of the last of them (no Python object
per key: this is what makes replay fast); fewer changes are applied transaction by
transaction to the active memtable, each at its own CSN. Either way readers that
hold an older CSN see none of them, since the caller publishes after the flush.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import numpy.typing as npt

from ..errors import CorruptionError
from ..kernels.changes import BadRecordError
from ..kernels.merge import Entries, merge
from ..txn.replay import CommittedTransaction
from .batch import Batch, entries_from_records
from .records import DELETE, KV_CHANGES, decode_changes
from .store import StoreVersion

FLUSH_BYTES = 64 << 20
"""Record bytes collected before they are applied (bounds the copy made to decode)."""


class WalApplier:
    """Applies committed transactions to ``version`` (see the module docstring).

    ``horizon`` gives the oldest CSN a live snapshot reads at, when snapshots may
    exist while applying (following a writer); None at open.
    """

    def __init__(self, version: StoreVersion, horizon: Callable[[], int] | None,
                 bulk_changes: int) -> None:
        self.version = version
        self._bulk_changes = bulk_changes
        self._horizon = horizon
        self._pending: list[CommittedTransaction] = []
        self._bytes = 0
        self._changes = 0

    def add(self, tx: CommittedTransaction) -> None:
        """Take one committed transaction (the assembler's callback)."""
        for record in tx.records:
            if record.type != KV_CHANGES:
                raise CorruptionError(f"WAL record of unknown type {record.type} in the "
                                      f"transaction committed at LSN {tx.commit_lsn}")
            self._bytes += record.end - record.start
            if record.end - record.start >= 4:
                self._changes += int.from_bytes(
                    record.buffer[record.start : record.start + 4].tobytes(), "little")
        self._pending.append(tx)
        if self._bytes >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Apply everything taken so far."""
        pending = self._pending
        if not pending:
            return
        if self._changes >= self._bulk_changes:
            self._apply_as_batch(pending)
        else:
            for tx in pending:
                self._apply_to_memtable(tx)
        self._pending = []
        self._bytes = 0
        self._changes = 0

    def _apply_to_memtable(self, tx: CommittedTransaction) -> None:
        changes: dict[bytes, bytes | None] = {}
        for record in tx.records:
            keys, values = decode_changes(record.payload, f"the transaction committed at "
                                                          f"LSN {tx.commit_lsn}")
            changes.update(zip(keys, values, strict=True))
        horizon = self._horizon() if self._horizon is not None else tx.csn
        self.version.active.apply(tx.csn, changes, horizon)

    def _apply_as_batch(self, pending: list[CommittedTransaction]) -> None:
        """Decode, sort and install every pending record as one batch. Records are
        decoded where they lie: one kernel call per buffer they share (a WAL
        segment), the results merged, later buffers winning."""
        merged: Entries | None = None
        for buffer, starts, ends, commit_lsns in _by_buffer(pending):
            try:
                entries = entries_from_records(buffer, starts, ends)
            except BadRecordError as e:
                raise CorruptionError(f"key/value record {e.reason} in the transaction "
                                      f"committed at LSN {commit_lsns[e.record]}") from None
            merged = entries if merged is None else merge(
                entries, merged, delete_kind=DELETE, drop_deletes=False)
        assert merged is not None
        self.version = self.version.with_batch(Batch(pending[-1].csn, merged))


def _by_buffer(pending: list[CommittedTransaction]) -> Iterator[
        tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64], npt.NDArray[np.int64], list[int]]]:
    """Runs of consecutive records sharing a buffer: (buffer, starts, ends, commit LSNs)."""
    buffer: npt.NDArray[np.uint8] | None = None
    starts: list[int] = []
    ends: list[int] = []
    lsns: list[int] = []
    for tx in pending:
        for record in tx.records:
            if record.buffer is not buffer:
                if buffer is not None:
                    yield buffer, np.array(starts, np.int64), np.array(ends, np.int64), lsns
                buffer, starts, ends, lsns = record.buffer, [], [], []
            starts.append(record.start)
            ends.append(record.end)
            lsns.append(tx.commit_lsn)
    if buffer is not None:
        yield buffer, np.array(starts, np.int64), np.array(ends, np.int64), lsns
