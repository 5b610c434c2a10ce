"""Plain reference for :mod:`.checksum`: the ``crc32c`` package, and a bit-at-a-time
CRC-32C written straight from the definition (used on small inputs to check the
package and the kernels against something that shares no code or tables)."""

from typing import Any

import crc32c as crc32c_package
import numpy as np
import numpy.typing as npt

POLYNOMIAL = 0x82F63B78


def crc32c(data: Any, value: int = 0) -> int:
    """CRC-32C as computed by the ``crc32c`` package."""
    return int(crc32c_package.crc32c(data, value))


def crc32c_bitwise(data: bytes, value: int = 0) -> int:
    """CRC-32C one bit at a time (slow: small inputs only)."""
    register = (value & 0xFFFFFFFF) ^ 0xFFFFFFFF
    for byte in data:
        register ^= byte
        for _ in range(8):
            register = (register >> 1) ^ (POLYNOMIAL if register & 1 else 0)
    return register ^ 0xFFFFFFFF


def crc32c_pages(buf: Any, page_size: int) -> npt.NDArray[np.uint32]:
    """CRC-32C of each page, one package call per page."""
    view = memoryview(buf).cast("B")
    return np.array(
        [crc32c(view[o : o + page_size]) for o in range(0, len(view), page_size)],
        dtype=np.uint32,
    )


def crc32c_rows(rows: list[bytes]) -> list[int]:
    """CRC-32C of each row."""
    return [crc32c_package.crc32c(row) for row in rows]
