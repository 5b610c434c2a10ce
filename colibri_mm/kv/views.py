"""The ``.kv`` views: what ``snap.kv``, ``tx.kv`` and ``db.kv`` offer.

- :class:`KvSnapshotView` reads one :class:`~colibri_mm.kv.store.StoreVersion` at
  one snapshot's CSN.
- :class:`KvTransactionView` reads the writer's view (its own uncommitted writes
  first, then the newest committed entries) and buffers writes in the
  transaction's write set.
- ``db.kv`` (in ``colibri_mm.database``) wraps each call in its own snapshot or
  transaction.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .keys import as_bytes, scan_bounds
from .store import StoreVersion

if TYPE_CHECKING:
    from ..options import Options


class KvSnapshotView:
    """Read-only key/value access at a fixed CSN."""

    def __init__(self, version: StoreVersion, csn: int, options: Options,
                 check_open: Callable[[], None]) -> None:
        self._version = version
        self._csn = csn
        self._options = options
        self._check_open = check_open

    def get(self, key: Any) -> bytes | None:
        """The value of ``key`` in this snapshot, or None."""
        self._check_open()
        return self._version.get(as_bytes(key, "key", self._options.max_key_size), self._csn)

    def scan(self, start: Any = None, end: Any = None,
             prefix: Any = None) -> Iterator[tuple[bytes, bytes]]:
        """``(key, value)`` pairs with ``start <= key < end`` (and ``prefix``), in byte order."""
        self._check_open()
        low, high = scan_bounds(start, end, prefix, self._options.max_key_size)
        yield from self._version.scan(low, high, self._csn)


class KvTransactionView:
    """Key/value access inside a write transaction."""

    def __init__(self, current: Callable[[], StoreVersion], writes: dict[bytes, bytes | None],
                 options: Options, check_writable: Callable[[], None]) -> None:
        self._current = current
        self._writes = writes
        self._options = options
        self._check_writable = check_writable

    def _key(self, key: Any) -> bytes:
        return as_bytes(key, "key", self._options.max_key_size)

    def get(self, key: Any) -> bytes | None:
        """The value of ``key`` as this transaction sees it, or None."""
        self._check_writable()
        k = self._key(key)
        if k in self._writes:
            return self._writes[k]
        return self._current().get(k, None)

    def put(self, key: Any, value: Any) -> None:
        """Set ``key`` to ``value``."""
        self._check_writable()
        k = self._key(key)
        self._writes[k] = as_bytes(value, "value", self._options.max_value_size)

    def delete(self, key: Any) -> bool:
        """Delete ``key``; True if it existed."""
        existed = self.get(key) is not None
        self._writes[self._key(key)] = None
        return existed

    def put_many(self, keys: Any, values: Any) -> int:
        """Set ``keys[i]`` to ``values[i]`` for every i (sequences or Arrow binary arrays).

        Everything is validated before anything is written; returns the count.
        """
        self._check_writable()
        key_list = _as_list(keys, "keys")
        value_list = _as_list(values, "values")
        if len(key_list) != len(value_list):
            raise ValueError(f"put_many got {len(key_list)} keys and {len(value_list)} values")
        max_key = self._options.max_key_size
        max_value = self._options.max_value_size
        if _all_bytes_within(key_list, max_key) and _all_bytes_within(value_list, max_value):
            self._writes.update(zip(key_list, value_list, strict=True))
            return len(key_list)
        pairs = {}
        for i, (k, v) in enumerate(zip(key_list, value_list, strict=True)):
            pairs[as_bytes(k, f"keys[{i}]", max_key)] = as_bytes(v, f"values[{i}]", max_value)
        self._writes.update(pairs)
        return len(key_list)

    def scan(self, start: Any = None, end: Any = None,
             prefix: Any = None) -> Iterator[tuple[bytes, bytes]]:
        """Ordered pairs as this transaction sees them (its own writes included)."""
        self._check_writable()
        low, high = scan_bounds(start, end, prefix, self._options.max_key_size)
        own = sorted((k, v) for k, v in self._writes.items()
                     if (low is None or k >= low) and (high is None or k < high))
        committed = ((k, v) for k, v in self._current().scan(low, high, None)
                     if k not in self._writes)
        yield from heapq.merge(((k, v) for k, v in own if v is not None), committed)


def _all_bytes_within(items: Sequence[Any], limit: int) -> bool:
    """Fast path of put_many: every item is ``bytes`` and none is over ``limit``."""
    return all(type(item) is bytes for item in items) and \
        max(map(len, items), default=0) <= limit


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
