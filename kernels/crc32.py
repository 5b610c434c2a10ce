"""CRC-32 (IEEE 802.3, as zlib's ``crc32``): of a buffer and of every page of a
buffer. It is the checksum of format 0.9 (the pre-release format, which kept the
checksum of the original ColibriDB), used to read 0.9 databases and to migrate them.

Reflected polynomial ``0xEDB88320``, initial register and final XOR ``0xFFFFFFFF``;
``crc32(data, value)`` equals ``zlib.crc32(data, value)``. One implementation: the
slicing-by-8 loop of :mod:`.checksum` with this polynomial's tables (x86 has no
instruction for this polynomial; format 0.9 is only read and migrated, never
written on a hot path).
"""

from typing import Any, Final

import numpy as np
import numpy.typing as npt

from .buffers import ByteArray, as_uint8
from .checksum import page_arrays, register_sliced, slicing_tables
from .jit import kernel

POLYNOMIAL: Final = 0xEDB88320
"""CRC-32 (IEEE) polynomial, bit-reflected."""

_SLICING = slicing_tables(POLYNOMIAL)


@kernel
def update(crc: np.uint32, data: ByteArray, start: np.uint64, end: np.uint64) -> np.uint32:
    """CRC-32 of ``data[start:end]`` continuing from the finalised ``crc``.

    For other kernels: ``update(crc32(a), b, 0, len(b)) == crc32(a + b)``.
    """
    register = np.uint64(np.uint32(crc) ^ np.uint32(0xFFFFFFFF))
    register = register_sliced(register, data, np.uint64(start), np.uint64(end), _SLICING)
    return np.uint32(register) ^ np.uint32(0xFFFFFFFF)


@kernel
def _pages(data: ByteArray, page_size: np.uint64, out: npt.NDArray[np.uint32]) -> None:
    for page in range(out.size):
        start = np.uint64(page) * np.uint64(page_size)
        out[page] = update(np.uint32(0), data, start, start + np.uint64(page_size))


def crc32(data: Any, value: int = 0) -> int:
    """CRC-32 of ``data`` (any C-contiguous buffer), continuing from the CRC ``value``
    (reduced modulo 2**32): the same result as ``zlib.crc32(data, value)``."""
    if not isinstance(value, int | np.integer):
        raise TypeError(f"'{type(value).__name__}' object cannot be interpreted as an integer")
    array = as_uint8(data)
    return int(update(np.uint32(int(value) & 0xFFFFFFFF), array, np.uint64(0),
                      np.uint64(array.size)))


def crc32_pages(buf: Any, page_size: int) -> npt.NDArray[np.uint32]:
    """CRC-32 of every ``page_size``-byte page of ``buf``, in one kernel call.

    ``len(buf)`` must be a multiple of ``page_size``. Returns one uint32 per page.
    """
    array, out = page_arrays(buf, page_size)
    _pages(array, np.uint64(page_size), out)
    return out
