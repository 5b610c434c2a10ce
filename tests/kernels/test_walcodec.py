"""WAL record framing: the kernel against the struct-based reference, torn tails,
corruption and argument checking."""

import mmap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from colibri_mm.kernels import walcodec
from colibri_mm.kernels import walcodec_reference as ref
from colibri_mm.kernels.walcodec import DecodeStatus

from kernel_inputs import JIT_DISABLED

Record = tuple[int, int, bytes]


def pack(records: list[Record]) -> tuple[bytes, np.ndarray, np.ndarray, np.ndarray]:
    payload = b"".join(p for _, _, p in records)
    offsets = np.zeros(len(records) + 1, np.int64)
    np.cumsum([len(p) for _, _, p in records], out=offsets[1:])
    types = np.array([t for t, _, _ in records], np.uint8)
    lsns = np.array([lsn for _, lsn, _ in records], np.uint64)
    return payload, offsets, types, lsns


def encode(records: list[Record], segment: int = 3, position: int = 0,
           block_size: int = 256) -> bytes:
    payload, offsets, types, lsns = pack(records)
    return walcodec.encode(payload, offsets, types, lsns, segment=segment, position=position,
                           block_size=block_size).tobytes()


def decoded_tuples(d: walcodec.DecodedRecords) -> list[tuple[int, int, bytes, int]]:
    return [(int(d.types[i]), int(d.lsns[i]), d.record(i), int(d.starts[i]))
            for i in range(len(d))]


def assert_same_as_reference(buf: bytes, segment: int, position: int, block_size: int) -> None:
    got = walcodec.decode(buf, segment=segment, position=position, block_size=block_size)
    want = ref.decode(buf, segment, position, block_size)
    assert decoded_tuples(got) == want.records
    assert (int(got.status), got.end, got.error_offset) == \
        (want.status, want.end, want.error_offset)


records_strategy = st.lists(
    st.tuples(st.integers(1, 255), st.integers(0, 2**64 - 1), st.binary(max_size=700)),
    max_size=12)


@given(records=records_strategy, segment=st.integers(0, 2**64 - 1),
       position=st.integers(0, 5000), block_size=st.sampled_from([32, 64, 100, 256, 4096]))
def test_encode_matches_reference_and_roundtrips(records: list[Record], segment: int,
                                                 position: int, block_size: int) -> None:
    buf = encode(records, segment, position, block_size)
    assert buf == ref.encode(records, segment, position, block_size)
    assert len(buf) == walcodec.encoded_size([len(p) for _, _, p in records], position,
                                             block_size)
    d = walcodec.decode(buf, segment=segment, position=position, block_size=block_size)
    assert d.status == DecodeStatus.OK
    assert d.end == len(buf)
    assert [(t, lsn, p) for t, lsn, p, _ in decoded_tuples(d)] == records


@given(records=records_strategy.filter(bool), data=st.data())
def test_damage_is_detected_like_the_reference(records: list[Record],
                                                data: st.DataObject) -> None:
    buf = bytearray(encode(records, position=17))
    how = data.draw(st.sampled_from(["flip", "truncate", "zero_tail", "garbage"]))
    at = data.draw(st.integers(0, len(buf) - 1))
    if how == "flip":
        buf[at] ^= 1 << data.draw(st.integers(0, 7))
    elif how == "truncate":
        del buf[at:]
    elif how == "zero_tail":
        buf[at:] = bytes(len(buf) - at)
    else:
        buf[at:] = data.draw(st.binary(min_size=1, max_size=64))
    assert_same_as_reference(bytes(buf), 3, 17, 256)
    d = walcodec.decode(bytes(buf), segment=3, position=17, block_size=256)
    # Whatever survived is an exact prefix of what was written.
    assert [(t, lsn, p) for t, lsn, p, _ in decoded_tuples(d)] == records[: len(d)]


def test_single_bit_flip_anywhere_is_never_accepted() -> None:
    records = [(1, 10, b"alpha" * 30), (2, 11, b""), (3, 12, bytes(range(256)) * 3)]
    buf = encode(records, position=5)
    step = 7 if JIT_DISABLED else 1
    for at in range(0, len(buf), step):
        damaged = bytearray(buf)
        damaged[at] ^= 0x10
        d = walcodec.decode(bytes(damaged), segment=3, position=5, block_size=256)
        assert d.status != DecodeStatus.OK, at
        assert [(t, lsn, p) for t, lsn, p, _ in decoded_tuples(d)] == records[: len(d)]


@given(records=records_strategy, segment=st.integers(0, 2**64 - 1),
       position=st.integers(0, 5000), block_size=st.sampled_from([32, 100, 256, 4096]))
def test_format_0_9_crc32_framing_matches_reference(records: list[Record], segment: int,
                                                    position: int, block_size: int) -> None:
    payload, offsets, types, lsns = pack(records)
    buf = walcodec.encode(payload, offsets, types, lsns, segment=segment, position=position,
                          block_size=block_size, checksum="crc32").tobytes()
    assert buf == ref.encode(records, segment, position, block_size, checksum="crc32")
    d = walcodec.decode(buf, segment=segment, position=position, block_size=block_size,
                        checksum="crc32")
    assert d.status == DecodeStatus.OK
    assert [(t, lsn, p) for t, lsn, p, _ in decoded_tuples(d)] == records
    if records:
        # A fragment of one checksum is damage to a reader of the other.
        other = walcodec.decode(buf, segment=segment, position=position,
                                block_size=block_size)
        assert other.status == DecodeStatus.CHECKSUM


def test_format_0_9_crc32_damage_like_the_reference() -> None:
    records = [(1, 10, b"alpha" * 30), (2, 11, b""), (3, 12, bytes(range(256)) * 3)]
    payload, offsets, types, lsns = pack(records)
    buf = walcodec.encode(payload, offsets, types, lsns, segment=3, block_size=256,
                          checksum="crc32").tobytes()
    for at in range(0, len(buf), 13):
        damaged = bytearray(buf)
        damaged[at] ^= 0x04
        got = walcodec.decode(bytes(damaged), segment=3, block_size=256, checksum="crc32")
        want = ref.decode(bytes(damaged), 3, 0, 256, checksum="crc32")
        assert decoded_tuples(got) == want.records
        assert (int(got.status), got.end, got.error_offset) == \
            (want.status, want.end, want.error_offset)
    with pytest.raises(ValueError, match="unknown WAL checksum"):
        walcodec.decode(buf, segment=3, checksum="adler32")


def test_stale_bytes_of_a_recycled_segment_are_rejected() -> None:
    buf = encode([(1, 5, b"old record")], segment=41)
    d = walcodec.decode(buf, segment=42, block_size=256)
    assert d.status == DecodeStatus.CHECKSUM
    assert len(d) == 0
    assert d.error_offset == 0


def test_statuses() -> None:
    records = [(1, 1, b"a" * 100), (1, 2, b"b" * 600), (1, 3, b"c")]
    buf = encode(records)
    # The second record spans blocks (FIRST, MIDDLE, LAST).
    kinds = ref.decode(buf, 3, 0, 256)
    assert len(kinds.records) == 3
    full = walcodec.decode(buf, segment=3, block_size=256)
    assert (full.status, len(full), full.error_offset) == (DecodeStatus.OK, 3, -1)
    # A torn tail inside the multi-fragment record: the record is dropped whole.
    torn = walcodec.decode(buf[:400], segment=3, block_size=256)
    assert (torn.status, len(torn), torn.end, torn.error_offset) == \
        (DecodeStatus.TRUNCATED, 1, 116, 116)
    # Unwritten (preallocated, zeroed) space after the records.
    padded = walcodec.decode(buf + bytes(1000), segment=3, block_size=256)
    assert (padded.status, len(padded), padded.end) == (DecodeStatus.UNWRITTEN, 3, len(buf))
    # A length that runs past its block.
    bad_length = bytearray(buf)
    bad_length[4:6] = (250).to_bytes(2, "little")
    d = walcodec.decode(bytes(bad_length), segment=3, block_size=256)
    assert (d.status, len(d), d.error_offset) == (DecodeStatus.LENGTH, 0, 0)
    # A checksummed fragment out of sequence: a LAST with no FIRST before it.
    last_only = encode([(1, 9, b"x" * 300)], block_size=256)
    second = last_only[256:]
    d = walcodec.decode(second, segment=3, position=256, block_size=256)
    assert (d.status, len(d), d.error_offset) == (DecodeStatus.FRAGMENT, 0, 0)


def test_records_land_exactly_at_block_boundaries() -> None:
    # Payload sizes that leave 0, 15 and 16 bytes in a 256-byte block.
    for tail_left in (0, 1, 15, 16, 17):
        size = 256 - 16 - tail_left
        records = [(1, 1, b"q" * size), (2, 2, b"r" * 40)]
        buf = encode(records)
        assert buf == ref.encode(records, 3, 0, 256)
        d = walcodec.decode(buf, segment=3, block_size=256)
        assert d.status == DecodeStatus.OK
        assert [d.record(0), d.record(1)] == [b"q" * size, b"r" * 40]


def test_large_batch_uses_default_blocks() -> None:
    rng = np.random.default_rng(5)
    n = 300 if JIT_DISABLED else 20_000
    lengths = rng.integers(0, 3000, n)
    payload = rng.integers(0, 256, int(lengths.sum()), dtype=np.uint8)
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    buf = walcodec.encode(payload, offsets, np.full(n, 7), np.arange(n), segment=9)
    d = walcodec.decode(buf, segment=9)
    assert d.status == DecodeStatus.OK
    assert len(d) == n
    assert np.array_equal(d.offsets, offsets)
    assert np.array_equal(d.payload, payload)
    assert np.array_equal(d.lsns, np.arange(n, dtype=np.uint64))


def test_empty_batch_and_empty_buffer() -> None:
    empty = walcodec.encode(b"", [0], [], [], segment=0)
    assert empty.size == 0
    d = walcodec.decode(b"", segment=0)
    assert (d.status, len(d), d.end) == (DecodeStatus.OK, 0, 0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"types": [0]}, "record types must be in 1..255"),
        ({"types": [256]}, "record types must be in 1..255"),
        ({"offsets": [0, 99]}, "within the payload"),
        ({"offsets": [3, 1]}, "non-decreasing"),
        ({"lsns": [-1]}, "LSNs must be non-negative"),
        ({"lsns": [1, 2]}, "must each have 1 entries"),
        ({"segment": -1}, "segment number"),
        ({"position": -5}, "position"),
        ({"block_size": 16}, "block_size"),
        ({"block_size": 65537}, "block_size"),
    ],
)
def test_encode_rejects_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"payload": b"abc", "offsets": [0, 3], "types": [1],
                               "lsns": [1], "segment": 1}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        walcodec.encode(**args)  # type: ignore[arg-type]


def test_encoded_size_rejects_negative_lengths() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        walcodec.encoded_size([5, -1])


def test_decode_reads_a_read_only_mapping(tmp_path: Path) -> None:
    records = [(1, 1, b"x" * 1000), (2, 2, b"y" * 10)]
    path = tmp_path / "segment"
    path.write_bytes(encode(records) + bytes(512))
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        d = walcodec.decode(m, segment=3, block_size=256)
        assert d.status == DecodeStatus.UNWRITTEN
        assert [d.record(0), d.record(1)] == [b"x" * 1000, b"y" * 10]


@given(records=st.lists(st.tuples(st.integers(1, 255), st.binary(max_size=120)), max_size=5),
       segment=st.integers(0, 2**64 - 1), block=st.sampled_from([32, 64, 256, 32768]),
       position=st.integers(0, 70000), first_lsn=st.integers(0, 2**63))
def test_small_framing_in_python_is_byte_identical(records: list[tuple[int, bytes]],
                                                   segment: int, block: int, position: int,
                                                   first_lsn: int) -> None:
    framer = walcodec.SegmentFramer(segment, block)
    payload = np.frombuffer(b"".join(p for _, p in records), np.uint8)
    offsets = np.zeros(len(records) + 1, np.int64)
    np.cumsum([len(p) for _, p in records], out=offsets[1:])
    types = np.array([t for t, _ in records], np.uint8)
    kernel_bytes = framer.encode(payload, offsets, types, first_lsn, position).tobytes()
    small = framer.encode_small(records, first_lsn, position)
    fits = sum(16 + len(p) for _, p in records) <= block - position % block
    assert (small is not None) == fits
    if small is not None:
        assert small == kernel_bytes
