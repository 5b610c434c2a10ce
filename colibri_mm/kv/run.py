"""Sorted runs: the checkpointed part of the key/value store.

A run is one extent of pages holding entries with distinct keys in byte order, each
a put (with its value) or a delete marker hiding older runs. Its sections are
Arrow-style arrays, so every column of a run is one contiguous numpy view of the
mapped data file (no copy). Layout: ``docs/FORMAT.md`` section 7.

A run's pages are checked against the CRCs in the catalog the first time the run is
read after opening (one batched kernel call), not at open: opening costs the same
whatever the size of the store.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

from ..errors import CorruptionError
from ..kernels.merge import Entries
from ..kernels.search import SortedByteKeys
from ..storage.catalog import ExtentRef
from ..storage.checksums import CRC32C, FormatChecksum
from ..storage.pagefile import PageFile
from .keys import SYSTEM_PREFIX
from .sorted_entries import SortedEntries, Value

MAGIC = b"COLIRUN\x00"
_HEADER = struct.Struct("<8sQQQQ")
HEADER_BYTES = 64
VALUE_ALIGNMENT = 64
"""The engine's values (keys from 0x01 on) begin at a multiple of this in a run, so
the table chunks stored there keep Arrow's alignment in the map."""


def _align8(n: int) -> int:
    return (n + 7) & ~7


def _layout(n: int, key_bytes: int, value_bytes: int,
            gap: int) -> tuple[int, int, int, int, int, int]:
    """Byte offsets of (kinds, key_offsets, value_offsets, key_data, value_data, end)."""
    kinds = HEADER_BYTES
    key_offsets = _align8(kinds + n)
    value_offsets = key_offsets + 8 * (n + 1)
    key_data = value_offsets + 8 * (n + 1)
    value_data = _align8(key_data + key_bytes) + gap
    return kinds, key_offsets, value_offsets, key_data, value_data, value_data + value_bytes


def encode_run(entries: Entries, page_size: int) -> npt.NDArray[np.uint8]:
    """The pages of a run holding ``entries``."""
    n = entries.kinds.size
    key_bytes = int(entries.key_offsets[-1])
    value_bytes = int(entries.value_offsets[-1])
    # The gap before the values puts the first engine value at a multiple of
    # VALUE_ALIGNMENT (user values, which come first, may have any length). Every
    # stored key begins with its key-space byte.
    user_value_bytes = 0
    if n:
        key_spaces = entries.key_data[entries.key_offsets[:-1]]
        user_value_bytes = int(entries.value_offsets[np.searchsorted(key_spaces,
                                                                     SYSTEM_PREFIX[0])])
    gap = -(_layout(n, key_bytes, value_bytes, 0)[4] + user_value_bytes) % VALUE_ALIGNMENT
    kinds, ko, vo, kd, vd, end = _layout(n, key_bytes, value_bytes, gap)
    image = np.zeros(-(-end // page_size) * page_size, np.uint8)
    image[:_HEADER.size] = np.frombuffer(
        _HEADER.pack(MAGIC, n, key_bytes, value_bytes, gap), np.uint8)
    image[kinds : kinds + n] = entries.kinds
    image[ko : ko + 8 * (n + 1)] = entries.key_offsets.astype("<i8").view(np.uint8)
    image[vo : vo + 8 * (n + 1)] = entries.value_offsets.astype("<i8").view(np.uint8)
    image[kd : kd + key_bytes] = entries.key_data[:key_bytes]
    image[vd : vd + value_bytes] = entries.value_data[:value_bytes]
    return image


class Run:
    """A sorted run read from the mapped data file."""

    def __init__(self, pages: PageFile, extent: ExtentRef, verified: bool = False,
                 checksum: FormatChecksum = CRC32C) -> None:
        self.extent = extent
        self._checksum = checksum
        self._pages = pages
        self._lock = threading.Lock()
        self._ready = False
        self._verified = verified
        self._sorted: SortedEntries

    @property
    def size(self) -> int:
        """Bytes on disk."""
        return self.extent.count * self._pages.page_size

    def _open(self) -> None:
        with self._lock:
            if self._ready:
                return
            extent = self.extent
            view = self._pages.view(extent.first, extent.count)
            where = f"{self._pages.path}"
            if not self._verified:
                crcs = self._checksum.pages(view, self._pages.page_size)
                bad = np.flatnonzero(crcs != extent.page_crcs)
                if bad.size:
                    page = extent.first + int(bad[0])
                    raise CorruptionError(f"data page {page} of a sorted run fails its "
                                          "checksum", path=where,
                                          offset=page * self._pages.page_size)
            magic, n, key_bytes, value_bytes, gap = _HEADER.unpack(
                view[: _HEADER.size].tobytes())
            kinds, ko, vo, kd, vd, end = _layout(n, key_bytes, value_bytes, gap)
            if magic != MAGIC or gap >= VALUE_ALIGNMENT or end > view.size:
                raise CorruptionError("sorted run has a bad header", path=where,
                                      offset=extent.first * self._pages.page_size)
            entries = Entries(view[kinds : kinds + n],
                              view[ko : ko + 8 * (n + 1)].view("<i8"),
                              view[kd : kd + key_bytes],
                              view[vo : vo + 8 * (n + 1)].view("<i8"),
                              view[vd : vd + value_bytes])
            try:
                sorted_entries = SortedEntries(entries)
                SortedByteKeys(entries.value_offsets, entries.value_data)
            except (ValueError, TypeError) as e:
                raise CorruptionError(f"sorted run has inconsistent offsets ({e})",
                                      path=where,
                                      offset=extent.first * self._pages.page_size) from None
            self._sorted = sorted_entries
            self._ready = True

    def sorted(self) -> SortedEntries:
        """The run's entries (zero-copy views), checked on first use."""
        if not self._ready:
            self._open()
        return self._sorted

    def arrays(self) -> Entries:
        """The run's columns as zero-copy views."""
        return self.sorted().entries

    def get(self, key: bytes, view: bool = False) -> tuple[int, Value] | None:
        """(kind, value) of ``key`` in this run, or None if the run lacks it (with
        ``view``: a view of the mapped file, valid while the run's checkpoint is read)."""
        return self.sorted().get(key, view)

    def items(self, start: bytes | None, end: bytes | None) -> Iterator[tuple[bytes, int, bytes]]:
        """(key, kind, value) of entries with ``start <= key < end``, in order."""
        return self.sorted().items(start, end)

    def __len__(self) -> int:
        return len(self.sorted())
