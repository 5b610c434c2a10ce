"""Extents written outside checkpoints: the bulk path of table imports.

A bulk import writes each chunk's bytes straight into free pages of the data file (an
*extent*), syncs them before its commit, and stores in the chunk's key only a
*descriptor*: where the extent is, its length and the CRC-32C of each of its pages.
The WAL therefore logs descriptors, not data. A crash before the commit leaves pages
that no checkpoint lists as used, so they are free again on reopen; a crash after it
replays the descriptors, and opening claims their pages back from the free space
(:meth:`~colibri_mm.storage.allocator.Allocator.claim`).

Who owns an extent: the sorted run holding its descriptor. Each checkpoint lists,
per run, the extents its descriptors name (``docs/FORMAT.md`` section 6), and
releases the extents that neither its runs nor the imports since the last
checkpoint name any more, as released by that checkpoint, so (like a merged-away
run's pages) they are reused only once no reader can look at an older checkpoint.
Descriptor layout: ``docs/FORMAT.md`` section 8.3.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..errors import CorruptionError
from ..kernels.checksum import crc32c_pages
from ..kernels.merge import Entries
from .allocator import Allocator
from .checksums import CRC32C, FormatChecksum
from .pagefile import PageFile

MAGIC = b"COLIEXT\x01"
_HEAD = struct.Struct("<8sQIQ")
DESCRIPTOR_BYTES = _HEAD.size
"""The least a descriptor takes (its fixed part)."""
MIN_EXTENT_PAGES = 4
"""A value shorter than this many pages stays inline in the store (an extent rounds
its value up to whole pages)."""

PUT_KIND = 1
"""The entry kind of a put (``colibri_mm.kv.records.PUT``; the storage layer does not
import the key/value layer above it)."""

Extent = tuple[int, int]
"""(first page, page count)."""


@dataclass(frozen=True)
class Descriptor:
    """Where a value written as an extent lies, and its page CRCs."""

    first: int
    count: int
    length: int
    page_crcs: npt.NDArray[np.uint32]

    @property
    def extent(self) -> Extent:
        return self.first, self.count

    def encode(self) -> bytes:
        """The descriptor as a stored value, zero-padded to a multiple of 64 bytes
        (as chunks are, so the chunks after it in a run stay aligned)."""
        data = _HEAD.pack(MAGIC, self.first, self.count, self.length) + \
            self.page_crcs.astype("<u4").tobytes()
        return data + bytes(-len(data) % 64)

    @staticmethod
    def decode(value: bytes | npt.NDArray[np.uint8], page_size: int) -> Descriptor:
        """Parse a stored descriptor (:class:`CorruptionError` if it is damaged)."""
        data = value if isinstance(value, bytes) else value.tobytes()
        if len(data) < _HEAD.size:
            raise CorruptionError("an extent descriptor is truncated")
        magic, first, count, length = _HEAD.unpack_from(data)
        end = _HEAD.size + 4 * count
        if magic != MAGIC or len(data) != end + (-end % 64) or first < 1 or \
                not (count - 1) * page_size < length <= count * page_size:
            raise CorruptionError("an extent descriptor is damaged")
        return Descriptor(first, count, length, np.frombuffer(data, "<u4", count, _HEAD.size)
                          .astype(np.uint32))


def is_descriptor(value: bytes | npt.NDArray[np.uint8]) -> bool:
    """Whether a stored value is an extent descriptor (a chunk stored inline begins
    with Arrow's 0xFFFFFFFF continuation marker instead)."""
    head = value[: len(MAGIC)]
    return (head if isinstance(head, bytes) else head.tobytes()) == MAGIC


class ExtentWriter:
    """Writes the extents of one bulk transaction (the caller holds the checkpoint
    lock, so nothing else allocates meanwhile)."""

    def __init__(self, pages: PageFile, allocator: Allocator, oldest_visible: int) -> None:
        self._pages = pages
        self._allocator = allocator
        self._oldest_visible = oldest_visible
        self._scratch = np.empty(0, np.uint8)
        self.extents: list[Extent] = []
        """Every extent written, in order."""
        self.bytes_written = 0

    @property
    def min_bytes(self) -> int:
        """Values shorter than this are better stored inline."""
        return MIN_EXTENT_PAGES * self._pages.page_size

    def store(self, length: int, fill: Callable[[npt.NDArray[np.uint8]], None]) -> bytes:
        """Write a value of ``length`` bytes, which ``fill`` writes into the array it
        is given, as an extent; returns its descriptor."""
        page_size = self._pages.page_size
        count = -(-length // page_size)
        if self._scratch.size < count * page_size:
            self._scratch = np.empty(count * page_size, np.uint8)
        image = self._scratch[: count * page_size]
        fill(image[:length])
        image[length:] = 0
        crcs = crc32c_pages(image, page_size)
        first = self._allocator.allocate(count, self._oldest_visible)
        self.extents.append((first, count))
        self._pages.reserve(first + count)
        self._pages.write(first, image)
        self.bytes_written += image.size
        return Descriptor(first, count, length, crcs).encode()

    def sync(self) -> None:
        """Make every extent written durable (before the commit that names them)."""
        if self.extents:
            self._pages.sync()

    def release(self) -> None:
        """Give every extent back to the allocator (the transaction was aborted: no
        commit names them, so no reader can have seen them)."""
        for first, count in self.extents:
            self._allocator.release(first, count, 0)
        self.extents.clear()


class ExtentReader:
    """Reads values stored as extents: a view of the mapped pages, checked against
    the descriptor's CRCs (in the format's ``checksum``) the first time it is read in
    this process."""

    def __init__(self, pages: PageFile, checksum: FormatChecksum = CRC32C) -> None:
        self._pages = pages
        self._checksum = checksum
        self._verified: set[bytes] = set()
        self._lock = threading.Lock()

    def read(self, value: bytes | npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """The bytes of the extent ``value`` describes (a read-only view of the map)."""
        key = value if isinstance(value, bytes) else value.tobytes()
        if key in self._verified:
            descriptor = Descriptor.decode(key, self._pages.page_size)
            return self._pages.view(descriptor.first, descriptor.count)[: descriptor.length]
        view = self.check(key)
        with self._lock:
            self._verified.add(key)
        return view

    def check(self, value: bytes | npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """Check the extent ``value`` describes against its page CRCs now
        (:class:`CorruptionError` naming the page); returns its bytes."""
        pages = self._pages
        descriptor = Descriptor.decode(value, pages.page_size)
        view = pages.view(descriptor.first, descriptor.count)
        bad = np.flatnonzero(self._checksum.pages(view, pages.page_size) !=
                             descriptor.page_crcs)
        if bad.size:
            page = descriptor.first + int(bad[0])
            raise CorruptionError(f"data page {page} of an imported extent fails its "
                                  "checksum", path=str(pages.path),
                                  offset=page * pages.page_size)
        return view[: descriptor.length]

    def length(self, value: bytes | npt.NDArray[np.uint8]) -> int:
        """Bytes of the value the descriptor ``value`` describes (nothing read)."""
        return Descriptor.decode(value, self._pages.page_size).length


def with_prefix(entries: Entries, prefix: bytes, kind: int) -> npt.NDArray[np.bool_]:
    """Mask of the entries of ``kind`` whose keys begin with ``prefix`` (numpy over
    the key arrays)."""
    offsets, keys = entries.key_offsets, entries.key_data
    starts = offsets[:-1]
    mask: npt.NDArray[np.bool_] = (np.diff(offsets) >= len(prefix)) & (entries.kinds == kind)
    for k, byte in enumerate(prefix):
        mask[mask] &= keys[starts[mask] + k] == byte
    return mask


def named_extents(entries: Entries, key_prefix: bytes, page_size: int) -> set[Extent]:
    """The extents named by the descriptors among the put values of ``entries``
    whose keys begin with ``key_prefix`` (the key space whose values may be
    descriptors), found with numpy over the arrays."""
    mask = with_prefix(entries, key_prefix, PUT_KIND)
    value_starts = entries.value_offsets[:-1][mask]
    value_lengths = np.diff(entries.value_offsets)[mask]
    heads = value_lengths >= _HEAD.size
    value_starts, value_lengths = value_starts[heads], value_lengths[heads]
    if not value_starts.size:
        return set()
    magic = np.frombuffer(MAGIC, np.uint8)
    head_bytes = entries.value_data[value_starts[:, None] + np.arange(magic.size)]
    hit = (head_bytes == magic).all(axis=1)
    return {Descriptor.decode(entries.value_data[start : start + length], page_size).extent
            for start, length in zip(value_starts[hit].tolist(), value_lengths[hit].tolist(),
                                     strict=True)}
