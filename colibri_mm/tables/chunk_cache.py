"""Parsed table chunks kept in memory for point reads.

A chunk's stored value never changes: chunk numbers only grow and are never reused
once committed (compaction writes new chunks), and only committed chunks reach the
cache (it is filled by snapshot reads). So a parsed chunk, made from a private copy
of the value (never a view of the mapped file, whose pages may be reused), stays
right for as long as it is kept; the cache only has to bound its size (least
recently used first out).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import NamedTuple

import pyarrow as pa

DEFAULT_BYTES = 64 << 20
"""Default bound on the Arrow bytes the cache holds."""
ADMIT_EVERY = 64
"""Once the cache is full, one chunk miss in this many is copied in."""


class CachedChunk(NamedTuple):
    """A parsed chunk, and its columns as arrays (what point reads index into)."""

    rows: pa.Table
    arrays: list[pa.Array]

    @classmethod
    def of(cls, rows: pa.Table) -> CachedChunk:
        """The entry of parsed ``rows``."""
        return cls(rows, [c.chunk(0) if c.num_chunks == 1 else c.combine_chunks()
                          for c in rows.columns])

    @property
    def nbytes(self) -> int:
        """Arrow bytes held."""
        return int(self.rows.nbytes)


class ChunkCache:
    """Parsed chunks by (table id, chunk number), at most ``max_bytes`` of them."""

    def __init__(self, max_bytes: int = DEFAULT_BYTES) -> None:
        self.max_bytes = max_bytes
        self._chunks: OrderedDict[tuple[int, int], CachedChunk] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self._refused = 0

    def get(self, table_id: int, chunk: int) -> CachedChunk | None:
        """The parsed chunk, or None (counted as a miss)."""
        with self._lock:
            found = self._chunks.get((table_id, chunk))
            if found is None:
                self.misses += 1
                return None
            self._chunks.move_to_end((table_id, chunk))
            self.hits += 1
            return found

    def admit(self, size: int) -> bool:
        """Whether a chunk of ``size`` bytes that missed should be copied in: while it
        fits without evicting anything, always; after that one miss in
        :data:`ADMIT_EVERY`. A table much bigger than the cache then does not copy a
        whole chunk for each point read (a miss reads the chunk where it lies), and
        the cache still follows a working set that moves."""
        if size > self.max_bytes:
            return False
        with self._lock:
            if self._bytes + size <= self.max_bytes:
                return True
            self._refused += 1
            if self._refused < ADMIT_EVERY:
                return False
            self._refused = 0
            return True

    def put(self, table_id: int, chunk: int, rows: pa.Table) -> CachedChunk:
        """Keep ``rows`` (parsed from a private copy), evicting the oldest over the
        bound; returns the entry (kept or, if bigger than the bound, not)."""
        entry = CachedChunk.of(rows)
        size = entry.nbytes
        if size > self.max_bytes:
            return entry
        with self._lock:
            old = self._chunks.pop((table_id, chunk), None)
            if old is not None:
                self._bytes -= old.nbytes
            self._chunks[(table_id, chunk)] = entry
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, evicted = self._chunks.popitem(last=False)
                self._bytes -= evicted.nbytes
        return entry

    @property
    def nbytes(self) -> int:
        """Arrow bytes held."""
        return self._bytes
