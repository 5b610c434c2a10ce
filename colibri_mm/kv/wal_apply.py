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

from collections.abc import Callable

import numpy as np

from ..errors import CorruptionError
from ..kernels.changes import BadRecordError
from ..txn.replay import CommittedTransaction
from .batch import Batch, entries_from_records
from .records import KV_CHANGES, decode_changes
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
        for record_type, payload in tx.records:
            if record_type != KV_CHANGES:
                raise CorruptionError(f"WAL record of unknown type {record_type} in the "
                                      f"transaction committed at LSN {tx.commit_lsn}")
            self._bytes += payload.size
            if payload.size >= 4:
                self._changes += int(payload[:4].view("<u4")[0])
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
        for _, payload in tx.records:
            keys, values = decode_changes(payload, f"the transaction committed at LSN "
                                                   f"{tx.commit_lsn}")
            changes.update(zip(keys, values, strict=True))
        horizon = self._horizon() if self._horizon is not None else tx.csn
        self.version.active.apply(tx.csn, changes, horizon)

    def _apply_as_batch(self, pending: list[CommittedTransaction]) -> None:
        payloads = [payload for tx in pending for _, payload in tx.records]
        commit_lsns = [tx.commit_lsn for tx in pending for _ in tx.records]
        sizes = np.fromiter((p.size for p in payloads), np.int64, len(payloads))
        ends = np.cumsum(sizes)
        buffer = np.concatenate(payloads) if payloads else np.empty(0, np.uint8)
        try:
            entries = entries_from_records(buffer, ends - sizes, ends)
        except BadRecordError as e:
            raise CorruptionError(f"key/value record {e.reason} in the transaction "
                                  f"committed at LSN {commit_lsns[e.record]}") from None
        self.version = self.version.with_batch(Batch(pending[-1].csn, entries))
