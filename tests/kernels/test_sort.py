"""Sorting kernel for variable-length keys against Python's stable sort."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from colibri_mm.kernels import sort, sort_reference

from kernel_inputs import JIT_DISABLED, slices_in_buffer


def as_slices(keys: list[bytes], gap: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    buffer, starts, lengths = slices_in_buffer(keys, gap)
    return starts, lengths, buffer


# Few distinct bytes and shared prefixes make ties, prefixes and trailing zeros common.
KEYS = st.lists(st.one_of(st.binary(max_size=20),
                          st.lists(st.sampled_from([0, 1, 255]), max_size=26).map(bytes),
                          st.binary(max_size=4).map(lambda b: b"user:0000000" + b)),
                max_size=120)


@given(keys=KEYS, gap=st.integers(0, 3))
def test_argsort_matches_reference(keys: list[bytes], gap: int) -> None:
    starts, lengths, buffer = as_slices(keys, gap)
    assert sort.argsort_slices(starts, lengths, buffer).tolist() == sort_reference.argsort(keys)


@given(keys=KEYS)
def test_sorted_distinct_keeps_the_last_write(keys: list[bytes]) -> None:
    starts, lengths, buffer = as_slices(keys, 1)
    got = sort.sorted_distinct(starts, lengths, buffer).tolist()
    assert got == sort_reference.sorted_distinct(keys)


def test_gather_copies_chosen_slices_in_order() -> None:
    keys = [b"bb", b"", b"a", b"ccc"]
    starts, lengths, buffer = as_slices(keys, 2)
    offsets, data = sort.gather_slices(starts, lengths, buffer, np.array([3, 0, 1, 0]))
    assert offsets.tolist() == [0, 3, 5, 5, 7]
    assert data.tobytes() == b"cccbbbb"
    offsets, data = sort.gather_slices(starts, lengths, buffer, np.array([2, 1]), b"\x00")
    assert offsets.tolist() == [0, 2, 3]
    assert data.tobytes() == b"\x00a\x00"


@pytest.mark.parametrize("shape", ["random", "shared prefix", "duplicates", "trailing zeros"])
def test_large_inputs(shape: str) -> None:
    rng = np.random.default_rng(7)
    n = 3_000 if JIT_DISABLED else 200_000
    if shape == "random":
        keys = [rng.bytes(int(rng.integers(0, 24))) for _ in range(n)]
    elif shape == "shared prefix":
        keys = [b"user:%012d" % int(v) for v in rng.integers(0, n // 2, n)]
    elif shape == "duplicates":
        keys = [bytes([int(v)]) * 9 for v in rng.integers(0, 4, n)]
    else:
        keys = [b"k" + b"\x00" * int(v) for v in rng.integers(0, 20, n)]
    starts, lengths, buffer = as_slices(keys)
    assert sort.argsort_slices(starts, lengths, buffer).tolist() == sort_reference.argsort(keys)
    assert sort.sorted_distinct(starts, lengths, buffer).tolist() == \
        sort_reference.sorted_distinct(keys)


def test_bad_slices_are_refused() -> None:
    starts, lengths, buffer = as_slices([b"abc"])
    with pytest.raises(ValueError, match="within the buffer"):
        sort.argsort_slices(starts, lengths + 1, buffer)
    with pytest.raises(ValueError, match="same size"):
        sort.argsort_slices(starts, np.array([1, 2]), buffer)
    with pytest.raises(IndexError, match="out of range"):
        sort.gather_slices(starts, lengths, buffer, np.array([1]))


def test_empty() -> None:
    empty = np.empty(0, np.int64)
    assert sort.sorted_distinct(empty, empty, np.empty(0, np.uint8)).size == 0
    offsets, data = sort.gather_slices(empty, empty, np.empty(0, np.uint8), empty)
    assert offsets.tolist() == [0] and data.size == 0


@given(st.lists(st.integers(0, 2**64 - 1) | st.sampled_from([0, 5, 2**63, 2**64 - 1]),
                max_size=300))
def test_sort_words_matches_reference(words: list[int]) -> None:
    got_values, got_order = sort.sort_words(np.array(words, np.uint64))
    want_values, want_order = sort_reference.sort_words(words)
    assert np.array_equal(got_values, want_values)
    assert np.array_equal(got_order, want_order)  # stable: repeats keep input order


def test_sort_words_large() -> None:
    rng = np.random.default_rng(2)
    words = rng.integers(0, 1 << 40, 200_000, dtype=np.uint64)
    words[::7] = words[3]  # many repeats
    got_values, got_order = sort.sort_words(words)
    want_values, want_order = sort_reference.sort_words(words.tolist())
    assert np.array_equal(got_values, want_values) and np.array_equal(got_order, want_order)
