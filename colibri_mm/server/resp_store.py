"""The key/value access that RESP command handlers run against.

Handlers see a :class:`KeyReader` (reads) or a :class:`KeyWriter` (reads and writes)
and never the database itself:

- :class:`SnapshotKeys` reads one snapshot of ``db.kv`` (reads on the event loop
  share one while no commit is published: see :meth:`SnapshotKeys.refresh`);
- :class:`TransactionKeys` reads and writes the write transaction of a batch (see
  :mod:`colibri_mm.server.resp_group_commit`), and records which keys it wrote so
  WATCH can tell whether a watched key changed.

Gets and puts go to the engine's raw calls (``get_raw``, ``put_raw``, the key in its
stored form): the connection checked every key and value against the limits, which
are capped by the database's own, before the command ran, so the engine's checks
would repeat them for every key of every request.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from ..kv.keys import USER_PREFIX

if TYPE_CHECKING:
    from ..database import Database
    from ..kv.views import KvSnapshotView, KvTransactionView
    from ..transaction import Snapshot


class KeyReader(Protocol):
    """Reads of the key space."""

    def get(self, key: bytes) -> bytes | None:
        """The value of ``key``, or None."""

    def scan(self, start: bytes, end: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        """Pairs with ``start <= key < end`` (None: no end), in byte order."""


class KeyWriter(KeyReader, Protocol):
    """Reads and writes of the key space."""

    def put(self, key: bytes, value: bytes) -> None:
        """Set ``key`` to ``value``."""

    def delete(self, key: bytes) -> bool:
        """Delete ``key``; True if it existed."""

    def delete_all(self) -> int:
        """Delete every key; returns how many there were."""


class SnapshotKeys:
    """A :class:`KeyReader` over a snapshot opened at first use.

    Parameters
    ----------
    db
        The database; the snapshot is taken at the first read, so it sees every
        write acknowledged before then. Call :meth:`close` when done.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._snapshot: Snapshot | None = None
        self._kv: KvSnapshotView | None = None

    def open(self) -> None:
        """Take the snapshot now (reads see nothing committed after this call)."""
        self._view()

    def _view(self) -> KvSnapshotView:
        if self._kv is None:
            self._snapshot = self._db.snapshot()
            self._kv = self._snapshot.kv
        return self._kv

    def get(self, key: bytes) -> bytes | None:
        """The value of ``key`` in the snapshot, or None."""
        return self._view().get_raw(USER_PREFIX + key)

    def scan(self, start: bytes, end: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        """Pairs of the snapshot with ``start <= key < end``."""
        return self._view().scan(start, end)

    def refresh(self) -> None:
        """Release the snapshot if a commit was published since it was taken (the next
        read takes a new one, which sees that commit); keep it otherwise, as a new one
        would see exactly the same."""
        if self._snapshot is not None and not self._snapshot.is_newest():
            self.close()

    def close(self) -> None:
        """Release the snapshot (if one was taken); the next read takes a new one."""
        if self._snapshot is not None:
            self._snapshot.close()
            self._snapshot = None
            self._kv = None


class TransactionKeys:
    """A :class:`KeyWriter` over a write transaction's ``tx.kv``.

    Attributes
    ----------
    written
        Keys written (set or deleted) through it.
    wrote_everything
        Whether :meth:`delete_all` ran (every key changed).
    """

    def __init__(self, kv: KvTransactionView) -> None:
        self._kv = kv
        self.written: set[bytes] = set()
        self.wrote_everything = False

    def get(self, key: bytes) -> bytes | None:
        """The value of ``key`` as the transaction sees it, or None."""
        return self._kv.get_raw(USER_PREFIX + key)

    def scan(self, start: bytes, end: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        """Pairs as the transaction sees them, with ``start <= key < end``."""
        return self._kv.scan(start, end)

    def put(self, key: bytes, value: bytes) -> None:
        """Set ``key`` to ``value`` in the transaction."""
        self._kv.put_raw(USER_PREFIX + key, value)
        self.written.add(key)

    def delete(self, key: bytes) -> bool:
        """Delete ``key`` in the transaction; True if it existed."""
        self.written.add(key)
        return self._kv.delete(key)

    def delete_all(self) -> int:
        """Delete every key in the transaction; returns how many there were."""
        keys = [key for key, _ in self._kv.scan()]
        for key in keys:
            self._kv.delete(key)
        self.wrote_everything = True
        return len(keys)
