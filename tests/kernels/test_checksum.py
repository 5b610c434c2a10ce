"""CRC-32C kernels against the crc32c package and a bitwise reference."""

import mmap
from pathlib import Path

import crc32c as crc32c_package
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from colibri_mm.kernels import checksum, checksum_reference
from colibri_mm.kernels.intrinsics import HAS_SSE42
from colibri_mm.kernels.jit import JIT_DISABLED

from kernel_inputs import EDGE_LENGTHS, HUGE

IMPLEMENTATIONS = ["software"]
if HAS_SSE42 and not JIT_DISABLED:
    IMPLEMENTATIONS.append("hardware")


@pytest.fixture(params=IMPLEMENTATIONS)
def implementation(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def random_bytes(n: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def test_check_value_of_the_standard() -> None:
    # CRC-32C check value from the RFC 3720 / Castagnoli catalogue.
    for impl in IMPLEMENTATIONS:
        assert checksum.crc32c(b"123456789", implementation=impl) == 0xE3069283
    assert checksum_reference.crc32c_bitwise(b"123456789") == 0xE3069283


def test_package_agrees_with_bitwise_definition() -> None:
    for n in (0, 1, 5, 64, 300):
        data = random_bytes(n, n)
        assert checksum_reference.crc32c(data, 77) == checksum_reference.crc32c_bitwise(data, 77)


@pytest.mark.parametrize("length", EDGE_LENGTHS)
def test_edge_lengths(implementation: str, length: int) -> None:
    data = random_bytes(length, length)
    for value in (0, 1, 0xFFFFFFFF, 0x12345678):
        assert checksum.crc32c(data, value, implementation=implementation) == \
            checksum_reference.crc32c(data, value)


@pytest.mark.parametrize("offset", range(9))
def test_unaligned_offsets(implementation: str, offset: int) -> None:
    base = np.frombuffer(random_bytes(5000 + offset, offset), np.uint8)
    view = base[offset:]
    assert checksum.crc32c(view, implementation=implementation) == \
        checksum_reference.crc32c(view.tobytes())


def test_huge_buffer(implementation: str) -> None:
    data = np.random.default_rng(1).integers(0, 256, HUGE, dtype=np.uint8)
    assert checksum.crc32c(data, implementation=implementation) == \
        checksum_reference.crc32c(data)


@given(data=st.binary(max_size=20000), value=st.integers(0, 2**32 - 1),
       split=st.integers(0, 20000))
def test_random_inputs_and_chaining(data: bytes, value: int, split: int) -> None:
    expected = checksum_reference.crc32c(data, value)
    split = min(split, len(data))
    for impl in IMPLEMENTATIONS:
        assert checksum.crc32c(data, value, implementation=impl) == expected
        first = checksum.crc32c(data[:split], value, implementation=impl)
        assert checksum.crc32c(data[split:], first, implementation=impl) == expected


def test_buffer_protocol_objects(tmp_path: Path) -> None:
    data = random_bytes(10000, 3)
    expected = checksum_reference.crc32c(data)
    assert checksum.crc32c(data) == expected
    assert checksum.crc32c(bytearray(data)) == expected
    assert checksum.crc32c(memoryview(data)) == expected
    assert checksum.crc32c(memoryview(data)[100:200]) == checksum_reference.crc32c(data[100:200])
    as_float = np.frombuffer(data[:8000], np.float64).reshape(100, 10)
    assert checksum.crc32c(as_float) == checksum_reference.crc32c(data[:8000])
    path = tmp_path / "file"
    path.write_bytes(data)
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        assert checksum.crc32c(m) == expected
        assert checksum.crc32c(memoryview(m)[1:4097]) == checksum_reference.crc32c(data[1:4097])
        page = np.frombuffer(m, np.uint8)[4096:8192]
        assert not page.flags.writeable
        assert checksum.crc32c(page) == checksum_reference.crc32c(data[4096:8192])
        del page


def test_value_semantics_match_the_package() -> None:
    for value in (-1, 2**32, 2**32 + 5, 2**64, -(2**40)):
        assert checksum.crc32c(b"abc", value) == crc32c_package.crc32c(b"abc", value)
    assert checksum.crc32c(b"abc", np.uint32(7)) == crc32c_package.crc32c(b"abc", 7)


@pytest.mark.parametrize("bad", ["text", 3, 1.5, None, [1, 2]])
def test_rejects_non_buffers(bad: object) -> None:
    with pytest.raises(TypeError):
        checksum.crc32c(bad)


def test_rejects_non_contiguous_and_bad_value() -> None:
    with pytest.raises(ValueError, match="not C-contiguous"):
        checksum.crc32c(np.arange(10)[::2])
    with pytest.raises(TypeError, match="float"):
        checksum.crc32c(b"x", 1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        checksum.crc32c(np.array([object()]))


def test_implementation_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="unknown CRC-32C implementation 'fast'"):
        checksum.crc32c(b"x", implementation="fast")
    monkeypatch.setenv("COLIBRI_MM_CRC32C", "software")
    assert checksum.default_implementation() == "software"
    monkeypatch.setenv("COLIBRI_MM_CRC32C", "bogus")
    with pytest.raises(ValueError, match="bogus"):
        checksum.crc32c(b"x")
    monkeypatch.setenv("COLIBRI_MM_CRC32C", "auto")
    expected = "hardware" if HAS_SSE42 and not JIT_DISABLED else "software"
    assert checksum.default_implementation() == expected


@pytest.mark.skipif(HAS_SSE42 and not JIT_DISABLED, reason="hardware CRC is available")
def test_hardware_refused_where_unavailable() -> None:
    with pytest.raises(ValueError, match="hardware"):
        checksum.crc32c(b"x", implementation="hardware")


@pytest.mark.parametrize("page_size", [1, 8, 4096, 8192, 65536])
def test_pages(implementation: str, page_size: int) -> None:
    pages = 7 if page_size > 8 else 300
    buf = np.frombuffer(random_bytes(page_size * pages, page_size), np.uint8)
    got = checksum.crc32c_pages(buf, page_size, implementation=implementation)
    assert got.dtype == np.uint32
    assert got.tolist() == checksum_reference.crc32c_pages(buf, page_size).tolist()


def test_pages_of_empty_and_unaligned_buffers(implementation: str) -> None:
    assert checksum.crc32c_pages(b"", 4096, implementation=implementation).size == 0
    base = np.frombuffer(random_bytes(3 * 8192 + 5, 5), np.uint8)[5:]
    assert checksum.crc32c_pages(base, 8192, implementation=implementation).tolist() == \
        checksum_reference.crc32c_pages(base, 8192).tolist()


def test_pages_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="not a whole number of 4096-byte pages"):
        checksum.crc32c_pages(bytes(5000), 4096)
    with pytest.raises(ValueError, match="positive"):
        checksum.crc32c_pages(bytes(10), 0)
    with pytest.raises(TypeError, match="page_size"):
        checksum.crc32c_pages(bytes(10), 2.5)  # type: ignore[arg-type]


@given(a=st.binary(max_size=3000), b=st.binary(max_size=3000))
def test_combine(a: bytes, b: bytes) -> None:
    combined = checksum.crc32c_combine(checksum.crc32c(a), checksum.crc32c(b), len(b))
    assert combined == checksum_reference.crc32c(a + b)


def test_combine_rejects_negative_length() -> None:
    with pytest.raises(ValueError, match="length2"):
        checksum.crc32c_combine(0, 0, -1)


@given(st.integers(0, 2**32 - 1))
def test_mask_roundtrip(crc: int) -> None:
    masked = checksum.mask(crc)
    assert checksum.unmask(masked) == crc
    array = np.array([crc, crc ^ 0xFFFF], np.uint32)
    assert checksum.mask(array).tolist() == [masked, checksum.mask(crc ^ 0xFFFF)]
    assert checksum.unmask(checksum.mask(array)).tolist() == array.tolist()


def test_mask_known_value() -> None:
    # LevelDB: Mask(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8 (mod 2**32).
    assert checksum.mask(0) == 0xA282EAD8
    assert checksum.mask(1) == (1 << 17) + 0xA282EAD8
    assert checksum.mask(checksum.crc32c(b"foo")) != checksum.crc32c(b"foo")


@given(rows=st.lists(st.binary(max_size=300), max_size=30))
def test_crc32c_rows_matches_reference(rows: list[bytes]) -> None:
    from colibri_mm.kernels.search import pack_varlen

    offsets, data = pack_varlen(rows)
    for implementation in ("hardware", "software") if HAS_SSE42 and not JIT_DISABLED \
            else ("software",):
        got = checksum.crc32c_rows(offsets, data, implementation=implementation)
        assert got.tolist() == checksum_reference.crc32c_rows(rows)
    with pytest.raises(ValueError, match="non-decreasing"):
        checksum.crc32c_rows(np.array([0, 5]), np.zeros(2, np.uint8))
