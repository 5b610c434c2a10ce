"""Key building kernels against their bytes reference, and the order they preserve."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from colibri_mm.kernels import keycodec, keycodec_reference
from colibri_mm.kernels.search import pack_varlen

VALUES = st.lists(st.binary(max_size=12), max_size=40)


def unpack(offsets: np.ndarray, data: np.ndarray) -> list[bytes]:
    return [data[offsets[i]:offsets[i + 1]].tobytes() for i in range(offsets.size - 1)]


@given(VALUES)
def test_escape_matches_reference(values: list[bytes]) -> None:
    got = keycodec.escape_terminated(*pack_varlen(values))
    assert unpack(*got) == keycodec_reference.escape_terminated(values)


@given(st.lists(st.tuples(st.binary(max_size=6), st.binary(max_size=6)), max_size=30))
def test_concat_matches_reference(pairs: list[tuple[bytes, bytes]]) -> None:
    a = [x for x, _ in pairs]
    b = [y for _, y in pairs]
    got = keycodec.concat_rows(pack_varlen(a), pack_varlen(b))
    assert unpack(*got) == keycodec_reference.concat_rows(a, b)


@given(st.lists(st.tuples(st.binary(max_size=4), st.binary(max_size=4)), min_size=2,
                max_size=30))
def test_escaped_first_part_keeps_tuple_order(pairs: list[tuple[bytes, bytes]]) -> None:
    first = keycodec.escape_terminated(*pack_varlen([x for x, _ in pairs]))
    keys = unpack(*keycodec.concat_rows(first, pack_varlen([y for _, y in pairs])))
    by_bytes = sorted(range(len(pairs)), key=lambda i: (keys[i], i))
    by_tuple = sorted(range(len(pairs)), key=lambda i: (pairs[i], i))
    assert by_bytes == by_tuple


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="2 and 1 rows"):
        keycodec.concat_rows(pack_varlen([b"a", b"b"]), pack_varlen([b"c"]))
    with pytest.raises(ValueError, match="non-decreasing"):
        keycodec.escape_terminated(np.array([0, 3]), np.zeros(2, np.uint8))
