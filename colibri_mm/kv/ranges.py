"""A key range read as arrays: the live entries of ``[start, end)`` over a store's
layers, merged with numpy and the sort kernel instead of pair by pair, and values
left where they lie (numpy views of sorted layers and runs) until asked for.

The engine reads its own key ranges this way: a table's chunks (big values, wanted
as views), its delete marks and chunk counts (many small entries).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..kernels.keycodec import Varlen
from ..kernels.sort import gather_slices, sorted_distinct
from .pieces import gather_pieces, joined
from .records import DELETE, PUT
from .sorted_entries import SortedEntries, Value


@dataclass(frozen=True)
class Source:
    """One layer's entries in the range, in key order (``kinds``: PUT or DELETE;
    keys and values as starts and lengths into their buffers)."""

    kinds: npt.NDArray[np.uint8]
    key_starts: npt.NDArray[np.int64]
    key_lengths: npt.NDArray[np.int64]
    key_buffer: npt.NDArray[np.uint8]
    value_starts: npt.NDArray[np.int64]
    value_lengths: npt.NDArray[np.int64]
    value_buffer: npt.NDArray[np.uint8]


def sorted_source(entries: SortedEntries, start: bytes | None, end: bytes | None) -> Source:
    """The entries of ``[start, end)`` of sorted entries, as views (no copy)."""
    i = 0 if start is None else entries.keys.search(start)
    stop = len(entries.keys) if end is None else entries.keys.search(end)
    e = entries.entries
    key_offsets = e.key_offsets[i : stop + 1]
    value_offsets = e.value_offsets[i : stop + 1]
    return Source(e.kinds[i:stop], key_offsets[:-1], np.diff(key_offsets), e.key_data,
                  value_offsets[:-1], np.diff(value_offsets), e.value_data)


def pairs_source(pairs: Iterable[tuple[bytes, bytes | None]]) -> Source:
    """Ordered ``(key, value or None for a delete)`` pairs as a source (copied)."""
    keys = []
    values = []
    for key, value in pairs:
        keys.append(key)
        values.append(value)
    kinds = np.fromiter((DELETE if v is None else PUT for v in values), np.uint8, len(keys))
    key_starts, key_lengths, key_buffer = joined(keys)
    value_starts, value_lengths, value_buffer = joined([v or b"" for v in values])
    return Source(kinds, key_starts, key_lengths, key_buffer, value_starts, value_lengths,
                  value_buffer)


class RangeEntries:
    """The live entries of a range: ``keys`` in order, values on demand."""

    def __init__(self, sources_newest_first: list[Source]) -> None:
        sources = [s for s in reversed(sources_newest_first) if s.kinds.size]
        self._sources = sources
        if len(sources) > 1:
            picked_source, picked = self._newest_of_each(sources)
        else:
            size = sources[0].kinds.size if sources else 0
            picked_source, picked = np.zeros(size, np.int64), np.arange(size)
        kinds = np.concatenate([s.kinds for s in sources]) if sources else \
            np.empty(0, np.uint8)
        bases = np.cumsum([0] + [s.kinds.size for s in sources])
        live = kinds[bases[picked_source] + picked] == PUT
        self._source_of = picked_source[live]
        self._index = picked[live]
        self.keys = self._gather("key")

    @staticmethod
    def _newest_of_each(sources: list[Source]) -> tuple[np.ndarray, np.ndarray]:
        """(source, index) of the newest entry of each key, in key order (``sources``
        oldest first)."""
        gathered = [gather_slices(s.key_starts, s.key_lengths, s.key_buffer,
                                  np.arange(s.kinds.size)) for s in sources]
        sizes = [g[1].size for g in gathered]
        data = np.concatenate([g[1] for g in gathered]) if gathered else \
            np.empty(0, np.uint8)
        starts = np.concatenate([g[0][:-1] + base for g, base in
                                 zip(gathered, np.cumsum([0, *sizes[:-1]]), strict=True)])
        lengths = np.concatenate([np.diff(g[0]) for g in gathered])
        winners = sorted_distinct(starts, lengths, data)
        bases = np.cumsum([0] + [s.kinds.size for s in sources])
        source = np.searchsorted(bases, winners, side="right") - 1
        return source, winners - bases[source]

    def __len__(self) -> int:
        return int(self._index.size)

    def values(self) -> Varlen:
        """Every value, copied out in key order as Arrow-style ``(offsets, data)``."""
        return self._gather("value")

    def value_lengths(self) -> np.ndarray:
        """The length of every value, in key order (nothing copied)."""
        lengths = np.empty(self._index.size, np.int64)
        for number, source in enumerate(self._sources):
            mine = np.flatnonzero(self._source_of == number)
            lengths[mine] = source.value_lengths[self._index[mine]]
        return lengths

    def _gather(self, what: str) -> Varlen:
        pieces = []
        for number, source in enumerate(self._sources):
            mine = np.flatnonzero(self._source_of == number)
            if mine.size:
                at = self._index[mine]
                if what == "key":
                    pieces.append((mine, source.key_starts[at], source.key_lengths[at],
                                   source.key_buffer))
                else:
                    pieces.append((mine, source.value_starts[at], source.value_lengths[at],
                                   source.value_buffer))
        return gather_pieces(self._index.size, pieces)

    def value(self, i: int) -> Value:
        """Value ``i`` where it lies: a read-only numpy view (of the mapped file, for
        a run; valid while the snapshot or a pin holds the run)."""
        source = self._sources[int(self._source_of[i])]
        at = int(self._index[i])
        start = int(source.value_starts[at])
        return source.value_buffer[start : start + int(source.value_lengths[at])]
