"""The ``.kv`` views: what ``snap.kv``, ``tx.kv`` and ``db.kv`` offer.

- :class:`KvSnapshotView` reads one :class:`~colibri_mm.kv.store.StoreVersion` at
  one snapshot's CSN.
- :class:`KvTransactionView` reads the writer's view (its own uncommitted writes
  first, then the newest committed entries) and buffers writes in the
  transaction's :class:`~colibri_mm.kv.writeset.WriteSet` (a large ``put_many``
  as sorted arrays, see :mod:`colibri_mm.kv.batch`).
- ``db.kv`` (in ``colibri_mm.database``) wraps each call in its own snapshot or
  transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..kernels.keycodec import Varlen
from ..kernels.merge import Entries
from .batch import Slices, arrow_slices, entries_from_slices, list_slices
from .keys import USER_PREFIX, as_bytes, scan_bounds, user_key
from .many import ManyFound
from .ranges import RangeEntries
from .records import PUT
from .sorted_entries import Value
from .store import StoreVersion, newest_by_key
from .writeset import WriteSet

if TYPE_CHECKING:
    from ..options import Options
    from ..storage.extents import ExtentReader


class KvSnapshotView:
    """Read-only key/value access at a fixed CSN."""

    def __init__(self, version: StoreVersion, csn: int, options: Options,
                 check_open: Callable[[], None], lease: Callable[[], object],
                 extents: ExtentReader | None = None) -> None:
        self._version = version
        self.extents = extents
        """Reads values stored as extents of the data file (None: no data file)."""
        self._csn = csn
        self._options = options
        self._check_open = check_open
        self.lease = lease
        """An object keeping this snapshot's sorted runs (the pages its views read)
        from reuse for as long as it lives, even after the snapshot is closed."""

    def get(self, key: Any) -> bytes | None:
        """The value of ``key`` in this snapshot, or None."""
        return self.get_raw(user_key(key, "key", self._options.max_key_size))

    def scan(self, start: Any = None, end: Any = None,
             prefix: Any = None) -> Iterator[tuple[bytes, bytes]]:
        """``(key, value)`` pairs with ``start <= key < end`` (and ``prefix``), in byte order."""
        low, high = scan_bounds(start, end, prefix, self._options.max_key_size)
        return _user_pairs(self.scan_raw(low, high))

    def get_raw(self, key: bytes) -> bytes | None:
        """Like :meth:`get` for any key, system keys included (for the engine)."""
        self._check_open()
        return self._version.get(key, self._csn)

    def get_raw_view(self, key: bytes) -> Value | None:
        """Like :meth:`get_raw`, but a value lying in an array (a bulk layer, a run of
        the mapped file) comes as a numpy view, valid while this snapshot is open."""
        self._check_open()
        return self._version.get(key, self._csn, view=True)

    def range_raw(self, low: bytes | None, high: bytes | None) -> RangeEntries:
        """The live entries of ``[low, high)`` as arrays, values as views where they
        lie in arrays (for the engine)."""
        self._check_open()
        return RangeEntries(self._version.range_sources(low, high, self._csn))

    def get_many_raw(self, probes: Varlen) -> ManyFound:
        """Stored-form keys (Arrow-style offsets + data) as this snapshot sees them:
        ``.states`` 1 has a value, 0 deleted, -1 never written; ``.values()`` (for the
        engine)."""
        self._check_open()
        found = ManyFound(probes)
        self._version.find_many(found, self._csn)
        return found

    def scan_raw(self, low: bytes | None, high: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        """Like :meth:`scan` over ``[low, high)``, system keys included (for the engine)."""
        self._check_open()
        yield from self._version.scan(low, high, self._csn)


class KvTransactionView:
    """Key/value access inside a write transaction."""

    def __init__(self, current: Callable[[], StoreVersion], writes: WriteSet,
                 options: Options, check_writable: Callable[[], None],
                 extents: ExtentReader | None = None) -> None:
        self._current = current
        self.extents = extents
        """Reads values stored as extents of the data file (None: no data file)."""
        self._writes = writes
        self._options = options
        self._check_writable = check_writable

    def _key(self, key: Any) -> bytes:
        return user_key(key, "key", self._options.max_key_size)

    def get(self, key: Any) -> bytes | None:
        """The value of ``key`` as this transaction sees it, or None."""
        return self.get_raw(self._key(key))

    def get_raw(self, key: bytes) -> bytes | None:
        """Like :meth:`get` for any key, system keys included (for the engine)."""
        self._check_writable()
        written, value = self._writes.get(key)
        if written:
            return value
        return self._current().get(key, None)

    def get_raw_view(self, key: bytes) -> Value | None:
        """Like :meth:`get_raw`, but a committed value lying in an array comes as a
        numpy view. Valid until the transaction ends: no checkpoint can start while
        it holds the write lock, so no page it reads is reused before then."""
        self._check_writable()
        written, value = self._writes.get(key)
        if written:
            return value
        return self._current().get(key, None, view=True)

    def wrote_raw(self, key: bytes) -> bool:
        """Whether this transaction wrote (or deleted) ``key`` (for the engine)."""
        return self._writes.get(key)[0]

    def put_raw(self, key: bytes, value: bytes | None) -> None:
        """Set (None: delete) any key, system keys included (for the engine)."""
        self._check_writable()
        self._writes.put(key, value)

    def range_raw(self, low: bytes | None, high: bytes | None) -> RangeEntries:
        """The live entries of ``[low, high)`` as this transaction sees them, as
        arrays (for the engine)."""
        self._check_writable()
        return RangeEntries(self._writes.range_sources(low, high) +
                            self._current().range_sources(low, high, None))

    def get_many_raw(self, probes: Varlen, in_order: bool = False) -> ManyFound:
        """Stored-form keys (Arrow-style offsets + data) as this transaction sees
        them: ``.states`` 1 has a value, 0 deleted, -1 never written; ``.values()``
        (for the engine). ``in_order``: the probes are in key order already."""
        self._check_writable()
        found = ManyFound(probes, in_order)
        self._writes.find_many(found)
        if found.undecided():
            self._current().find_many(found, None)
        return found

    def put_sorted_raw(self, entries: Entries) -> None:
        """Write sorted entries with distinct stored-form keys (for the engine)."""
        self._check_writable()
        self._writes.add_sorted(entries)

    def put(self, key: Any, value: Any) -> None:
        """Set ``key`` to ``value``."""
        self._check_writable()
        k = self._key(key)
        self._writes.put(k, as_bytes(value, "value", self._options.max_value_size))

    def delete(self, key: Any) -> bool:
        """Delete ``key``; True if it existed."""
        existed = self.get(key) is not None
        self._writes.put(self._key(key), None)
        return existed

    def put_many(self, keys: Any, values: Any) -> int:
        """Set ``keys[i]`` to ``values[i]`` for every i (sequences or Arrow binary arrays).

        Everything is validated before anything is written; returns the count.
        """
        self._check_writable()
        max_key = self._options.max_key_size
        max_value = self._options.max_value_size
        bulk = self._options.bulk_changes
        key_slices: Slices | None
        value_slices: Slices | None
        if _is_arrow(keys) and _is_arrow(values) and len(keys) >= bulk:
            key_slices = arrow_slices(keys, "keys", max_key)
            value_slices = arrow_slices(values, "values", max_value)
        else:
            key_list = _as_list(keys, "keys")
            value_list = _as_list(values, "values")
            if len(key_list) < bulk and len(key_list) == len(value_list):
                self._writes.update(dict(zip(_converted(key_list, "keys", max_key, user_key),
                                             _converted(value_list, "values", max_value),
                                             strict=True)))
                return len(key_list)
            key_slices = list_slices(key_list, "keys", max_key) or list_slices(
                _converted(key_list, "keys", max_key), "keys", max_key)
            value_slices = list_slices(value_list, "values", max_value) or list_slices(
                _converted(value_list, "values", max_value), "values", max_value)
            assert key_slices is not None and value_slices is not None
        count = key_slices[0].size
        if count != value_slices[0].size:
            raise ValueError(f"put_many got {count} keys and {value_slices[0].size} values")
        self._writes.add_sorted(entries_from_slices(np.full(count, PUT, np.uint8), key_slices,
                                                    value_slices, USER_PREFIX))
        return int(count)

    def scan(self, start: Any = None, end: Any = None,
             prefix: Any = None) -> Iterator[tuple[bytes, bytes]]:
        """Ordered pairs as this transaction sees them (its own writes included)."""
        low, high = scan_bounds(start, end, prefix, self._options.max_key_size)
        return _user_pairs(self.scan_raw(low, high))

    def scan_raw(self, low: bytes | None, high: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        """Like :meth:`scan` over ``[low, high)``, system keys included (for the engine)."""
        self._check_writable()
        own = self._writes.items(low, high)
        committed = ((k, v) for k, v in self._current().scan(low, high, None))
        yield from newest_by_key([own, committed])


def _user_pairs(pairs: Iterator[tuple[bytes, bytes]]) -> Iterator[tuple[bytes, bytes]]:
    """Stored-form user pairs as the user sees them (key space byte dropped)."""
    for key, value in pairs:
        yield key[1:], value


def _converted(items: Sequence[Any], what: str, limit: int,
               convert: Callable[[Any, str, int], bytes] = as_bytes) -> list[bytes]:
    """Every item through ``convert`` (bytes within ``limit``; ``str`` encoded)."""
    if convert is as_bytes and all(type(item) is bytes for item in items) and \
            max(map(len, items), default=0) <= limit:
        return list(items)
    return [convert(item, f"{what}[{i}]", limit) for i, item in enumerate(items)]


def _is_arrow(items: Any) -> bool:
    """An Arrow array or chunked array (checked without importing pyarrow)."""
    return type(items).__module__.split(".")[0] == "pyarrow" and (
        hasattr(items, "buffers") or hasattr(items, "combine_chunks"))


def _as_list(items: Any, what: str) -> Sequence[Any]:
    """A sequence of Python objects from a list, tuple or Arrow binary/string array."""
    if hasattr(items, "to_pylist"):
        values: list[Any] = items.to_pylist()
        if any(v is None for v in values):
            raise ValueError(f"{what} contains nulls")
        return values
    if isinstance(items, bytes | str | bytearray):
        raise TypeError(f"{what} must be a sequence of keys or values, not a single "
                        f"{type(items).__name__}")
    return list(items)


KvView = KvSnapshotView | KvTransactionView
"""A view of either kind, for code that only reads."""
