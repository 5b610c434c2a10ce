"""Point lookups and ordered iteration over sorted key/value entries.

:class:`SortedEntries` wraps an :class:`~colibri_mm.kernels.merge.Entries` (distinct
keys in byte order, each a put or a delete marker, Arrow-style columns) with a
searcher. Sorted runs in the data file and bulk commits held in memory are both
read through it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal, overload

import numpy as np
import numpy.typing as npt

from ..kernels.merge import Entries
from ..kernels.search import SortedByteKeys, lookup_many_varlen
from .many import ManyFound

Value = bytes | npt.NDArray[np.uint8]
"""A value: bytes, or a read-only numpy view where the caller asked for one."""


class SortedEntries:
    """Searchable sorted entries (see the module docstring)."""

    def __init__(self, entries: Entries) -> None:
        self.entries = entries
        self.keys = SortedByteKeys(entries.key_offsets, entries.key_data)
        """Raises ValueError or TypeError when the key offsets are inconsistent."""

    @overload
    def get(self, key: bytes, view: Literal[False] = False) -> tuple[int, bytes] | None: ...

    @overload
    def get(self, key: bytes, view: bool) -> tuple[int, Value] | None: ...

    def get(self, key: bytes, view: bool = False) -> tuple[int, Value] | None:
        """(kind, value) of ``key``, or None if absent; with ``view`` the value is a
        numpy view of the entries (of the mapped file, for a run), not a copy."""
        i = self.keys.find(key)
        if i < 0:
            return None
        e = self.entries
        start, end = e.value_offsets[i : i + 2].tolist()
        value = e.value_data[start:end]
        return int(e.kinds[i]), (value if view else value.tobytes())

    def find_many(self, found: ManyFound) -> None:
        """Decide the undecided probes of ``found`` that are here (one kernel call for
        all of them)."""
        e = self.entries
        found.take_sorted(e, lookup_many_varlen(e.key_offsets, e.key_data, *found.probes,
                                                found.order()))

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
