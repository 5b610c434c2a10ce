"""RequestReader's check of array headers before hiredis sees them: a request
announcing more elements than max_request_bytes can hold is refused wherever it
falls (first, after pipelined requests, split across reads), and well-formed
streams of any shape are never refused."""

import hiredis
import pytest

from colibri_mm.server.resp_protocol import RequestReader

HUGE = b"*100000000\r\n"


def pack(*args: bytes) -> bytes:
    return hiredis.pack_command(args)


def feed_in_pieces(reader: RequestReader, data: bytes, size: int) -> list[list[bytes]]:
    requests = []
    for i in range(0, len(data), size):
        requests += reader.feed(data[i : i + size])
    return requests


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 10_000])
def test_any_split_of_valid_requests_reads_them_all(size: int) -> None:
    commands = [(b"SET", b"k%d" % i, b"v" * (i * 37 % 300)) for i in range(60)]
    commands += [(b"PING",), (b"ECHO", b"*100000000\r\n"), (b"GET", b"")]
    data = b"".join(pack(*c) for c in commands)
    reader = RequestReader(1 << 20)
    assert feed_in_pieces(reader, data, size) == [list(c) for c in commands]
    assert reader.violation is None


@pytest.mark.parametrize("size", [1, 5, 11, 4096])
def test_a_huge_array_header_is_refused_wherever_it_falls(size: int) -> None:
    before = b"".join(pack(b"SET", b"k%d" % i, b"v") for i in range(20))
    reader = RequestReader(4096)
    requests = feed_in_pieces(reader, before + HUGE + b"$1\r\na\r\n" * 10, size)
    assert len(requests) == 20  # those before it are still carried out
    assert reader.violation is not None
    assert "an array of 100000000 elements" in reader.violation


def test_headers_within_the_limit_pass() -> None:
    reader = RequestReader(4096)
    assert reader.feed(b"*1024\r\n") == [] and reader.violation is None
    reader = RequestReader(4096)
    assert reader.feed(b"*1025\r\n") == [] and reader.violation is not None


def test_counts_are_canonical_or_refused() -> None:
    # The reader counts requests in their canonical encoding to find the next header;
    # hiredis refuses counts written otherwise, so the offsets cannot drift.
    for data in (b"*02\r\n$4\r\nECHO\r\n$1\r\na\r\n", b"*1\r\n$04\r\nPING\r\n"):
        reader = RequestReader(4096)
        assert reader.feed(data) == [] and reader.violation is not None
