"""Parsed table chunks kept in memory for point reads.

A chunk's stored value never changes: chunk numbers only grow and are never reused
once committed (compaction writes new chunks), and only committed chunks reach the
cache (it is filled by snapshot reads). So a parsed chunk, made from a private copy
of the value (never a view of the mapped file, whose pages may be reused), stays
right for as long as it is kept; the cache only has to bound its size (least
recently used first out). An entry also keeps, made on first use, readers of its
columns' buffers: of Python values for point reads, of the stored row form for
updates.
"""

from __future__ import annotations

import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import pyarrow as pa

from .row_format import (
    NUMBER_FORMATS,
    Cells,
    ColumnBytes,
    NumberFormat,
    naive_timestamp,
    row_layout,
)

DEFAULT_BYTES = 64 << 20
"""Default bound on the Arrow bytes the cache holds."""
ADMIT_EVERY = 64
"""Once the cache is full, one chunk miss in this many is copied in."""


class CachedChunk:
    """A parsed chunk, and its columns as arrays (what point reads index into)."""

    __slots__ = ("_python", "_readers", "arrays", "rows")

    def __init__(self, rows: pa.Table, arrays: list[pa.Array]) -> None:
        self.rows = rows
        self.arrays = arrays
        self._readers: list[ColumnBytes] | None = None
        self._python: list[Callable[[int], Any]] | None = None

    @classmethod
    def of(cls, rows: pa.Table) -> CachedChunk:
        """The entry of parsed ``rows``."""
        return cls(rows, [c.chunk(0) if c.num_chunks == 1 else c.combine_chunks()
                          for c in rows.columns])

    @property
    def nbytes(self) -> int:
        """Arrow bytes held."""
        return int(self.rows.nbytes)

    def values(self, row: int, names: Iterable[str]) -> dict[str, Any]:
        """Row ``row`` as Python values (those ``as_py`` gives) by column name (the
        columns' ``names``), through readers of the columns made on first use
        (:func:`_python_values`)."""
        python = self._python
        if python is None:
            python = self._python = [_python_values(array) for array in self.arrays]
        return {name: value(row) for name, value in zip(names, python, strict=True)}

    def cells(self, row: int) -> Cells:
        """Row ``row`` in the stored row form (:mod:`.row_format`), read through
        readers of the columns' buffers made on first use (what an update copies)."""
        readers = self._readers
        if readers is None:
            layout = row_layout(self.rows.schema)
            readers = self._readers = [ColumnBytes(array, spec) for array, spec in
                                       zip(self.arrays, layout.columns, strict=True)]
        return [reader.value(row) for reader in readers]


def _python_values(array: pa.Array) -> Callable[[int], Any]:
    """What gives value ``row`` of ``array`` as ``as_py`` does: numbers, strings,
    binaries and timestamps without a time zone of a column without nulls straight
    from its buffers (several times faster), anything else through Arrow's scalars."""
    kind = array.type
    t = pa.types
    if not array.null_count:
        buffers = array.buffers()
        code = NUMBER_FORMATS.get(kind)
        if code is not None:
            return _typed(buffers[1], code, array.offset, len(array)).__getitem__
        stamp = naive_timestamp(kind)
        if stamp is not None:
            numbers = _typed(buffers[1], "q", array.offset, len(array))
            return lambda row: stamp(numbers[row])
        if t.is_string(kind) or t.is_binary(kind) or t.is_large_string(kind) or \
                t.is_large_binary(kind):
            large = t.is_large_string(kind) or t.is_large_binary(kind)
            offsets = _typed(buffers[1], "q" if large else "i", array.offset, len(array) + 1)
            data = memoryview(b"" if buffers[2] is None else buffers[2])
            if t.is_string(kind) or t.is_large_string(kind):
                return lambda row: str(data[offsets[row] : offsets[row + 1]], "utf-8")
            return lambda row: data[offsets[row] : offsets[row + 1]].tobytes()
    return lambda row: array[row].as_py()


def _typed(buffer: pa.Buffer, code: NumberFormat, offset: int,
           count: int) -> memoryview[Any]:
    """Items ``offset`` to ``offset + count`` of ``buffer`` read as memoryview format
    ``code``."""
    width = struct.calcsize(code)
    return memoryview(buffer)[offset * width : (offset + count) * width].cast(code)


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
