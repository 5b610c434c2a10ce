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

import pyarrow as pa

DEFAULT_BYTES = 64 << 20
"""Default bound on the Arrow bytes the cache holds."""


class ChunkCache:
    """Parsed chunks by (table id, chunk number), at most ``max_bytes`` of them."""

    def __init__(self, max_bytes: int = DEFAULT_BYTES) -> None:
        self.max_bytes = max_bytes
        self._chunks: OrderedDict[tuple[int, int], pa.Table] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, table_id: int, chunk: int) -> pa.Table | None:
        """The parsed chunk, or None (counted as a miss)."""
        with self._lock:
            found = self._chunks.get((table_id, chunk))
            if found is None:
                self.misses += 1
                return None
            self._chunks.move_to_end((table_id, chunk))
            self.hits += 1
            return found

    def put(self, table_id: int, chunk: int, rows: pa.Table) -> None:
        """Keep ``rows`` (parsed from a private copy), evicting the oldest over the bound."""
        size = int(rows.nbytes)
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._chunks.pop((table_id, chunk), None)
            if old is not None:
                self._bytes -= int(old.nbytes)
            self._chunks[(table_id, chunk)] = rows
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, evicted = self._chunks.popitem(last=False)
                self._bytes -= int(evicted.nbytes)

    @property
    def nbytes(self) -> int:
        """Arrow bytes held."""
        return self._bytes
