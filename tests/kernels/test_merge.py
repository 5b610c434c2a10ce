"""Run merging kernel against the dict reference."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from colibri_mm.kernels import merge, merge_reference
from colibri_mm.kernels.search import pack_varlen

DELETE = 2


def entries(items: list[tuple[bytes, int, bytes]]) -> merge.Entries:
    key_offsets, key_data = pack_varlen([k for k, _, _ in items])
    value_offsets, value_data = pack_varlen([v for _, _, v in items])
    return merge.Entries(np.array([kind for _, kind, _ in items], np.uint8), key_offsets,
                         key_data, value_offsets, value_data)


def as_items(e: merge.Entries) -> list[tuple[bytes, int, bytes]]:
    return [(e.key_data[e.key_offsets[i]:e.key_offsets[i + 1]].tobytes(), int(e.kinds[i]),
             e.value_data[e.value_offsets[i]:e.value_offsets[i + 1]].tobytes())
            for i in range(e.kinds.size)]


RUN = st.dictionaries(st.binary(max_size=6),
                      st.tuples(st.sampled_from([1, DELETE]), st.binary(max_size=8)),
                      max_size=60).map(lambda d: sorted((k, kind, v) for k, (kind, v) in d.items()))


@given(newer=RUN, older=RUN, drop=st.booleans())
def test_merge_matches_reference(newer: list[tuple[bytes, int, bytes]],
                                 older: list[tuple[bytes, int, bytes]], drop: bool) -> None:
    got = merge.merge(entries(newer), entries(older), delete_kind=DELETE, drop_deletes=drop)
    assert as_items(got) == merge_reference.merge(newer, older, delete_kind=DELETE,
                                                  drop_deletes=drop)


def test_merge_large_runs() -> None:
    rng = np.random.default_rng(4)
    keys = sorted({rng.bytes(int(rng.integers(1, 12))) for _ in range(20000)})
    newer = [(k, 1, b"new") for k in keys[::3]]
    older = [(k, DELETE if i % 7 == 0 else 1, b"old" * (i % 4)) for i, k in enumerate(keys)]
    got = merge.merge(entries(newer), entries(older), delete_kind=DELETE, drop_deletes=True)
    assert as_items(got) == merge_reference.merge(newer, older, delete_kind=DELETE,
                                                  drop_deletes=True)


def test_merge_few_changes_into_a_large_run() -> None:
    """Long blocks of consecutive entries from one side (copied as one span each),
    with deletes dropped inside them."""
    rng = np.random.default_rng(5)
    keys = sorted({rng.bytes(int(rng.integers(1, 12))) for _ in range(20000)})
    older = [(k, DELETE if i % 997 == 0 else 1, bytes([i % 251]) * (i % 5))
             for i, k in enumerate(keys)]
    newer = [(keys[i], 1, b"changed") for i in (0, 5, 6, 7, 4000, len(keys) - 1)]
    newer += [(b"\xff" * 13, 1, b"after all"), (b"", DELETE, b"")]
    newer.sort()
    for drop in (False, True):
        got = merge.merge(entries(newer), entries(older), delete_kind=DELETE,
                          drop_deletes=drop)
        assert as_items(got) == merge_reference.merge(newer, older, delete_kind=DELETE,
                                                      drop_deletes=drop)
