"""The RESP server with redis-cli and redis-benchmark, bad input on raw sockets,
limits on connections and idle time, graceful stop, and durability across SIGKILL."""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from resp_server_thread import RawClient, ServerThread, serve

import colibri_mm as cm
from colibri_mm.server.resp_glob import GlobPattern
from colibri_mm.server.resp_settings import RespSettings

REDIS_CLI = "/usr/bin/redis-cli"
REDIS_BENCHMARK = "/usr/bin/redis-benchmark"
CHILD = Path(__file__).with_name("resp_server_child.py")


@pytest.fixture
def server(db: cm.Database) -> Iterator[ServerThread]:
    with serve(db) as running:
        yield running


def cli(port: int, *args: str) -> str:
    done = subprocess.run([REDIS_CLI, "-p", str(port), *args], capture_output=True,
                          text=True, check=True)
    return done.stdout


def test_redis_cli(server: ServerThread) -> None:
    port = server.port
    assert cli(port, "PING") == "PONG\n"
    assert cli(port, "SET", "greeting", "hello world") == "OK\n"
    assert cli(port, "GET", "greeting") == "hello world\n"
    assert cli(port, "--no-raw", "GET", "greeting") == '"hello world"\n'
    assert cli(port, "--no-raw", "GET", "missing") == "(nil)\n"
    assert cli(port, "--no-raw", "INCR", "n") == "(integer) 1\n"
    assert cli(port, "--no-raw", "MGET", "greeting", "missing") == \
        '1) "hello world"\n2) (nil)\n'
    assert cli(port, "--no-raw", "GET") == \
        "(error) ERR wrong number of arguments for 'get' command\n"
    assert cli(port, "--no-raw", "FROB", "x") == \
        "(error) ERR unknown command 'FROB', with args beginning with: 'x' \n"
    assert cli(port, "-3", "--no-raw", "GET", "missing") == "(nil)\n"
    assert cli(port, "-n", "0", "DBSIZE") == "2\n"
    assert cli(port, "COMMAND", "COUNT").strip().isdigit()
    assert "redis_version:" in cli(port, "INFO", "server")
    piped = subprocess.run([REDIS_CLI, "-p", str(port)], input="SET a 1\nINCR a\nGET a\n",
                           capture_output=True, text=True, check=True)
    assert piped.stdout == "OK\n2\n2\n"


def test_redis_benchmark_without_errors(server: ServerThread) -> None:
    done = subprocess.run(
        [REDIS_BENCHMARK, "-p", str(server.port), "-c", "100", "-n", "2000",
         "-t", "set,get,incr,mset", "--csv"], capture_output=True, text=True, check=True)
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert {row["test"] for row in rows} == {"SET", "GET", "INCR", "MSET (10 keys)"}
    assert all(float(row["rps"]) > 0 for row in rows)
    assert "error" not in done.stderr.lower()
    info = server.server.info()
    assert info["error_replies"] == 0
    assert info["write_batch_commands"] == 3 * 2000
    with redis.Redis(port=server.port) as r:
        assert int(r.get("counter:__rand_int__")) == 2000


def test_garbage_gets_a_protocol_error_and_a_close(server: ServerThread) -> None:
    for garbage in (b"\x00\xffnot resp\r\n", b"*1\r\n:5\r\n", b"*2\r\n$3\r\nGET\r\n$x\r\n",
                    b"+OK\r\n", b"-ERR\r\n"):
        with RawClient(server.port) as raw:
            raw.send(garbage)
            assert raw.reply().startswith("-ERR Protocol error")
            assert raw.closed_by_server()
    with RawClient(server.port) as raw:  # complete requests before the garbage are answered
        raw.send(b"*1\r\n$4\r\nPING\r\n" + b"\x00junk\r\n")
        assert raw.reply() == b"PONG"
        assert raw.reply().startswith("-ERR Protocol error")
    with redis.Redis(port=server.port) as r:
        assert r.ping()


def test_oversized_request_is_refused_before_it_is_buffered(db: cm.Database) -> None:
    with serve(db, max_request_bytes=4096) as running:
        with RawClient(running.port) as raw:
            raw.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1000000000\r\n")
            for _ in range(3):
                raw.send(b"x" * 2048)
            assert raw.reply() == "-ERR Protocol error: request larger than " \
                "max_request_bytes (4096 bytes)"
            assert raw.closed_by_server()
        with RawClient(running.port) as raw:  # a huge array of small bulks too
            raw.send(b"*100000000\r\n" + b"$1\r\na\r\n" * 1000)
            assert raw.reply().startswith("-ERR Protocol error: request larger")
        with RawClient(running.port) as raw:
            raw.send(b"*2\r\n$4\r\nECHO\r\n$3000\r\n" + b"y" * 3000 + b"\r\n")
            assert raw.reply() == b"y" * 3000


def test_partial_frames_are_assembled(server: ServerThread) -> None:
    with RawClient(server.port) as raw:
        for byte in b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nvv\r\n":
            raw.send(bytes([byte]))
        assert raw.reply() == b"OK"
        assert raw.call(b"GET", b"k") == b"vv"


def test_too_many_clients(db: cm.Database) -> None:
    with serve(db, max_connections=2) as running, \
            RawClient(running.port) as first, RawClient(running.port) as second:
        assert first.call(b"PING") == b"PONG" and second.call(b"PING") == b"PONG"
        with RawClient(running.port) as third:
            assert third.reply() == "-ERR max number of clients reached"
            assert third.closed_by_server()
        assert running.server.info()["rejected_connections"] == 1
        assert first.call(b"PING") == b"PONG"


def test_idle_connections_are_closed(db: cm.Database) -> None:
    with serve(db, idle_timeout_seconds=0.2) as running, RawClient(running.port) as raw:
        assert raw.call(b"PING") == b"PONG"
        assert raw.closed_by_server()


def test_quit_and_stop_answer_what_was_received(db: cm.Database) -> None:
    with serve(db) as server, RawClient(server.port) as raw:
        assert raw.call(b"QUIT") == b"OK"
        assert raw.closed_by_server()
    server_thread = ServerThread(db, RespSettings(port=0))
    with RawClient(server_thread.port) as raw:
        payload = b"".join(b"*3\r\n$3\r\nSET\r\n$3\r\nk%02d\r\n$1\r\nv\r\n" % i
                           for i in range(50))
        raw.send(payload)
        while server_thread.server.info()["net_input_bytes"] < len(payload):
            time.sleep(0.01)  # until the server has received every request
        assert server_thread.stop() is True
        for _ in range(50):
            assert raw.reply() == b"OK"
    assert db.kv.get(b"k49") == b"v"


def test_glob_follows_redis() -> None:
    cases = [(b"*", b"", True), (b"a*c", b"abbc", True), (b"a?c", b"ac", False),
             (b"[abc]", b"b", True), (b"[^abc]", b"b", False), (b"[z-a]", b"m", True),
             (b"\\*", b"*", True), (b"\\*", b"a", False), (b"[a\\]]", b"]", True),
             (b"a[", b"a", False), (b"h[^e]llo", b"hallo", True), (b".", b"x", False),
             (b"[]", b"x", False), (b"[^]", b"x", True), (b"\xff*", b"\xff\x00", True)]
    for pattern, subject, expected in cases:
        assert GlobPattern(pattern).matches(subject) is expected, (pattern, subject)
    assert GlobPattern(b"user:\\*x*").literal_prefix == b"user:*x"


def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    data = tmp_path / "killed"
    child = subprocess.Popen([sys.executable, str(CHILD), str(data)], stdout=subprocess.PIPE,
                             text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert child.stdout is not None
    try:
        line = child.stdout.readline()
        port = int(line.split()[1])
        acknowledged = []
        with redis.Redis(port=port) as r:
            for i in range(200):
                assert r.set(f"key:{i}", f"value:{i}")
                acknowledged.append(i)
            pipe = r.pipeline(transaction=False)
            for i in range(200, 400):
                pipe.set(f"key:{i}", f"value:{i}")
            assert all(pipe.execute())
            acknowledged.extend(range(200, 400))
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    with cm.connect(data) as reopened:
        for i in acknowledged:
            assert reopened.kv.get(f"key:{i}") == f"value:{i}".encode()
