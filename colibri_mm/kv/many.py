"""Looking many keys up at once: :class:`ManyFound` gathers, over the layers of a
store searched newest first, each probe key's state and where its value lies, and
copies the values out in probe order with the gather kernel at the end."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from ..kernels.keycodec import Varlen
from ..kernels.merge import Entries
from ..kernels.sort import argsort_slices
from .pieces import Piece, gather_pieces, joined
from .records import PUT

SORTED_PROBES = 64
"""From this many probes on, layers are searched in key order."""


class ManyFound:
    """Per probe key: 1 a value was found, 0 a delete, -1 nothing yet (``states``);
    the first layer that has a key decides it."""

    def __init__(self, probes: Varlen, in_order: bool = False) -> None:
        self.probes = probes
        self.count = probes[0].size - 1
        self.states = np.full(self.count, -1, np.int8)
        self._listed: list[bytes] = []
        self._order: np.ndarray | None = np.arange(self.count) if in_order else None
        """A permutation sorting the probes (given when they come sorted)."""
        self._pieces: list[Piece] = []

    def keys(self) -> list[bytes]:
        """The probes as bytes (made once, for layers that look keys up one by one)."""
        if not self._listed and self.count:
            offsets, data = self.probes
            self._listed.extend(data[offsets[i] : offsets[i + 1]].tobytes()
                                for i in range(self.count))
        return self._listed

    def order(self) -> np.ndarray | None:
        """A permutation sorting the probes (made once, when there are enough of them
        for searches that start from the one before to pay off), else None."""
        if self._order is None and self.count >= SORTED_PROBES:
            offsets, data = self.probes
            self._order = argsort_slices(offsets[:-1], np.diff(offsets), data)
        return self._order

    def undecided(self) -> bool:
        """Whether some probe is still undecided."""
        return bool((self.states == -1).any())

    def take_sorted(self, entries: Entries, positions: npt.NDArray[np.int64]) -> None:
        """Decide the undecided probes found in ``entries`` (``positions``: each
        probe's entry, -1 for none)."""
        picked = np.flatnonzero((positions >= 0) & (self.states == -1))
        if not picked.size:
            return
        at = positions[picked]
        self.states[picked] = np.where(entries.kinds[at] == PUT, 1, 0)
        starts = entries.value_offsets[at]
        self._pieces.append((picked, starts, entries.value_offsets[at + 1] - starts,
                             entries.value_data))

    def take_each(self, version_of: Callable[[bytes], tuple[int, bytes | None] | None]
                  ) -> None:
        """Decide the undecided probes one by one: ``version_of(key)`` is None when the
        layer does not have the key, else ``(csn, value)`` (value None: a delete)."""
        picked = []
        values = []
        keys = self.keys()
        for i in np.flatnonzero(self.states == -1).tolist():
            version = version_of(keys[i])
            if version is None:
                continue
            picked.append(i)
            value = version[1]
            values.append(b"" if value is None else value)
            self.states[i] = 0 if value is None else 1
        if picked:
            self._pieces.append((np.array(picked, np.int64), *joined(values)))

    def values(self) -> Varlen:
        """The value of every probe, in probe order, as Arrow-style ``(offsets, data)``
        (empty for probes without a value)."""
        # A delete's value is empty already (markers hold none; take_each adds b"").
        return gather_pieces(self.count, self._pieces)
