"""Which checksum each on-disk format version uses, as one object the read and write
paths are given: the checksum is a property of the opened format, not of the code.

Format 1.x checksums with CRC-32C (the hardware-accelerated kernel), format 0.9 (the
pre-release format) with zlib's CRC-32, everywhere the same bytes are checksummed:
meta slots, catalogs, run pages, extent pages, WAL segment headers and WAL
fragments (``docs/FORMAT.md`` section 1). The storage and WAL code takes a
:class:`FormatChecksum` where it verifies or computes a checksum, and defaults to
the current format's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from ..kernels.checksum import crc32c, crc32c_pages, mask
from ..kernels.crc32 import crc32, crc32_pages

FORMAT_0_9: Final = 0x0009
"""The pre-release format: 1.0's structures, zlib CRC-32, one version field in the meta."""
FORMAT_1_0: Final = 0x0100
"""Format versions are ``major << 8 | minor``: 1.0 is 0x0100."""


@dataclass(frozen=True)
class FormatChecksum:
    """The checksum functions of one format version."""

    name: str
    """``"crc32c"`` or ``"crc32"``: also the name :mod:`colibri_mm.kernels.walcodec`
    takes for WAL fragments."""
    crc: Callable[..., int]
    """``crc(data, value=0)``: the CRC of a buffer, continuing from ``value``."""
    pages: Callable[[Any, int], npt.NDArray[np.uint32]]
    """``pages(buf, page_size)``: the CRC of every page of ``buf``, one kernel call."""

    def masked(self, data: Any) -> int:
        """The masked CRC of ``data`` (as stored inside checksummed structures)."""
        return int(mask(self.crc(data)))


CRC32C: Final = FormatChecksum("crc32c", crc32c, crc32c_pages)
"""Format 1.x: CRC-32C."""
ZLIB_CRC32: Final = FormatChecksum("crc32", crc32, crc32_pages)
"""Format 0.9: zlib's CRC-32."""


def checksum_of(version: int) -> FormatChecksum:
    """The checksum of format ``version`` (``major << 8 | minor``): CRC-32 before 1.0,
    CRC-32C from 1.0 on."""
    return ZLIB_CRC32 if version < FORMAT_1_0 else CRC32C
