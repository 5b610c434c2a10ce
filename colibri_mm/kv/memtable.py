"""Multi-version store of the key/value pairs committed since the last checkpoint.

Each key maps to a tuple of versions ``(csn, value)`` in commit order, ``value`` None
for a delete. A snapshot at CSN ``s`` sees, per key, the newest version with
``csn <= s``. Version tuples are replaced, never mutated, so a reader thread that
holds one is never disturbed by the writer; readers take no lock for point reads.
An ordered index of the keys (a ``SortedList``) serves ordered scans; it is guarded
by a short lock held only while a few hundred keys are copied out, never across a
transaction. New keys are only appended to a list by commits and sorted into the
index in one ``update`` by the next scan (a put does not pay for a sorted insert).

Old versions that no live snapshot can see are dropped when a key is written again,
and keys whose only version is an old delete hiding nothing older are swept by
:meth:`Memtable.sweep`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping

import numpy as np
import numpy.typing as npt
from sortedcontainers import SortedList

from ..kernels.merge import Entries
from .many import ManyFound
from .ranges import Source, pairs_source
from .records import DELETE, PUT

Version = tuple[int, bytes | None]
SCAN_CHUNK = 256
"""Keys copied out of the ordered index per lock acquisition during a scan."""


class Memtable:
    """Versions of every key written since the last checkpoint (see module docstring)."""

    def __init__(self) -> None:
        self._versions: dict[bytes, tuple[Version, ...]] = {}
        self._order = SortedList()
        self._unordered: list[bytes] = []
        """New keys not yet in ``_order`` (appended under ``_order_lock``)."""
        self._order_lock = threading.Lock()
        self._deleted: set[bytes] = set()
        self.value_bytes = 0
        """Approximate bytes of keys and values held (for the dirty-set bound)."""

    def __len__(self) -> int:
        return len(self._versions)

    def latest(self, key: bytes, view: bool = False) -> Version | None:
        """Newest version of ``key``, committed or not yet published (writer's view;
        ``view`` is accepted for the layer interface: values here are bytes)."""
        versions = self._versions.get(key)
        return versions[-1] if versions else None

    def visible(self, key: bytes, csn: int, view: bool = False) -> Version | None:
        """Newest version of ``key`` with ``csn <=`` the snapshot's ``csn``."""
        versions = self._versions.get(key)
        if versions is None:
            return None
        for version in reversed(versions):
            if version[0] <= csn:
                return version
        return None

    def apply(self, csn: int, changes: Mapping[bytes, bytes | None],
              horizon: Callable[[], int]) -> None:
        """Record a commit's changes as versions at ``csn``.

        ``horizon()`` is the oldest CSN a live snapshot may read at: older versions
        hidden behind a newer one at or below it are dropped (it is asked only when a
        key already has versions).
        """
        new_keys = []
        oldest_read = None
        for key, value in changes.items():
            old = self._versions.get(key)
            if old is None:
                new_keys.append(key)
                self._versions[key] = ((csn, value),)
            else:
                if oldest_read is None:
                    oldest_read = horizon()
                self._versions[key] = (*_trim(old, oldest_read), (csn, value))
            self.value_bytes += len(key) + (len(value) if value is not None else 0)
            if value is None:
                self._deleted.add(key)
        if new_keys:
            with self._order_lock:
                self._unordered += new_keys

    def _sort_new_keys(self) -> None:
        """Move the new keys into the ordered index (called with ``_order_lock``)."""
        if self._unordered:
            self._order.update(self._unordered)
            self._unordered = []

    def find_many(self, found: ManyFound, csn: int | None) -> None:
        """Decide the undecided probes of ``found`` by their version seen at ``csn``
        (None: the newest), if this memtable has any."""
        if self._versions:
            found.take_each(self.latest if csn is None else
                            lambda key: self.visible(key, csn))

    def sweep(self, horizon: int, held_below: Callable[[bytes], bool]) -> int:
        """Forget keys whose newest version is a delete no snapshot can see past and
        that no older source holds (``held_below(key)``: a frozen layer or a sorted
        run has an entry for it, which the delete must keep hiding).

        Returns how many keys were dropped.
        """
        gone = []
        later = set()
        for key in self._deleted:
            versions = self._versions.get(key)
            if versions is None:
                continue
            csn, value = versions[-1]
            if value is not None:
                continue
            if csn > horizon:
                later.add(key)  # a snapshot may still read an older version
            elif not held_below(key):
                gone.append(key)
        self._deleted = later
        for key in gone:
            del self._versions[key]
        if gone:
            with self._order_lock:
                self._sort_new_keys()
                for key in gone:
                    self._order.discard(key)
        return len(gone)

    def keys_in_order(self, start: bytes | None, end: bytes | None) -> Iterator[bytes]:
        """Keys in ``[start, end)`` in byte order, copied out in chunks."""
        lower = start
        inclusive = True
        while True:
            with self._order_lock:
                self._sort_new_keys()
                if lower is None:
                    index = 0
                elif inclusive:
                    index = self._order.bisect_left(lower)
                else:
                    index = self._order.bisect_right(lower)
                chunk = list(self._order.islice(index, index + SCAN_CHUNK))
            for key in chunk:
                if end is not None and key >= end:
                    return
                yield key
            if len(chunk) < SCAN_CHUNK:
                return
            lower = chunk[-1]
            inclusive = False

    def versions_in_order(self, start: bytes | None, end: bytes | None,
                          csn: int | None) -> Iterator[tuple[bytes, bytes | None]]:
        """(key, value or None for a delete) in ``[start, end)`` as seen at ``csn``
        (None: the writer's view), keys without a visible version left out. Older
        versions are looked for only where the newest is too new (scans are hot)."""
        versions = self._versions
        for key in self.keys_in_order(start, end):
            of_key = versions.get(key)
            if not of_key:
                continue
            version = of_key[-1]
            if csn is not None and version[0] > csn:
                older = self.visible(key, csn)
                if older is None:
                    continue
                version = older
            yield key, version[1]

    def range_source(self, start: bytes | None, end: bytes | None,
                     csn: int | None) -> Source:
        """The versions of :meth:`versions_in_order` as a range source (copied)."""
        return pairs_source(self.versions_in_order(start, end, csn))

    def newest_entries(self) -> Entries:
        """The newest version of every key, sorted, as run entries (deletes as markers).

        Only for a memtable no longer written to (frozen by a checkpoint).
        """
        keys = list(self.keys_in_order(None, None))
        newest = [self.latest(k) for k in keys]
        values = [v[1] if v is not None else None for v in newest]
        kinds = np.fromiter((PUT if v is not None else DELETE for v in values), np.uint8,
                            len(keys))
        return Entries(kinds, _offsets([len(k) for k in keys]),
                       np.frombuffer(b"".join(keys), np.uint8),
                       _offsets([len(v) if v is not None else 0 for v in values]),
                       np.frombuffer(b"".join(v for v in values if v is not None), np.uint8))


def _offsets(lengths: list[int]) -> npt.NDArray[np.int64]:
    offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def _trim(versions: tuple[Version, ...], horizon: int) -> tuple[Version, ...]:
    """Drop versions hidden, for every snapshot at or after ``horizon``, by a newer one."""
    keep_from = 0
    for i in range(len(versions) - 1, -1, -1):
        if versions[i][0] <= horizon:
            keep_from = i
            break
    return versions[keep_from:]
