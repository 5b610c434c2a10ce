"""Plain reference for :mod:`.crc32`: ``zlib.crc32``, one call per buffer or page."""

import zlib
from typing import Any

import numpy as np
import numpy.typing as npt


def crc32(data: Any, value: int = 0) -> int:
    """CRC-32 as computed by zlib."""
    return zlib.crc32(data, value & 0xFFFFFFFF)


def crc32_pages(buf: Any, page_size: int) -> npt.NDArray[np.uint32]:
    """CRC-32 of each page, one zlib call per page."""
    view = memoryview(buf).cast("B")
    return np.array([zlib.crc32(view[o : o + page_size]) for o in range(0, len(view), page_size)],
                    dtype=np.uint32)
