"""Applying committed transactions read back from the WAL to the key/value store.

Used at open (recovery) and by read-only opens following a writer. Transactions
(single ones, or runs of them as arrays) are collected until
:meth:`WalApplier.flush` (or :data:`FLUSH_BYTES` of records): if they hold at least
``bulk_changes`` changes, all their records are decoded with one kernel call per
buffer they lie in, sorted and installed as one :class:`~colibri_mm.kv.batch.Batch`
at the CSN of the last of them (no Python object per key or per transaction: this
is what makes replay fast); fewer changes are applied transaction by transaction to
the active memtable, each at its own CSN. Either way readers that hold an older CSN
see none of them, since the caller publishes after the flush.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..errors import CorruptionError
from ..kernels.changes import BadRecordError
from ..kernels.merge import Entries, merge
from ..txn.replay import CommittedTransaction, TransactionRun
from .batch import Batch, entries_from_records
from .records import DELETE, KV_CHANGES, decode_changes
from .store import StoreVersion

FLUSH_BYTES = 64 << 20
"""Record bytes collected before they are applied (bounds the memory they pin)."""


@dataclass
class _Spans:
    """Change records lying in one buffer, with the COMMIT LSN of each (for errors)."""

    buffer: npt.NDArray[np.uint8]
    starts: npt.NDArray[np.int64]
    ends: npt.NDArray[np.int64]
    commit_lsns: npt.NDArray[np.uint64]


class WalApplier:
    """Applies committed transactions to ``version`` (see the module docstring).

    ``horizon`` gives the oldest CSN a live snapshot reads at, when snapshots may
    exist while applying (following a writer); None at open.
    """

    def __init__(self, version: StoreVersion, horizon: Callable[[], int] | None,
                 bulk_changes: int) -> None:
        self.version = version
        self._horizon = horizon
        self._bulk_changes = bulk_changes
        self._pending: list[CommittedTransaction | TransactionRun] = []
        self._bytes = 0
        self._changes = 0

    def add(self, tx: CommittedTransaction) -> None:
        """Take one committed transaction."""
        for record in tx.records:
            _check_type(record.type, tx.commit_lsn)
            self._bytes += record.end - record.start
            if record.end - record.start >= 4:
                self._changes += int.from_bytes(
                    record.buffer[record.start : record.start + 4].tobytes(), "little")
        self._take(tx)

    def add_run(self, run: TransactionRun) -> None:
        """Take consecutive committed transactions given as arrays."""
        unknown = np.flatnonzero(run.record_types != KV_CHANGES)
        if unknown.size:
            owner = np.repeat(run.commit_lsns, run.record_counts)
            _check_type(int(run.record_types[unknown[0]]), int(owner[unknown[0]]))
        sizes = run.record_ends - run.record_starts
        self._bytes += int(sizes.sum())
        counted = run.record_starts[sizes >= 4]
        count_bytes = run.buffer[counted[:, None] + np.arange(4)].copy()
        self._changes += int(count_bytes.view("<u4").sum(dtype=np.int64))
        self._take(run)

    def _take(self, item: CommittedTransaction | TransactionRun) -> None:
        self._pending.append(item)
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
            for csn, lsn, payloads in _transactions(pending):
                self._apply_to_memtable(csn, lsn, payloads)
        self._pending = []
        self._bytes = 0
        self._changes = 0

    def _apply_to_memtable(self, csn: int, commit_lsn: int,
                           payloads: list[npt.NDArray[np.uint8]]) -> None:
        changes: dict[bytes, bytes | None] = {}
        for payload in payloads:
            keys, values = decode_changes(payload, f"the transaction committed at LSN "
                                                   f"{commit_lsn}")
            changes.update(zip(keys, values, strict=True))
        self.version.active.apply(csn, changes, self._horizon or (lambda: csn))

    def _apply_as_batch(self, pending: list[CommittedTransaction | TransactionRun]) -> None:
        """Decode, sort and install every pending record as one batch. Records are
        decoded where they lie: one kernel call per buffer they share (a WAL
        segment), the results merged, later buffers winning."""
        merged: Entries | None = None
        for spans in _by_buffer(pending):
            try:
                entries = entries_from_records(spans.buffer, spans.starts, spans.ends)
            except BadRecordError as e:
                raise CorruptionError(f"key/value record {e.reason} in the transaction "
                                      f"committed at LSN {spans.commit_lsns[e.record]}"
                                      ) from None
            merged = entries if merged is None else merge(
                entries, merged, delete_kind=DELETE, drop_deletes=False)
        last = pending[-1]
        csn = last.csn if isinstance(last, CommittedTransaction) else int(last.csns[-1])
        assert merged is not None  # changes >= bulk_changes >= 1: a record was there
        self.version = self.version.with_batch(Batch(csn, merged))


def _check_type(record_type: int, commit_lsn: int) -> None:
    if record_type != KV_CHANGES:
        raise CorruptionError(f"WAL record of unknown type {record_type} in the "
                              f"transaction committed at LSN {commit_lsn}")


def _transactions(pending: list[CommittedTransaction | TransactionRun],
                  ) -> Iterator[tuple[int, int, list[npt.NDArray[np.uint8]]]]:
    """(csn, commit LSN, change record payloads) of every pending transaction."""
    for item in pending:
        if isinstance(item, CommittedTransaction):
            yield item.csn, item.commit_lsn, [record.payload for record in item.records]
            continue
        ends = np.cumsum(item.record_counts).tolist()
        starts, record_ends = item.record_starts.tolist(), item.record_ends.tolist()
        first = 0
        for k, last in enumerate(ends):
            yield (int(item.csns[k]), int(item.commit_lsns[k]),
                   [item.buffer[starts[i] : record_ends[i]] for i in range(first, last)])
            first = last


def _by_buffer(pending: list[CommittedTransaction | TransactionRun]) -> Iterator[_Spans]:
    """The pending change records as runs sharing a buffer, in order."""
    buffer: npt.NDArray[np.uint8] | None = None
    starts: list[int] = []
    ends: list[int] = []
    lsns: list[int] = []

    def collected() -> _Spans:
        assert buffer is not None
        return _Spans(buffer, np.array(starts, np.int64), np.array(ends, np.int64),
                      np.array(lsns, np.uint64))

    for item in pending:
        if isinstance(item, TransactionRun):
            if buffer is not None and starts:
                yield collected()
            buffer, starts, ends, lsns = None, [], [], []
            yield _Spans(item.buffer, item.record_starts, item.record_ends,
                         np.repeat(item.commit_lsns, item.record_counts))
            continue
        for record in item.records:
            if record.buffer is not buffer:
                if buffer is not None and starts:
                    yield collected()
                buffer, starts, ends, lsns = record.buffer, [], [], []
            starts.append(record.start)
            ends.append(record.end)
            lsns.append(item.commit_lsn)
    if buffer is not None and starts:
        yield collected()
