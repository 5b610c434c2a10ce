"""Batched change-record decoding against the struct reference."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from colibri_mm.kernels import changes, changes_reference
from colibri_mm.kv.records import DELETE, PUT, encode_changes

from kernel_inputs import slices_in_buffer

KINDS = (PUT, DELETE)
CHANGE = st.tuples(st.binary(max_size=8), st.one_of(st.none(), st.binary(max_size=12)))
RECORD = st.lists(CHANGE, max_size=40).map(
    lambda cs: encode_changes([k for k, _ in cs], [v for _, v in cs]))
JUNK = st.binary(max_size=30)


def lay_out(records: list[bytes], gap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    buffer, starts, lengths = slices_in_buffer(records, gap)
    return buffer, starts, starts + lengths


def as_tuples(buffer: np.ndarray, got: changes.Changes) -> list[tuple[int, bytes, bytes]]:
    return [(int(got.kinds[i]),
             buffer[got.key_starts[i]:got.key_starts[i] + got.key_lengths[i]].tobytes(),
             buffer[got.value_starts[i]:got.value_starts[i] + got.value_lengths[i]].tobytes())
            for i in range(got.kinds.size)]


@given(records=st.lists(st.one_of(RECORD, RECORD, JUNK), max_size=8), gap=st.integers(0, 2))
def test_decode_matches_reference(records: list[bytes], gap: int) -> None:
    buffer, starts, ends = lay_out(records, gap)
    expected = changes_reference.decode_changes(records, KINDS)
    if isinstance(expected, int):
        with pytest.raises(changes.BadRecordError) as raised:
            changes.decode_changes(buffer, starts, ends, KINDS)
        assert raised.value.record == expected
    else:
        assert as_tuples(buffer, changes.decode_changes(buffer, starts, ends, KINDS)) == expected


@pytest.mark.parametrize(("record", "reason"), [
    (b"\x01\x00", "shorter than its 4-byte count"),
    (b"\x02\x00\x00\x00\x01", "too short for its table"),
    (encode_changes([b"k"], [b"v"]) + b"x", "do not add up"),
    (encode_changes([b"k"], [b"v"]).replace(b"\x01\x00\x00\x00\x01", b"\x01\x00\x00\x00\x07", 1),
     "unknown change kind"),
])
def test_each_reason_is_named(record: bytes, reason: str) -> None:
    good = encode_changes([b"a"], [None])
    buffer, starts, ends = lay_out([good, record], 0)
    with pytest.raises(changes.BadRecordError, match=reason) as raised:
        changes.decode_changes(buffer, starts, ends, KINDS)
    assert raised.value.record == 1


def test_records_outside_the_buffer_are_refused() -> None:
    with pytest.raises(ValueError, match="within the buffer"):
        changes.decode_changes(np.zeros(4, np.uint8), np.array([0]), np.array([5]), KINDS)
