"""Write transactions and read-only snapshots: the objects behind
``db.transaction()`` and ``db.snapshot()``.

Both are context managers (py-lmdb style): a transaction commits when its block ends
normally and aborts when it raises; a snapshot is released when its block ends.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any

from .errors import ClosedError, TransactionError
from .kv.views import KvSnapshotView, KvTransactionView
from .kv.writeset import WriteSet
from .tables import registry, writes
from .tables.table import Table

if TYPE_CHECKING:
    from .database import Database


class Snapshot:
    """A consistent, read-only view of the database at one commit sequence number.

    It never blocks the writer and is never blocked by it. Release it (``with`` block
    or :meth:`close`) so old versions can be reclaimed.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._id, self.csn, version = db._clock.open_snapshot()
        self._open = True
        self.kv = KvSnapshotView(version, self.csn, db.options, self._check_open,
                                 lambda: db._clock.lease(self.csn, version),
                                 db.extent_reader)

    def _check_open(self) -> None:
        if not self._open:
            raise ClosedError("the snapshot has been closed")
        self._db._check_open()

    def table(self, name: str) -> Table:
        """Table ``name`` as this snapshot sees it."""
        registry.lookup(self.kv, name)
        return Table(self._db, name, self)

    def tables(self) -> list[str]:
        """Names of the tables this snapshot sees, sorted."""
        return registry.names(self.kv)

    def is_newest(self) -> bool:
        """Whether a snapshot taken now would see exactly what this one sees: it is
        open and no commit was published since it was taken. Always False in a
        read-only open following another process's writes (a new snapshot catches
        up first). Lets a reader reuse one snapshot while nothing changes."""
        db = self._db
        return self._open and db._follower is None and db._clock.published == self.csn

    def close(self) -> None:
        """Release the snapshot (idempotent)."""
        if self._open:
            self._open = False
            self._db._clock.close_snapshot(self._id)

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class Transaction:
    """A write transaction: sees its own writes; all or nothing at commit.

    Only one is active at a time per database (other writers wait for it).
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._writes = WriteSet()
        self._active = True
        self.kv = KvTransactionView(db._current_version, self._writes, db.options,
                                    self._check_active, db.extent_reader)

    def _check_active(self) -> None:
        if not self._active:
            raise TransactionError("the transaction has already committed or aborted")
        self._db._check_open()

    def insert(self, table: str, rows: Any) -> int:
        """Add ``rows`` to ``table`` (a ``pa.Table``, ``pa.RecordBatch``, anything with
        ``__arrow_c_stream__``, a dict of columns or a list of dicts); returns how
        many. A primary key already present or repeated raises
        :class:`~colibri_mm.errors.ConstraintError` and adds nothing."""
        return writes.insert(self.kv, registry.lookup(self.kv, table), rows,
                             self._db.write_settings)

    def upsert(self, table: str, rows: Any) -> int:
        """Insert ``rows``, replacing the rows that have their primary keys (of rows
        repeating a key, the last wins); returns how many rows were written."""
        return writes.upsert(self.kv, registry.lookup(self.kv, table), rows,
                             self._db.write_settings)

    def update(self, table: str, key: Any, changes: dict[str, Any]) -> bool:
        """Set the columns in ``changes`` of the row with primary key ``key`` (a
        value, or a tuple); False if there is no such row."""
        return writes.update(self.kv, registry.lookup(self.kv, table), key, changes,
                             self._db.write_settings)

    def delete(self, table: str, key: Any) -> bool:
        """Delete the row with primary key ``key``; False if there is none."""
        return writes.delete(self.kv, registry.lookup(self.kv, table), key,
                             self._db.write_settings)

    def delete_where(self, table: str, filter: Any) -> int:
        """Delete every row for which the ``pyarrow.compute`` expression ``filter``
        holds; returns how many."""
        return writes.delete_where(self.kv, registry.lookup(self.kv, table), filter,
                                   self._db.write_settings)

    def commit(self) -> None:
        """Make the writes durable (per the durability mode) and visible."""
        self._check_active()
        self._active = False
        self._db._commit(self._writes)

    def abort(self) -> None:
        """Discard the writes (idempotent after commit or abort)."""
        if self._active:
            self._active = False
            self._db._end_transaction()

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None and self._active:
            self.commit()
        else:
            self.abort()
