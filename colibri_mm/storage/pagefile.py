"""The data file: fixed-size pages, written with ``pwrite``, read through a read-only
memory map as numpy views.

Page 0 is reserved (page number 0 means "none"). The file grows in steps of
:data:`GROWTH_BYTES` with ``ftruncate`` (sparse until written). The map is never
written through and never shrunk while mapped: when the file grows, a new map of the
whole file is made for new views, and older maps stay alive for as long as views
of them do (numpy keeps them referenced).
"""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ..errors import CorruptionError
from .files import BytesLike, File, FileSystem

DATA_NAME = "data.pages"
GROWTH_BYTES = 64 << 20


class PageFile:
    """Pages of one database's data file (see the module docstring)."""

    def __init__(self, fs: FileSystem, directory: Path, page_size: int, *,
                 writable: bool) -> None:
        self.path = directory / DATA_NAME
        self.page_size = page_size
        created = writable and not fs.exists(self.path)
        self._file: File = fs.open(self.path, create=writable, writable=writable)
        if created:
            fs.sync_dir(directory)  # the name must survive a power cut before any use
        self._map: mmap.mmap | None = None
        self._mapped_pages = 0

    @property
    def pages(self) -> int:
        """Pages the file holds now (written or not)."""
        return self._file.size() // self.page_size

    def reserve(self, end_page: int) -> None:
        """Grow the file so pages below ``end_page`` exist."""
        if end_page <= self.pages:
            return
        step = max(GROWTH_BYTES, self.page_size)
        size = -(-end_page * self.page_size // step) * step
        self._file.truncate(size)

    def write(self, first_page: int, data: BytesLike) -> None:
        """Write whole pages starting at ``first_page`` (the caller reserved them)."""
        self._file.pwrite(data, first_page * self.page_size)

    def sync(self) -> None:
        """Make every written page durable."""
        self._file.datasync()

    def view(self, first_page: int, count: int) -> npt.NDArray[np.uint8]:
        """Read-only uint8 view of ``count`` pages from ``first_page``, zero-copy."""
        end = first_page + count
        if first_page < 1 or end > self._mapped_pages:
            self._remap(end)
        assert self._map is not None
        return np.frombuffer(self._map, np.uint8, count * self.page_size,
                             first_page * self.page_size)

    def _remap(self, end: int) -> None:
        pages = self.pages
        if end > pages or end < 1:
            raise CorruptionError(f"page range ending at {end} is outside the data file "
                                  f"({pages} pages)", path=str(self.path),
                                  offset=end * self.page_size)
        self._map = self._file.map_readonly(pages * self.page_size)
        self._mapped_pages = pages

    def read(self, first_page: int, count: int) -> bytes:
        """Copy of pages read with ``pread`` (for files that may be shorter)."""
        return self._file.pread(count * self.page_size, first_page * self.page_size)

    def close(self) -> None:
        """Close the file; maps stay valid while views of them exist."""
        self._file.close()
        self._map = None
