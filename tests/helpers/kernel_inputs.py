"""Input sizes for kernel tests: "huge" is scaled down when kernels run as Python."""

import numpy as np

from colibri_mm.kernels.jit import JIT_DISABLED

HUGE = (1 << 16) + 3 if JIT_DISABLED else (64 << 20) + 3
"""A buffer far larger than any cache when JIT-compiled (odd length on purpose)."""

EDGE_LENGTHS = [0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 63, 64, 65, 255, 256, 257, 767, 768, 769,
                1023, 1024, 4095, 4096, 4097, 8191, 8192, 8193]
"""Lengths around word, cache-line, stream-block and page boundaries."""


def slices_in_buffer(items: list[bytes], gap: int = 0) -> tuple[np.ndarray, np.ndarray,
                                                                 np.ndarray]:
    """``(buffer, starts, lengths)``: ``items`` laid out in one buffer, ``gap`` junk
    bytes before each (so kernels must honour the starts)."""
    parts = []
    starts = []
    position = 0
    for item in items:
        parts.append(b"\xee" * gap)
        position += gap
        starts.append(position)
        parts.append(item)
        position += len(item)
    return (np.frombuffer(b"".join(parts), np.uint8), np.array(starts, np.int64),
            np.array([len(item) for item in items], np.int64))
