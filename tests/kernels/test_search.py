"""Page-search kernels against np.searchsorted and bisect over bytes."""

import mmap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from colibri_mm.kernels import search, search_reference

from kernel_inputs import JIT_DISABLED

NUMERIC_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
                  np.uint64, np.float32, np.float64]
SIDES = ["left", "right"]


@pytest.mark.parametrize("dtype", NUMERIC_DTYPES)
@pytest.mark.parametrize("side", SIDES)
def test_numeric_against_searchsorted(dtype: type, side: str) -> None:
    rng = np.random.default_rng(7)
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    for size in (0, 1, 2, 7, 8, 9, 63, 64, 65, 4096, 4097):
        if info is not None:
            hay = np.sort(rng.integers(info.min, info.max, size, dtype=dtype, endpoint=True))
            keys = np.concatenate([
                rng.integers(info.min, info.max, 37, dtype=dtype, endpoint=True),
                hay[::3], np.array([info.min, info.max], dtype=dtype)])
        else:
            hay = np.sort(rng.normal(size=size).astype(dtype))
            keys = np.concatenate([rng.normal(size=37).astype(dtype), hay[::3],
                                   np.array([-np.inf, np.inf], dtype=dtype)])
        got = search.search_many(hay, keys, side)  # type: ignore[arg-type]
        assert got.tolist() == search_reference.search_many(hay, keys, side), size
        assert got.dtype == np.int64


def check_against_numpy(hay: np.ndarray, keys: np.ndarray) -> None:
    hay = np.sort(hay)
    for side in SIDES:
        assert search.search_many(hay, keys, side).tolist() == \
            search_reference.search_many(hay, keys, side)  # type: ignore[arg-type]
    assert search.lookup_many(hay, keys).tolist() == search_reference.lookup_many(hay, keys)


@given(hay=hnp.arrays(np.int64, st.integers(0, 300), elements=st.integers(-50, 50)),
       keys=hnp.arrays(np.int64, st.integers(0, 40), elements=st.integers(-60, 60)))
def test_numeric_property(hay: np.ndarray, keys: np.ndarray) -> None:
    check_against_numpy(hay, keys)


FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64)


@given(hay=hnp.arrays(np.float64, st.integers(0, 200), elements=FLOATS),
       keys=hnp.arrays(np.float64, st.integers(0, 30), elements=FLOATS))
def test_float_with_nan_follows_numpy_order(hay: np.ndarray, keys: np.ndarray) -> None:
    check_against_numpy(hay, keys)


def test_large_batch() -> None:
    rng = np.random.default_rng(3)
    n = 20_000 if JIT_DISABLED else 1_000_000
    hay = np.sort(rng.integers(0, 1 << 40, n))
    keys = rng.integers(0, 1 << 40, n // 10 + 5)
    keys[:100] = hay[:100]
    for side in SIDES:
        assert np.array_equal(search.search_many(hay, keys, side),
                              np.searchsorted(hay, keys, side))  # type: ignore[call-overload]


def test_single_key_and_lookup() -> None:
    hay = np.array([1, 3, 3, 3, 9], np.int32)
    assert search.search(hay, 3) == 1
    assert search.search(hay, 3, "right") == 4
    assert search.search(hay, 0) == 0
    assert search.search(hay, 10) == 5
    assert search.lookup_many(hay, [3, 4, 9, 1, 0, 10]).tolist() == [1, -1, 4, 0, -1, -1]


def test_datetimes_and_unaligned_views() -> None:
    hay = np.array(["2020-01-01", "2021-06-01", "2024-02-29"], dtype="datetime64[D]")
    keys = np.array(["2021-06-01", "2030-01-01"], dtype="datetime64[D]")
    assert search.search_many(hay, keys).tolist() == [1, 3]
    raw = np.zeros(8 * 100 + 3, np.uint8)
    view = raw[3:].view(np.int64)
    view[:] = np.arange(100) * 2
    assert not view.flags.aligned
    assert search.search_many(view, [5, 6], "right").tolist() == [3, 4]


def test_key_type_errors() -> None:
    hay = np.arange(10, dtype=np.int32)
    with pytest.raises(ValueError, match="do not fit the page's key type int32"):
        search.search_many(hay, [2**40])
    with pytest.raises(TypeError, match="cannot be searched"):
        search.search_many(hay, np.array(["a"]))
    with pytest.raises(ValueError, match="side must be"):
        search.search_many(hay, [1], "middle")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="1-D"):
        search.search_many(hay, [[1, 2]])
    with pytest.raises(TypeError, match="1-D numeric"):
        search.search_many(np.array(["x"], dtype=object), [1])
    assert search.search_many(hay, np.array([2.0, 3.0])).tolist() == [2, 3]


def fixed_rows(values: list[bytes], width: int) -> np.ndarray:
    return np.frombuffer(b"".join(values), np.uint8).reshape(len(values), width)


@given(width=st.integers(1, 20), data=st.data())
def test_fixed_size_binary(width: int, data: st.DataObject) -> None:
    value = st.binary(min_size=width, max_size=width)
    hay_values = sorted(data.draw(st.lists(value, max_size=100)))
    keys = data.draw(st.lists(st.one_of(value, st.sampled_from(hay_values or [bytes(width)])),
                              max_size=30))
    hay = fixed_rows(hay_values, width)
    probes = fixed_rows(keys, width)
    for side in SIDES:
        assert search.search_many(hay, probes, side).tolist() == \
            search_reference.search_many_bytes(hay_values, keys, side)  # type: ignore[arg-type]
    assert search.lookup_many(hay, probes).tolist() == \
        search_reference.lookup_many_bytes(hay_values, keys)


def test_fixed_size_binary_as_bytes_dtype() -> None:
    values = sorted([b"\x00\x00\x01", b"\x00\x01\x00", b"\xff\x00\x00"])
    hay = np.array(values, dtype="S3")
    assert search.search(hay, b"\x00\x01\x00") == 1
    assert search.search(hay, b"\x00\x01\x00", "right") == 2
    assert search.lookup_many(hay, np.array([b"\xff\x00\x00", b"\x01\x00\x00"],
                                            dtype="S3")).tolist() == [2, -1]
    with pytest.raises(ValueError, match="4 bytes wide"):
        search.search_many(hay, np.zeros((1, 4), np.uint8))


@given(hay_values=st.lists(st.binary(max_size=12), max_size=120),
       keys=st.lists(st.binary(max_size=12), max_size=40))
def test_varlen_property(hay_values: list[bytes], keys: list[bytes]) -> None:
    hay_values = sorted(hay_values)
    keys = keys + hay_values[::7]
    offsets, data = search.pack_varlen(hay_values)
    key_offsets, key_data = search.pack_varlen(keys)
    for side in SIDES:
        assert search.search_many_varlen(offsets, data, key_offsets, key_data, side).tolist() \
            == search_reference.search_many_bytes(hay_values, keys, side)  # type: ignore[arg-type]
    assert search.lookup_many_varlen(offsets, data, key_offsets, key_data).tolist() == \
        search_reference.lookup_many_bytes(hay_values, keys)


@given(hay_values=st.lists(st.binary(max_size=6), max_size=200),
       keys=st.lists(st.binary(max_size=6), max_size=60), seed=st.integers(0, 2**32 - 1),
       shuffled=st.floats(0, 1))
def test_varlen_search_in_a_given_order(hay_values: list[bytes], keys: list[bytes],
                                        seed: int, shuffled: float) -> None:
    """Probes visited in an order (sorted, partly sorted or any) give the answers of
    the plain search: the galloping search restarts where the order goes back."""
    hay_values = sorted(hay_values)
    keys = keys + hay_values[::5]
    order = sorted(range(len(keys)), key=lambda i: keys[i])
    rng = np.random.default_rng(seed)
    swaps = int(shuffled * len(order))
    for a, b in rng.integers(0, max(len(order), 1), (swaps, 2)).tolist():
        order[a], order[b] = order[b], order[a]
    offsets, data = search.pack_varlen(hay_values)
    key_offsets, key_data = search.pack_varlen(keys)
    for side in SIDES:
        assert search.search_many_varlen(offsets, data, key_offsets, key_data, side,
                                         order).tolist() == \
            search_reference.search_many_bytes(hay_values, keys, side)  # type: ignore[arg-type]
    assert search.lookup_many_varlen(offsets, data, key_offsets, key_data, order).tolist() \
        == search_reference.lookup_many_bytes(hay_values, keys)


def test_varlen_search_order_must_be_a_permutation() -> None:
    offsets, data = search.pack_varlen([b"a", b"b"])
    key_offsets, key_data = search.pack_varlen([b"a", b"b", b"c"])
    for order in ([0, 1], [0, 1, 1], [0, 1, 3], [-1, 0, 1]):
        with pytest.raises(ValueError, match="permutation"):
            search.search_many_varlen(offsets, data, key_offsets, key_data, "left", order)


def test_varlen_prefix_order_and_int32_offsets() -> None:
    hay_values = [b"", b"a", b"ab", b"abc", b"b", b"\xff"]
    offsets, data = search.pack_varlen(hay_values)
    offsets32 = offsets.astype(np.int32)
    for key, left, right in [(b"", 0, 1), (b"ab", 2, 3), (b"abb", 3, 3), (b"zz", 5, 5),
                             (b"\xff\x00", 6, 6)]:
        assert search.search_varlen(offsets32, data, key) == left, key
        assert search.search_varlen(offsets32, data, key, "right") == right, key


def test_varlen_rejects_bad_layout() -> None:
    offsets, data = search.pack_varlen([b"a", b"b"])
    with pytest.raises(ValueError, match="non-decreasing"):
        search.search_varlen(np.array([0, 2, 1]), data, b"a")
    with pytest.raises(ValueError, match="within the data"):
        search.search_varlen(np.array([0, 1, 5]), data, b"a")
    with pytest.raises(TypeError, match="int32 or int64"):
        search.search_varlen(offsets.astype(np.float64), data, b"a")
    with pytest.raises(TypeError, match="uint8"):
        search.search_varlen(offsets, data.astype(np.int16), b"a")


def test_read_only_page_views(tmp_path: Path) -> None:
    keys = np.arange(0, 2000, 2, dtype=np.int64)
    path = tmp_path / "page"
    path.write_bytes(keys.tobytes())
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        page = np.frombuffer(m, np.int64)
        assert not page.flags.writeable
        assert search.search_many(page, [3, 4, 5000]).tolist() == [2, 2, 1000]
        assert search.lookup_many(page, [4, 5]).tolist() == [2, -1]
        del page


@given(hay_values=st.lists(st.binary(max_size=10), max_size=80),
       keys=st.lists(st.binary(max_size=10), max_size=20))
def test_sorted_byte_keys_match_bisect(hay_values: list[bytes], keys: list[bytes]) -> None:
    hay_values = sorted(set(hay_values))
    index = search.SortedByteKeys(*search.pack_varlen(hay_values))
    assert len(index) == len(hay_values)
    keys = keys + hay_values[::5]
    for side in SIDES:
        assert [index.search(k, side) for k in keys] == \
            search_reference.search_many_bytes(hay_values, keys, side)  # type: ignore[arg-type]
    assert [index.find(k) for k in keys] == search_reference.lookup_many_bytes(hay_values, keys)
    assert [index.key(i) for i in range(len(index))] == hay_values


def test_sorted_byte_keys_refuse_offsets_outside_the_data() -> None:
    with pytest.raises(ValueError, match="within the data"):
        search.SortedByteKeys(np.array([0, 2, 50]), np.zeros(4, np.uint8))
