"""Hostile clients against a real ``coldb-server`` process (uvloop): fuzzed and
binary input, frames over the limits, slowloris connections, clients that never read
their replies. Each gets replies (an error, for what is not a valid request) or a
closed connection; the server never crashes, its memory stays bounded, and other
clients are served meanwhile.

``tests/server/test_resp_clients.py`` checks the exact reply to each kind of bad
input on an in-thread server; these load the process with many of them at once.
``COLIBRI_HOSTILE_CASES`` sets how many fuzzed inputs are sent (default 400).
"""

from __future__ import annotations

import errno
import os
import random
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import hiredis
from resp_server_thread import RawClient
from running_server import START_TIMEOUT, RunningServer, write_config

CASES = int(os.environ.get("COLIBRI_HOSTILE_CASES", "400"))
MAX_REQUEST = 1 << 20
"""``server.max_request_bytes`` of these servers."""
MAX_VALUE = 512 << 10
MIB = 1 << 20
SEED = 20261205
FRAMES = [hiredis.pack_command(args) for args in (
    ("PING",), ("ECHO", "hello"), ("SET", "k", "v"), ("GET", "k"), ("MGET", "k", "x"),
    ("INCR", "n"), ("APPEND", "k", "tail"), ("DEL", "x"), ("EXISTS", "k"),
    ("SCAN", "0", "MATCH", "k*", "COUNT", "10"), ("MULTI",), ("EXEC",),
    ("CLIENT", "SETNAME", "fuzz"), ("HELLO", "3"), ("STRLEN", "k"),
)]
VIOLATIONS = [
    b"$99999999999999999999999\r\n", b"*99999999999999999999\r\n",
    b"*1\r\n*1\r\n$4\r\nPING\r\n", b"*2\r\n$3\r\nGET\r\n:1\r\n", b"PING\r\n",
    b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n" * 3 + b"%1\r\n$1\r\na\r\n$1\r\nb\r\n",
    b"*" + b"9" * (2 * MIB), b"\x00" * 70_000,
]
"""Inputs that are not RESP requests: the last reply must be a protocol error."""
FIXED_CASES = [
    *VIOLATIONS, b"*-5\r\n", b"*1\r\n$-7\r\n", b"\r\n\r\n\r\n", b"*1\n$4\nPING\n",
    b"*1\r\n$4\r\nPI", b"*\r\n", b"$\r\n", b"*1\r\n$3\r\n\xff\xfe\xfd\r\n",
    b"~1\r\n$4\r\nPING\r\n",  # a RESP3 set is taken as an array (Redis refuses it)
]


def assert_bounded(before: int, after: int) -> None:
    """The server's memory ``after`` a flood is within a generous bound of ``before``
    (twice, plus 256 MiB): what grows with the flood's size is not bounded."""
    assert after < 2 * before + 256 * MIB, f"{before >> 20} MiB, then {after >> 20} MiB"


def hostile_config(directory: Path, **server: object) -> Path:
    return write_config(directory, server={"max_request_bytes": MAX_REQUEST, **server},
                        limits={"max_value_bytes": MAX_VALUE})


def fuzzed_inputs(rng: random.Random) -> Iterator[bytes]:
    """:data:`FIXED_CASES`, random bytes, then valid frames mutated (bytes replaced,
    cut out, repeated, inserted, the end dropped)."""
    yield from FIXED_CASES
    for size in (1, 7, 100, 4096, 200_000):
        yield rng.randbytes(size)
    for _ in range(CASES):
        data = bytearray(b"".join(rng.choices(FRAMES, k=rng.randint(1, 4))))
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(data))
            kind = rng.randrange(5)
            if kind == 0:
                data[at] = rng.randrange(256)
            elif kind == 1:
                del data[at:at + rng.randint(1, 8)]
            elif kind == 2:
                data[at:at] = data[at:at + rng.randint(1, 16)] * rng.randint(2, 50)
            elif kind == 3:
                data[at:at] = rng.randbytes(rng.randint(1, 16))
            else:
                del data[at:]
            if not data:
                data = bytearray(rng.randbytes(3))
        yield bytes(data)


def send_and_read_to_the_end(port: int, data: bytes) -> list[object]:
    """Send ``data``, say no more will come, and read until the server closes; the
    replies, which must be well-formed RESP."""
    with RawClient(port) as raw:
        raw.socket.settimeout(START_TIMEOUT)  # a hang guard: the server must close
        try:
            raw.send(data)
            raw.socket.shutdown(socket.SHUT_WR)
        except OSError as e:  # closed on a violation while we were still sending
            if e.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                raise
        replies: list[object] = []
        try:
            while chunk := raw.socket.recv(65536):
                raw.reader.feed(chunk)
                while (reply := raw.reader.gets()) is not False:
                    replies.append(reply)
        except ConnectionResetError:
            pass  # closed with our bytes unread: nothing more to read
        assert raw.reader.gets() is False, "a reply was cut off"
        return replies


def test_fuzzed_and_binary_input_never_crashes_the_server(tmp_path: Path) -> None:
    with RunningServer(hostile_config(tmp_path)) as server:
        inputs = list(fuzzed_inputs(random.Random(SEED)))
        with server.client() as bystander, ThreadPoolExecutor(8) as pool:
            bystander.set("k", "before")
            outcomes = pool.map(lambda data: send_and_read_to_the_end(server.resp_port, data),
                                inputs)
            for data, replies in zip(inputs, outcomes, strict=True):
                if data in VIOLATIONS:
                    assert replies, f"no error reply to {data[:40]!r}"
                    last = replies[-1]
                    assert isinstance(last, hiredis.ReplyError), (data[:40], replies)
                    assert str(last).startswith("ERR Protocol error"), (data[:40], replies)
                assert bystander.ping()  # served meanwhile
        assert server.process.poll() is None
        assert server.stop() == 0


def test_slowloris_connections_are_closed_and_others_served(tmp_path: Path) -> None:
    with RunningServer(hostile_config(tmp_path, idle_timeout_seconds=1.0)) as server:
        frame = hiredis.pack_command(("SET", "slow", "x" * 1000))
        slow = [RawClient(server.resp_port) for _ in range(200)]
        closed = False
        try:
            for raw in slow:
                raw.socket.settimeout(START_TIMEOUT)
            with server.client() as client:
                served = 0
                # One byte now and then from each connection (less often than the idle
                # timeout), while a client keeps working; until the server closes them.
                for position in range(len(frame)):
                    for raw in slow:
                        try:
                            raw.send(frame[position:position + 1])
                        except (BrokenPipeError, ConnectionResetError):
                            closed = True
                    if closed:
                        break
                    for _ in range(20):
                        assert client.set(f"busy:{served}", served)
                        assert client.get(f"busy:{served}") == str(served).encode()
                        served += 1
                    time.sleep(1.5)  # longer than the idle timeout
                assert closed, "no slow connection was closed"
                for raw in slow:
                    assert raw.closed_by_server()
                assert served > 0 and client.get("slow") is None
        finally:
            for raw in slow:
                raw.socket.close()
        assert server.stop() == 0


HEADS = (b"*200000\r\n", b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1000000000\r\n")
PIECE = 1022
BODIES = (b"$1\r\na\r\n" * (PIECE // 7), b"x" * PIECE)
"""The starts of a request of 200,000 small bulks (1.4 MB) and of one with a 1 GB
bulk, and pieces of :data:`PIECE` bytes of each."""


def flood_oversized_partial_frames(port: int, connections: int) -> None:
    """``connections`` clients each start a request over ``max_request_bytes``
    (:data:`HEADS`), send just under the limit of it and stall, all at once; then
    each sends past the limit and must be refused and closed."""
    clients = [RawClient(port) for _ in range(connections)]
    try:
        for i, raw in enumerate(clients):
            raw.socket.settimeout(START_TIMEOUT)
            raw.send(HEADS[i % 2] + BODIES[i % 2] * ((MAX_REQUEST - 4096) // PIECE))
        for i, raw in enumerate(clients):
            try:
                raw.send(BODIES[i % 2] * (MAX_REQUEST // 4 // PIECE))
            except (BrokenPipeError, ConnectionResetError):
                continue
            assert raw.reply().startswith("-ERR Protocol error: request larger than")
            assert raw.closed_by_server()
    finally:
        for raw in clients:
            raw.socket.close()


def test_oversized_partial_frames_keep_memory_bounded(tmp_path: Path) -> None:
    with RunningServer(hostile_config(tmp_path)) as server:
        with server.client() as client:
            for i in range(100):
                client.set(f"warm:{i}", "v" * 1000)
            before = server.memory_bytes()
            for _ in range(3):
                flood_oversized_partial_frames(server.resp_port, 64)
                assert client.ping()
            after = server.memory_bytes()
            assert client.get("warm:99") == b"v" * 1000
        # 64 clients x max_request_bytes may be buffered at once (64 MiB); nothing more.
        assert_bounded(before, after)
        assert server.stop() == 0


def test_clients_that_never_read_replies_keep_memory_bounded(tmp_path: Path) -> None:
    with RunningServer(hostile_config(tmp_path)) as server:
        connections, requests, value = 4, 1024, b"v" * (256 << 10)
        with server.client() as client:
            client.set("big", value)
            before = server.memory_bytes()
            pipelined = hiredis.pack_command(("GET", "big")) * requests
            hoarders = [RawClient(server.resp_port) for _ in range(connections)]
            try:
                for raw in hoarders:
                    raw.send(pipelined)  # never reading the 256 MiB of replies
                assert client.get("big") == value  # served meanwhile
                output = 0  # until the server stops producing replies (bar INFO's own)
                while (now := client.info("stats")["total_net_output_bytes"]) - output > MIB:
                    output = now
                    time.sleep(0.5)
                during = server.memory_bytes()
            finally:
                for raw in hoarders:
                    raw.socket.close()
        # Replies of 1 GiB were asked for; a server that stops writing to a client that
        # does not read holds a transport buffer's worth per client.
        assert_bounded(before, during)
        assert server.stop() == 0


def test_a_huge_array_header_reserves_no_memory(tmp_path: Path) -> None:
    with RunningServer(hostile_config(tmp_path)) as server:
        with server.client() as client, RawClient(server.resp_port) as raw:
            before = server.memory_bytes("VmSize")
            received = client.info("stats")["total_net_input_bytes"]
            data = b"*100000000\r\n" + b"$1\r\na\r\n" * 1000
            raw.send(data)
            while client.info("stats")["total_net_input_bytes"] < received + len(data):
                time.sleep(0.05)  # until the server has read it
            during = server.memory_bytes("VmSize")
        assert during - before < 256 * MIB, (before, during)
        assert server.stop() == 0
