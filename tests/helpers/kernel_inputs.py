"""Input sizes for kernel tests: "huge" is scaled down when kernels run as Python."""

from colibri_mm.kernels.jit import JIT_DISABLED

HUGE = (1 << 16) + 3 if JIT_DISABLED else (64 << 20) + 3
"""A buffer far larger than any cache when JIT-compiled (odd length on purpose)."""

EDGE_LENGTHS = [0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 63, 64, 65, 255, 256, 257, 767, 768, 769,
                1023, 1024, 4095, 4096, 4097, 8191, 8192, 8193]
"""Lengths around word, cache-line, stream-block and page boundaries."""
