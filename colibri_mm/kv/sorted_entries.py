"""Point lookups and ordered iteration over sorted key/value entries.

:class:`SortedEntries` wraps an :class:`~colibri_mm.kernels.merge.Entries` (distinct
keys in byte order, each a put or a delete marker, Arrow-style columns) with a
searcher. Sorted runs in the data file and bulk commits held in memory are both
read through it.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..kernels.merge import Entries
from ..kernels.search import SortedByteKeys


class SortedEntries:
    """Searchable sorted entries (see the module docstring)."""

    def __init__(self, entries: Entries) -> None:
        self.entries = entries
        self.keys = SortedByteKeys(entries.key_offsets, entries.key_data)
        """Raises ValueError or TypeError when the key offsets are inconsistent."""

    def get(self, key: bytes) -> tuple[int, bytes] | None:
        """(kind, value) of ``key``, or None if absent."""
        i = self.keys.find(key)
        if i < 0:
            return None
        e = self.entries
        start, end = e.value_offsets[i : i + 2].tolist()
        return int(e.kinds[i]), e.value_data[start:end].tobytes()

    def items(self, start: bytes | None, end: bytes | None) -> Iterator[tuple[bytes, int, bytes]]:
        """(key, kind, value) of entries with ``start <= key < end``, in order."""
        e = self.entries
        i = 0 if start is None else self.keys.search(start)
        stop = len(self.keys) if end is None else self.keys.search(end)
        ko, kd, vo, vd, kinds = (e.key_offsets, e.key_data, e.value_offsets, e.value_data,
                                 e.kinds)
        for j in range(i, stop):
            yield (kd[ko[j] : ko[j + 1]].tobytes(), int(kinds[j]),
                   vd[vo[j] : vo[j + 1]].tobytes())

    def __len__(self) -> int:
        return int(self.entries.kinds.size)

    @property
    def nbytes(self) -> int:
        """Bytes of keys and values."""
        return int(self.entries.key_offsets[-1] + self.entries.value_offsets[-1])
