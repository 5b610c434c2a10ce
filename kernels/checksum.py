"""CRC-32C (Castagnoli) checksums: of a buffer, of every page of a buffer, and
LevelDB's masking of CRCs that are stored inside checksummed data.

Two implementations of one function:

- ``hardware``: the SSE4.2 CRC32 instruction, 8 bytes at a time, over three
  independent streams interleaved to hide the instruction's 3-cycle latency; the
  three partial CRCs are combined with table-driven "shift by N zero bytes" operators.
- ``software``: slicing-by-8 tables, for CPUs without the instruction (and for
  ``NUMBA_DISABLE_JIT=1``, where intrinsics cannot run).

``implementation=None`` picks the fastest available one; the environment variable
``COLIBRI_MM_CRC32C`` (``auto``, ``hardware``, ``software``) forces a choice.
Results are identical to ``crc32c.crc32c(data, value)`` of the ``crc32c`` package.

CRC registers inside kernels are the raw, not inverted, 32-bit register; the public
functions take and return finalised CRCs (pre- and post-inverted), like zlib.
"""

import os
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from .buffers import ByteArray, as_uint8
from .intrinsics import HAS_SSE42, crc32_u8, crc32_u64, load_u64
from .jit import JIT_DISABLED, kernel

POLYNOMIAL: Final = 0x82F63B78
"""CRC-32C polynomial, bit-reflected."""

MASK_DELTA: Final = 0xA282EAD8
"""LevelDB's constant added to a rotated CRC by :func:`mask`."""

STREAM_BLOCK: Final = 256
"""Bytes each of the three hardware streams covers per round. Measured on this
project's machines (256 MiB buffer): 256 gives 19-20 GB/s; 512 to 4096 fall to
6-12 GB/s (the streams collide in cache sets); 65536 is as fast but leaves more
of a page to the single-stream tail."""

IMPLEMENTATIONS: Final = ("hardware", "software")


def _multiply_mod_p(a: int, b: int) -> int:
    """Product of two reflected polynomials modulo the CRC-32C polynomial."""
    m = 1 << 31
    product = 0
    while m:
        if a & m:
            product ^= b
        m >>= 1
        b = (b >> 1) ^ POLYNOMIAL if b & 1 else b >> 1
    return product


def _x_pow_8n(n: int) -> int:
    """x^(8n) modulo the polynomial: the operator that appends n zero bytes."""
    result = 1 << 31  # x^0
    square = 1 << 23  # x^8
    while n:
        if n & 1:
            result = _multiply_mod_p(square, result)
        square = _multiply_mod_p(square, square)
        n >>= 1
    return result


def _shift_tables(n_bytes: int) -> npt.NDArray[np.uint32]:
    """Tables T[4][256] with T[j][b] = (b << 8j) * x^(8n) mod p.

    Multiplication by a constant is linear over GF(2), so a register is shifted by
    ``n_bytes`` zero bytes as the XOR of four lookups, one per byte.
    """
    operator = _x_pow_8n(n_bytes)
    basis = np.array([_multiply_mod_p(1 << bit, operator) for bit in range(32)], np.uint32)
    byte_values = np.arange(256, dtype=np.uint32)
    bits = ((byte_values[:, None] >> np.arange(8, dtype=np.uint32)) & 1).astype(bool)
    tables = np.empty((4, 256), np.uint32)
    for j in range(4):
        terms = np.where(bits, basis[8 * j : 8 * j + 8], np.uint32(0))
        tables[j] = np.bitwise_xor.reduce(terms, axis=1)
    return tables


def slicing_tables(polynomial: int) -> npt.NDArray[np.uint32]:
    """The eight 256-entry tables of the slicing-by-8 software kernel for a reflected
    ``polynomial`` (this module's, or another CRC-32's)."""
    tables = np.empty((8, 256), np.uint32)
    crc = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        crc = np.where(crc & 1, (crc >> 1) ^ np.uint32(polynomial), crc >> 1).astype(np.uint32)
    tables[0] = crc
    for k in range(1, 8):
        tables[k] = (tables[k - 1] >> 8) ^ tables[0][tables[k - 1] & 0xFF]
    return tables


_SLICING = slicing_tables(POLYNOMIAL)
_SHIFT_BLOCK = _shift_tables(STREAM_BLOCK)


@kernel
def _shift(register: np.uint64, tables: npt.NDArray[np.uint32]) -> np.uint64:
    r = np.uint32(register)
    return np.uint64(
        tables[0, r & np.uint32(0xFF)]
        ^ tables[1, (r >> np.uint32(8)) & np.uint32(0xFF)]
        ^ tables[2, (r >> np.uint32(16)) & np.uint32(0xFF)]
        ^ tables[3, r >> np.uint32(24)]
    )


@kernel
def _register_hardware(register: np.uint64, data: ByteArray, start: np.uint64,
                       end: np.uint64) -> np.uint64:
    """Raw register after feeding ``data[start:end]`` with the CRC32 instruction."""
    c0 = np.uint64(register)
    i = np.uint64(start)
    end = np.uint64(end)
    eight = np.uint64(8)
    block = np.uint64(STREAM_BLOCK)
    two_blocks = block + block
    while end - i >= two_blocks + block:
        c1 = np.uint64(0)
        c2 = np.uint64(0)
        stop = i + block
        while i < stop:
            c0 = crc32_u64(c0, load_u64(data, i))
            c1 = crc32_u64(c1, load_u64(data, i + block))
            c2 = crc32_u64(c2, load_u64(data, i + two_blocks))
            i += eight
        c0 = _shift(c0, _SHIFT_BLOCK) ^ c1
        c0 = _shift(c0, _SHIFT_BLOCK) ^ c2
        i += two_blocks
    while end - i >= eight:
        c0 = crc32_u64(c0, load_u64(data, i))
        i += eight
    c = np.uint32(c0)
    while i < end:
        c = crc32_u8(c, data[i])
        i += np.uint64(1)
    return np.uint64(c)


@kernel
def register_sliced(register: np.uint64, data: ByteArray, start: np.uint64, end: np.uint64,
                    t: npt.NDArray[np.uint32]) -> np.uint64:
    """Raw register after feeding ``data[start:end]`` through the slicing-by-8 tables
    ``t`` (:func:`slicing_tables`): any reflected CRC-32."""
    c = np.uint32(register)
    i = np.uint64(start)
    end = np.uint64(end)
    ff = np.uint32(0xFF)
    while end - i >= np.uint64(8):
        low = c ^ (np.uint32(data[i]) | (np.uint32(data[i + np.uint64(1)]) << np.uint32(8))
                   | (np.uint32(data[i + np.uint64(2)]) << np.uint32(16))
                   | (np.uint32(data[i + np.uint64(3)]) << np.uint32(24)))
        c = (t[7, low & ff] ^ t[6, (low >> np.uint32(8)) & ff]
             ^ t[5, (low >> np.uint32(16)) & ff] ^ t[4, low >> np.uint32(24)]
             ^ t[3, data[i + np.uint64(4)]] ^ t[2, data[i + np.uint64(5)]]
             ^ t[1, data[i + np.uint64(6)]] ^ t[0, data[i + np.uint64(7)]])
        i += np.uint64(8)
    while i < end:
        c = t[0, (c ^ np.uint32(data[i])) & ff] ^ (c >> np.uint32(8))
        i += np.uint64(1)
    return np.uint64(c)


@kernel
def update(crc: np.uint32, data: ByteArray, start: np.uint64, end: np.uint64,
           hardware: bool) -> np.uint32:
    """CRC-32C of ``data[start:end]`` continuing from the finalised ``crc``.

    For other kernels: ``update(crc32c(a), b, 0, len(b), hw) == crc32c(a + b)``.
    """
    register = np.uint64(np.uint32(crc) ^ np.uint32(0xFFFFFFFF))
    if hardware:
        register = _register_hardware(register, data, np.uint64(start), np.uint64(end))
    else:
        register = register_sliced(register, data, np.uint64(start), np.uint64(end),
                                   _SLICING)
    return np.uint32(register) ^ np.uint32(0xFFFFFFFF)


@kernel
def _pages(data: ByteArray, page_size: np.uint64, out: npt.NDArray[np.uint32],
           hardware: bool) -> None:
    for page in range(out.size):
        start = np.uint64(page) * np.uint64(page_size)
        out[page] = update(np.uint32(0), data, start, start + np.uint64(page_size), hardware)


def _use_hardware(implementation: str | None) -> bool:
    choice = implementation or os.environ.get("COLIBRI_MM_CRC32C", "auto") or "auto"
    if choice == "auto":
        return HAS_SSE42 and not JIT_DISABLED
    if choice == "software":
        return False
    if choice == "hardware":
        if not HAS_SSE42:
            raise ValueError("CRC-32C implementation 'hardware' needs a CPU with SSE4.2")
        if JIT_DISABLED:
            raise ValueError("CRC-32C implementation 'hardware' needs the Numba JIT "
                             "(NUMBA_DISABLE_JIT is set)")
        return True
    raise ValueError(
        f"unknown CRC-32C implementation {choice!r}; expected 'auto', 'hardware' or 'software'"
    )


def default_implementation() -> str:
    """Name of the implementation used when none is asked for."""
    return "hardware" if _use_hardware(None) else "software"


def crc32c(data: Any, value: int = 0, *, implementation: str | None = None) -> int:
    """CRC-32C of ``data``, continuing from the CRC ``value``.

    Same results as ``crc32c.crc32c(data, value)`` of the ``crc32c`` package: ``data``
    is any C-contiguous object exposing the buffer protocol; ``value`` is reduced
    modulo 2**32. ``implementation`` is ``"hardware"``, ``"software"`` or None (auto).
    """
    if not isinstance(value, int | np.integer):
        raise TypeError(f"'{type(value).__name__}' object cannot be interpreted as an integer")
    array = as_uint8(data)
    hardware = _use_hardware(implementation)
    result = update(np.uint32(int(value) & 0xFFFFFFFF), array, np.uint64(0),
                    np.uint64(array.size), hardware)
    return int(result)


def crc32c_pages(buf: Any, page_size: int, *,
                 implementation: str | None = None) -> npt.NDArray[np.uint32]:
    """CRC-32C of every ``page_size``-byte page of ``buf``, in one kernel call.

    ``len(buf)`` must be a multiple of ``page_size``. Returns one uint32 per page.
    """
    array, out = page_arrays(buf, page_size)
    _pages(array, np.uint64(page_size), out, _use_hardware(implementation))
    return out


def page_arrays(buf: Any, page_size: int) -> tuple[ByteArray, npt.NDArray[np.uint32]]:
    """Checked arguments of a per-page checksum: ``buf`` as bytes, and the output
    array (one uint32 per page)."""
    if isinstance(page_size, bool) or not isinstance(page_size, int | np.integer):
        raise TypeError(f"page_size must be an int, not {type(page_size).__name__}")
    if page_size <= 0:
        raise ValueError(f"page_size must be positive, got {page_size}")
    array = as_uint8(buf)
    if array.size % page_size:
        raise ValueError(
            f"buffer of {array.size} bytes is not a whole number of {page_size}-byte pages"
        )
    return array, np.empty(array.size // page_size, dtype=np.uint32)


@kernel
def _rows(offsets: Any, data: ByteArray, out: npt.NDArray[np.uint32], hardware: bool) -> None:
    for i in range(out.size):
        out[i] = update(np.uint32(0), data, np.uint64(offsets[i]), np.uint64(offsets[i + 1]),
                        hardware)


def crc32c_rows(offsets: Any, data: Any, *,
                implementation: str | None = None) -> npt.NDArray[np.uint32]:
    """CRC-32C of every row ``data[offsets[i]:offsets[i+1]]`` (Arrow-style variable
    length rows), in one kernel call. Returns one uint32 per row."""
    o = np.ascontiguousarray(offsets, np.int64)
    array = as_uint8(data)
    if o.ndim != 1 or o.size < 1 or o[0] < 0 or o[-1] > array.size or np.any(np.diff(o) < 0):
        raise ValueError("offsets must be n+1 non-decreasing positions within the data")
    out = np.empty(o.size - 1, dtype=np.uint32)
    _rows(o, array, out, _use_hardware(implementation))
    return out


def crc32c_combine(crc1: int, crc2: int, length2: int) -> int:
    """CRC of ``a + b`` from ``crc1 = crc32c(a)``, ``crc2 = crc32c(b)`` and ``len(b)``."""
    if length2 < 0:
        raise ValueError(f"length2 must be >= 0, got {length2}")
    return _multiply_mod_p(_x_pow_8n(length2), crc1 & 0xFFFFFFFF) ^ (crc2 & 0xFFFFFFFF)


def mask(crc: Any) -> Any:
    """LevelDB's mask of a CRC stored inside data that is itself checksummed.

    Rotates right by 15 bits and adds a constant, so the CRC of a string that
    contains its own CRC is not trivially related to it. Works on ints and on uint32
    numpy arrays (elementwise).
    """
    if isinstance(crc, np.ndarray):
        crcs = crc.astype(np.uint32)
        return ((crcs >> np.uint32(15)) | (crcs << np.uint32(17))) + np.uint32(MASK_DELTA)
    value = int(crc) & 0xFFFFFFFF
    return (((value >> 15) | (value << 17)) + MASK_DELTA) & 0xFFFFFFFF


def unmask(masked: Any) -> Any:
    """Inverse of :func:`mask`."""
    if isinstance(masked, np.ndarray):
        rotated = masked.astype(np.uint32) - np.uint32(MASK_DELTA)
        return (rotated >> np.uint32(17)) | (rotated << np.uint32(15))
    value = (int(masked) - MASK_DELTA) & 0xFFFFFFFF
    return ((value >> 17) | (value << 15)) & 0xFFFFFFFF
