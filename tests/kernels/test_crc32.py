"""CRC-32 (zlib's, format 0.9's checksum) kernels against ``zlib.crc32``."""

import zlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from colibri_mm.kernels import crc32, crc32_reference

from kernel_inputs import EDGE_LENGTHS, HUGE


def random_bytes(n: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def test_check_value_of_the_standard() -> None:
    assert crc32.crc32(b"123456789") == 0xCBF43926
    assert crc32_reference.crc32(b"123456789") == 0xCBF43926


@pytest.mark.parametrize("length", EDGE_LENGTHS)
def test_edge_lengths(length: int) -> None:
    data = random_bytes(length, length)
    for value in (0, 1, 0xFFFFFFFF, 0x12345678):
        assert crc32.crc32(data, value) == crc32_reference.crc32(data, value)


@pytest.mark.parametrize("offset", range(9))
def test_unaligned_offsets(offset: int) -> None:
    view = np.frombuffer(random_bytes(5000 + offset, offset), np.uint8)[offset:]
    assert crc32.crc32(view) == zlib.crc32(view.tobytes())


def test_huge_buffer() -> None:
    data = np.random.default_rng(1).integers(0, 256, HUGE, dtype=np.uint8)
    assert crc32.crc32(data) == zlib.crc32(data)


@given(data=st.binary(max_size=20000), value=st.integers(0, 2**32 - 1),
       split=st.integers(0, 20000))
def test_random_inputs_and_chaining(data: bytes, value: int, split: int) -> None:
    expected = crc32_reference.crc32(data, value)
    split = min(split, len(data))
    assert crc32.crc32(data, value) == expected
    assert crc32.crc32(data[split:], crc32.crc32(data[:split], value)) == expected


@pytest.mark.parametrize("page_size", [1, 8, 4096, 65536])
def test_pages(page_size: int) -> None:
    pages = 7 if page_size > 8 else 300
    buf = np.frombuffer(random_bytes(page_size * pages, page_size), np.uint8)
    got = crc32.crc32_pages(buf, page_size)
    assert got.dtype == np.uint32
    assert got.tolist() == crc32_reference.crc32_pages(buf, page_size).tolist()
    assert crc32.crc32_pages(b"", page_size).size == 0


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="not a whole number of 4096-byte pages"):
        crc32.crc32_pages(bytes(5000), 4096)
    with pytest.raises(TypeError, match="float"):
        crc32.crc32(b"x", 1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not C-contiguous"):
        crc32.crc32(np.arange(10)[::2])
