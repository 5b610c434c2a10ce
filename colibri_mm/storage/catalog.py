"""The catalog: what a checkpoint consists of, written copy-on-write into pages.

It lists the extents holding data (each with the CRC of every one of its pages:
checksums live with the reference, ZFS-style, so data pages stay contiguous), the
free extents, the end of the allocated pages, and for each sorted run the extents
its values name (imported table chunks, :mod:`.extents`, whose CRCs are in the
descriptors). The meta slot points at its first
page. Its checksums are the format's (:mod:`.checksums`). Byte layout:
``docs/FORMAT.md`` section 6.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from ..errors import CorruptionError
from .allocator import FreeExtent
from .checksums import CRC32C, FormatChecksum
from .pagefile import PageFile

MAGIC = b"COLICAT\x00"
VERSION = 1
_HEADER = struct.Struct("<8sIIQQII")
_EXTENT = struct.Struct("<QQ")
_FREE = struct.Struct("<QQQ")
_CRC = struct.Struct("<I")
_COUNT = struct.Struct("<I")
HAS_RUN_EXTENTS = 1
"""Header flag: per-run lists of named extents follow the free extents."""


@dataclass(frozen=True)
class ExtentRef:
    """An extent of data pages and the CRC of each page."""

    first: int
    count: int
    page_crcs: npt.NDArray[np.uint32]
    named: tuple[tuple[int, int], ...] = ()
    """For a sorted run: the extents (first page, page count) its values name."""


@dataclass(frozen=True)
class Catalog:
    """Contents of one checkpoint."""

    end: int
    runs: tuple[ExtentRef, ...]
    """Extents of the key/value store's sorted runs, newest first."""
    free: tuple[FreeExtent, ...]

    def encode(self, checksum: FormatChecksum = CRC32C) -> bytes:
        """The catalog's bytes, CRC included (``checksum``: the format's; the page
        CRCs of the runs must be in it too)."""
        parts = []
        for run in self.runs:
            parts.append(_EXTENT.pack(run.first, run.count))
            parts.append(run.page_crcs.astype("<u4").tobytes())
        parts.extend(_FREE.pack(f.first, f.count, f.released_by) for f in self.free)
        for run in self.runs:
            parts.append(_COUNT.pack(len(run.named)))
            parts.extend(_EXTENT.pack(first, count) for first, count in run.named)
        body = b"".join(parts)
        length = _HEADER.size + len(body) + _CRC.size
        head = _HEADER.pack(MAGIC, VERSION, HAS_RUN_EXTENTS, length, self.end,
                            len(self.runs), len(self.free))
        return head + body + _CRC.pack(checksum.masked(head + body))

    @classmethod
    def decode(cls, data: bytes, where: str, checksum: FormatChecksum = CRC32C) -> Catalog:
        """Parse and verify with the format's ``checksum``; :class:`CorruptionError`
        names ``where`` if damaged."""
        if len(data) < _HEADER.size:
            raise CorruptionError(f"catalog at {where} is truncated")
        magic, version, flags, length, end, n_runs, n_free = _HEADER.unpack_from(data)
        if magic != MAGIC or version != VERSION or flags & ~HAS_RUN_EXTENTS or \
                not _HEADER.size < length <= len(data):
            raise CorruptionError(f"catalog at {where} has a bad header")
        (stored,) = _CRC.unpack_from(data, length - _CRC.size)
        if stored != checksum.masked(data[: length - _CRC.size]):
            raise CorruptionError(f"catalog at {where} fails its checksum")
        at = _HEADER.size
        runs = []
        for _ in range(n_runs):
            first, count = _EXTENT.unpack_from(data, at)
            at += _EXTENT.size
            crcs = np.frombuffer(data, "<u4", count, at).astype(np.uint32)
            at += 4 * count
            runs.append(ExtentRef(first, count, crcs))
        free = []
        for _ in range(n_free):
            free.append(FreeExtent(*_FREE.unpack_from(data, at)))
            at += _FREE.size
        if flags & HAS_RUN_EXTENTS:
            for i, run in enumerate(runs):
                (n_named,) = _COUNT.unpack_from(data, at)
                at += _COUNT.size
                if at + n_named * _EXTENT.size > length - _CRC.size:
                    raise CorruptionError(f"catalog at {where} has a bad extent list")
                named = tuple(_EXTENT.unpack_from(data, at + k * _EXTENT.size)
                              for k in range(n_named))
                at += n_named * _EXTENT.size
                runs[i] = replace(run, named=named)
        return cls(end, tuple(runs), tuple(free))


def read_catalog(pages: PageFile, first_page: int,
                 checksum: FormatChecksum = CRC32C) -> Catalog:
    """The catalog that starts at ``first_page``, checked with the format's
    ``checksum``."""
    where = f"{pages.path} page {first_page}"
    head = pages.read(first_page, 1)
    if len(head) < _HEADER.size:
        raise CorruptionError(f"catalog at {where} lies past the end of the data file")
    length = _HEADER.unpack_from(head)[3]
    if head[: len(MAGIC)] != MAGIC or \
            length > (pages.pages - first_page) * pages.page_size:
        # Checked before reading ``length`` bytes: damage must not ask for more.
        raise CorruptionError(f"catalog at {where} has a bad header")
    count = max(1, -(-length // pages.page_size))
    return Catalog.decode(pages.read(first_page, count), where, checksum)


def catalog_pages(catalog_bytes: int, page_size: int) -> int:
    """Pages a catalog of ``catalog_bytes`` occupies."""
    return max(1, -(-catalog_bytes // page_size))
