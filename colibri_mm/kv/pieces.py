"""Byte strings gathered from several buffers into one Arrow-style ``(offsets, data)``
in a chosen order: the last step of looking many keys up (:mod:`.many`) and of
reading a key range as arrays (:mod:`.ranges`), where each layer of the store
contributes the items it decided, lying in its own buffer."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..kernels.keycodec import Varlen
from ..kernels.sort import gather_slices

Piece = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""``(positions, starts, lengths, buffer)``: item ``positions[j]`` of the result is
``buffer[starts[j] : starts[j] + lengths[j]]``."""


def joined(items: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(starts, lengths, buffer)`` of byte strings joined into one buffer."""
    lengths = np.fromiter(map(len, items), np.int64, len(items))
    starts = np.zeros(len(items), np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    return starts, lengths, np.frombuffer(b"".join(items), np.uint8)


def gather_pieces(count: int, pieces: Sequence[Piece]) -> Varlen:
    """The ``count`` items the pieces place, in position order (positions no piece
    places are empty): each piece gathered once, then all of them in one pass."""
    starts = np.zeros(count, np.int64)
    lengths = np.zeros(count, np.int64)
    gathered = []
    base = 0
    for positions, piece_starts, piece_lengths, buffer in pieces:
        offsets, data = gather_slices(piece_starts, piece_lengths, buffer,
                                      np.arange(positions.size))
        starts[positions] = base + offsets[:-1]
        lengths[positions] = piece_lengths
        gathered.append(data)
        base += data.size
    buffer = np.concatenate(gathered) if gathered else np.empty(0, np.uint8)
    return gather_slices(starts, lengths, buffer, np.arange(count))
