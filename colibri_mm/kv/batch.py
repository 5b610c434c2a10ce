"""Bulk changes as sorted arrays: the layer a large commit or a WAL replay adds.

A transaction with at least ``bulk_changes`` changes (an option, default 1024: a
``put_many``, a replayed WAL) is not applied key by key to the memtable. Its changes
are sorted with the sort kernel (the newest write of a key wins) into
:class:`~colibri_mm.kernels.merge.Entries`, logged, and installed as a :class:`Batch`:
one immutable layer of the store, visible at one CSN, searched with the search
kernel and merged into runs by the next checkpoint with the merge kernel. No Python
object is made per key.

The builders take keys and values from Python lists, from Arrow binary arrays
(their buffers, without conversion) or from change records in a WAL buffer.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import LimitError
from ..kernels.changes import decode_changes
from ..kernels.merge import Entries
from ..kernels.sort import gather_slices, sorted_distinct
from .many import ManyFound
from .ranges import Source, pairs_source, sorted_source
from .records import DELETE, PUT
from .sorted_entries import SortedEntries, Value

Version = tuple[int, Value | None]


class Batch:
    """Changes committed at one CSN, sorted (see the module docstring)."""

    def __init__(self, csn: int, entries: Entries) -> None:
        self.csn = csn
        self.sorted = SortedEntries(entries)
        self.value_bytes = self.sorted.nbytes
        """Bytes of keys and values held (for the dirty-set bound)."""

    def latest(self, key: bytes, view: bool = False) -> Version | None:
        """This batch's version of ``key`` (writer's view), or None; with ``view`` the
        value is a numpy view of the batch's arrays."""
        hit = self.sorted.get(key, view)
        if hit is None:
            return None
        return self.csn, (hit[1] if hit[0] == PUT else None)

    def visible(self, key: bytes, csn: int, view: bool = False) -> Version | None:
        """This batch's version of ``key`` if a snapshot at ``csn`` sees the batch."""
        return self.latest(key, view) if self.csn <= csn else None

    def find_many(self, found: ManyFound, csn: int | None) -> None:
        """Like :meth:`~colibri_mm.kv.memtable.Memtable.find_many` (one kernel call)."""
        if csn is None or self.csn <= csn:
            self.sorted.find_many(found)

    def versions_in_order(self, start: bytes | None, end: bytes | None,
                          csn: int | None) -> Iterator[tuple[bytes, bytes | None]]:
        """(key, value or None for a delete) in ``[start, end)`` seen at ``csn``."""
        if csn is not None and self.csn > csn:
            return
        for key, kind, value in self.sorted.items(start, end):
            yield key, (value if kind == PUT else None)

    def range_source(self, start: bytes | None, end: bytes | None,
                     csn: int | None) -> Source:
        """The batch's entries in ``[start, end)`` seen at ``csn`` (views)."""
        if csn is not None and self.csn > csn:
            return pairs_source([])
        return sorted_source(self.sorted, start, end)

    def newest_entries(self) -> Entries:
        """The batch's entries (already sorted, one per key)."""
        return self.sorted.entries

    def __len__(self) -> int:
        return len(self.sorted)


Slices = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.uint8]]
"""``(starts, lengths, buffer)``: item i is ``buffer[starts[i]:starts[i]+lengths[i]]``."""


def entries_from_slices(kinds: npt.NDArray[np.uint8], keys: Slices, values: Slices,
                        key_prefix: bytes = b"") -> Entries:
    """Sorted entries, the last of equal keys winning, from keys and values in place;
    every key is stored after ``key_prefix`` (its key space)."""
    chosen = sorted_distinct(*keys)
    key_offsets, key_data = gather_slices(*keys, chosen, key_prefix)
    value_offsets, value_data = gather_slices(*values, chosen)
    return Entries(kinds[chosen], key_offsets, key_data, value_offsets, value_data)


def entries_from_lists(keys: Sequence[bytes], values: Sequence[bytes | None]) -> Entries:
    """Sorted entries of ``keys[i] -> values[i]`` (None: delete), every one ``bytes``
    already checked against the limits."""
    deletes = values.count(None) if isinstance(values, list) else sum(
        v is None for v in values)
    if deletes:
        kinds = np.fromiter((PUT if v is not None else DELETE for v in values), np.uint8,
                            len(values))
        values = [v if v is not None else b"" for v in values]
    else:
        kinds = np.full(len(values), PUT, np.uint8)
    key_slices = list_slices(keys, "keys", sys.maxsize)
    value_slices = list_slices(values, "values", sys.maxsize)
    assert key_slices is not None and value_slices is not None
    return entries_from_slices(kinds, key_slices, value_slices)


def list_slices(items: Sequence[object], what: str, limit: int) -> Slices | None:
    """A list of ``bytes`` as slices of one joined buffer, or None if some item is of
    another type (the caller converts them one by one). Raises :class:`LimitError`
    naming the first item over ``limit`` bytes. Every step runs in C."""
    if not set(map(type, items)) <= {bytes}:
        return None
    lengths = np.fromiter(map(len, items), np.int64, len(items))  # type: ignore[arg-type]
    if lengths.size and int(lengths.max()) > limit:
        first = int(np.argmax(lengths > limit))
        raise LimitError(f"{what}[{first}] of {int(lengths[first])} bytes exceeds the limit "
                         f"of {limit} bytes")
    starts = np.zeros(len(items), np.int64)
    if len(items) > 1:
        np.cumsum(lengths[:-1], out=starts[1:])
    return starts, lengths, np.frombuffer(b"".join(items), np.uint8)  # type: ignore[arg-type]


def arrow_slices(array: Any, what: str, limit: int) -> Slices:
    """The items of an Arrow binary/string array (or chunked array) as slices of its
    data buffer; nulls and items over ``limit`` bytes are refused, naming the first."""
    import pyarrow as pa

    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    kind = array.type
    if pa.types.is_large_binary(kind) or pa.types.is_large_string(kind):
        offset_type: Any = np.int64
    elif pa.types.is_binary(kind) or pa.types.is_string(kind):
        offset_type = np.int32
    else:
        raise TypeError(f"{what} must be an Arrow binary or string array, not {kind}")
    if array.null_count:
        first = array.is_null().index(True).as_py()
        raise ValueError(f"{what} contains nulls (first at index {first})")
    _, offset_buffer, data_buffer = array.buffers()
    n = len(array)
    offsets = np.frombuffer(offset_buffer, offset_type, n + 1, array.offset
                            * np.dtype(offset_type).itemsize).astype(np.int64)
    data = np.frombuffer(data_buffer, np.uint8) if data_buffer is not None and \
        data_buffer.size else np.empty(0, np.uint8)
    lengths = np.diff(offsets)
    if n and int(lengths.max()) > limit:
        first = int(np.argmax(lengths > limit))
        raise LimitError(f"{what}[{first}] of {int(lengths[first])} bytes exceeds the limit "
                         f"of {limit} bytes")
    return offsets[:-1], lengths, data


def entries_from_records(buffer: npt.NDArray[np.uint8], record_starts: npt.NDArray[np.int64],
                         record_ends: npt.NDArray[np.int64]) -> Entries:
    """Sorted entries of change records lying in ``buffer``, later records winning.

    Raises :class:`~colibri_mm.kernels.changes.BadRecordError` naming a bad record.
    """
    changes = decode_changes(buffer, record_starts, record_ends, (PUT, DELETE))
    return entries_from_slices(changes.kinds,
                               (changes.key_starts, changes.key_lengths, buffer),
                               (changes.value_starts, changes.value_lengths, buffer))
