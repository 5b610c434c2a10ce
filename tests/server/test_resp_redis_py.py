"""The RESP server through redis-py: every command, RESP2 and RESP3, pipelines,
MULTI/EXEC, WATCH, errors and limits."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
import redis
from resp_server_thread import RawClient, ServerThread, serve

import colibri_mm as cm

WRONGPASS = "-WRONGPASS invalid username-password pair or user is disabled."


@pytest.fixture
def server(db: cm.Database) -> Iterator[ServerThread]:
    with serve(db, flushdb_enabled=True, keys_limit=50) as running:
        yield running


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def client(server: ServerThread, request: pytest.FixtureRequest) -> Iterator[redis.Redis]:
    with redis.Redis(port=server.port, protocol=request.param) as r:
        yield r


def test_strings(client: redis.Redis) -> None:
    assert client.ping() is True
    assert client.echo(b"hi") == b"hi"
    assert client.get("missing") is None
    assert client.set("a", "1") is True
    assert client.get("a") == b"1"
    assert client.set("a", "2", nx=True) is None
    assert client.set("b", "x", xx=True) is None
    assert client.set("a", "3", xx=True) is True
    assert client.set("a", "4", get=True) == b"3"
    assert client.set("new", "v", nx=True, get=True) is None
    assert client.get("new") == b"v"
    assert client.mset({"m1": b"\x00\xff", "m2": "two"}) is True
    assert client.mget("m1", "missing", "m2") == [b"\x00\xff", None, b"two"]
    assert client.strlen("m2") == 3
    assert client.strlen("missing") == 0
    assert client.append("m2", "!") == 4
    assert client.append("fresh", "ab") == 2
    assert client.getdel("m2") == b"two!"
    assert client.getdel("m2") is None
    assert client.exists("a", "a", "missing") == 2
    assert client.delete("a", "missing", "new") == 2
    assert client.type("m1") == b"string"
    assert client.type("missing") == b"none"
    assert client.set(b"", b"empty key") is True
    assert client.get(b"") == b"empty key"


def test_counters(client: redis.Redis) -> None:
    assert client.incr("n") == 1
    assert client.incrby("n", 41) == 42
    assert client.decr("n") == 41
    assert client.decrby("n", 50) == -9
    assert client.get("n") == b"-9"
    client.set("text", "abc")
    client.set("big", str(2**63 - 1))
    client.set("padded", " 1")
    for key in ("text", "padded"):
        with pytest.raises(redis.ResponseError, match=r"^value is not an integer or out of range$"):
            client.incr(key)
    with pytest.raises(redis.ResponseError, match=r"^increment or decrement would overflow$"):
        client.incr("big")
    with pytest.raises(redis.ResponseError, match="value is not an integer"):
        client.incrby("n", "x")
    with pytest.raises(redis.ResponseError, match="decrement would overflow"):
        client.decrby("n", -(2**63))
    assert client.get("text") == b"abc"


def test_set_refuses_expiry(client: redis.Redis) -> None:
    with pytest.raises(redis.ResponseError, match="keys do not expire"):
        client.set("k", "v", ex=10)
    with pytest.raises(redis.ResponseError, match="keys do not expire"):
        client.set("k", "v", keepttl=True)
    with pytest.raises(redis.ResponseError, match=r"^syntax error$"):
        client.execute_command("SET", "k", "v", "NX", "XX")
    assert client.get("k") is None


def test_keyspace(client: redis.Redis) -> None:
    keys = [f"user:{i:03d}".encode() for i in range(40)] + [b"other", b"user?x"]
    client.mset({k: b"v" for k in keys})
    assert client.dbsize() == len(keys)
    assert sorted(client.keys("*")) == sorted(keys)
    assert sorted(client.keys("user:00?")) == [f"user:00{i}".encode() for i in range(10)]
    assert client.keys("user:0[1-2]5") == [b"user:015", b"user:025"]
    assert client.keys("user\\?x") == [b"user?x"]
    assert client.keys("user:0[^0-2]*") == [f"user:03{i}".encode() for i in range(10)]
    assert sorted(client.scan_iter()) == sorted(keys)
    assert sorted(client.scan_iter(count=3)) == sorted(keys)
    assert sorted(client.scan_iter(match="user:03*", count=2)) == \
        [f"user:03{i}".encode() for i in range(10)]
    cursor, page = client.scan(0, count=5)
    assert cursor != 0 and len(page) == 5
    assert list(client.scan_iter(_type="hash")) == []
    with pytest.raises(redis.ResponseError, match="invalid cursor"):
        client.scan(12345)
    client.mset({f"more:{i}": b"v" for i in range(20)})
    with pytest.raises(redis.ResponseError, match="keys_limit"):
        client.keys("*")
    assert client.flushdb() is True
    assert client.dbsize() == 0
    assert client.keys("*") == []


def test_connection_commands(client: redis.Redis, server: ServerThread) -> None:
    assert client.execute_command("SELECT", 0) in (True, b"OK", "OK")
    with pytest.raises(redis.ResponseError, match="DB index is out of range"):
        client.execute_command("SELECT", 1)
    client_id = client.client_id()
    assert isinstance(client_id, int) and client_id > 0
    assert client.client_getname() is None
    assert client.client_setname("worker-1") is True
    assert client.client_getname() in (b"worker-1", "worker-1")
    with pytest.raises(redis.ResponseError, match="cannot contain spaces"):
        client.client_setname("bad name")
    entries = client.client_list()
    assert any(e["name"] == "worker-1" and int(e["id"]) == client_id for e in entries)
    config = client.config_get("maxclients")
    assert {(k.decode() if isinstance(k, bytes) else k): v for k, v in config.items()} == \
        {"maxclients": b"10000"} or config == {"maxclients": "10000"}
    assert len(client.config_get("*")) >= 5
    with pytest.raises(redis.ResponseError, match="not supported"):
        client.config_set("maxclients", 5)
    info = client.info()
    assert info["connected_clients"] >= 1 and info["tcp_port"] == server.port
    assert "used_memory_rss" in client.info("memory")
    assert "total_commands_processed" in client.info("stats")
    assert client.command_count() >= 30
    assert {"get", "set", "multi"} <= {
        c.decode() if isinstance(c, bytes) else c for c in client.command_list()}
    assert client.command()["get"]["arity"] == 2


def test_errors(client: redis.Redis) -> None:
    with pytest.raises(redis.ResponseError) as unknown:
        client.execute_command("FOO", "bar", "baz")
    assert str(unknown.value) == "unknown command 'FOO', with args beginning with: 'bar' 'baz' "
    with pytest.raises(redis.ResponseError) as arity:
        client.execute_command("GET")
    assert str(arity.value) == "wrong number of arguments for 'get' command"
    with pytest.raises(redis.ResponseError, match="wrong number of arguments for 'mset'"):
        client.execute_command("MSET", "a", "1", "b")
    with pytest.raises(redis.ResponseError, match="max_key_bytes"):
        client.set(b"k" * 1025, "v")
    assert client.ping()


def test_pipeline_errors_stay_with_their_command(client: redis.Redis, server: ServerThread) -> None:
    client.set("word", "abc")
    pipe = client.pipeline(transaction=False)
    for i in range(200):
        pipe.set(f"p{i}", i)
        if i == 100:
            pipe.incr("word")
        pipe.incr("count")
    pipe.get("p199")
    results = pipe.execute(raise_on_error=False)
    assert isinstance(results[201], redis.ResponseError)
    assert [r for r in results if isinstance(r, Exception)] == [results[201]]
    assert results[-1] == b"199"
    assert client.get("count") == b"200"
    assert server.server.info()["largest_write_batch"] >= 2


def test_multi_exec(client: redis.Redis) -> None:
    pipe = client.pipeline(transaction=True)
    pipe.set("x", 1).incr("x").get("x").incr("missing-text").ping()
    assert pipe.execute() == [True, 2, b"2", 1, True]
    client.set("t", "text")
    pipe = client.pipeline(transaction=True)
    pipe.set("y", 1).incr("t").get("y")
    results = pipe.execute(raise_on_error=False)
    assert results[0] is True and isinstance(results[1], redis.ResponseError)
    assert results[2] == b"1"


def test_execabort_discard_and_misuse(client: redis.Redis) -> None:
    assert client.execute_command("MULTI") in (True, b"OK", "OK")
    client.execute_command("SET", "q", "1")  # QUEUED (redis-py reads it as SET's reply)
    with pytest.raises(redis.ResponseError, match="unknown command"):
        client.execute_command("NOPE")
    with pytest.raises(redis.ResponseError, match="MULTI calls can not be nested"):
        client.execute_command("MULTI")
    with pytest.raises(redis.ResponseError, match=r"^Transaction discarded because of previous"):
        client.execute_command("EXEC")
    assert client.get("q") is None
    client.execute_command("MULTI")
    client.execute_command("SET", "q", "1")
    assert client.execute_command("DISCARD") in (True, b"OK", "OK")
    assert client.get("q") is None
    with pytest.raises(redis.ResponseError, match="EXEC without MULTI"):
        client.execute_command("EXEC")
    with pytest.raises(redis.ResponseError, match="DISCARD without MULTI"):
        client.execute_command("DISCARD")


def test_watch(server: ServerThread) -> None:
    with redis.Redis(port=server.port) as a, redis.Redis(port=server.port) as b:
        a.set("balance", 10)
        with a.pipeline() as pipe:
            pipe.watch("balance")
            value = int(pipe.get("balance"))
            b.set("balance", 100)  # a conflicting change from another client
            pipe.multi()
            pipe.set("balance", value + 1)
            with pytest.raises(redis.WatchError):
                pipe.execute()
        assert a.get("balance") == b"100"
        with a.pipeline() as pipe:  # no conflict: EXEC applies
            pipe.watch("balance")
            value = int(pipe.get("balance"))
            b.set("unrelated", 1)
            pipe.multi()
            pipe.set("balance", value + 1)
            assert pipe.execute() == [True]
        assert a.get("balance") == b"101"
        with a.pipeline() as pipe:  # a read-only EXEC also fails after a change
            pipe.watch("balance")
            b.incr("balance")
            pipe.multi()
            pipe.get("balance")
            with pytest.raises(redis.WatchError):
                pipe.execute()
        a.execute_command("WATCH", "balance")
        b.incr("balance")
        a.execute_command("UNWATCH")
        a.execute_command("MULTI")
        a.execute_command("INCR", "balance")
        assert a.execute_command("EXEC") == [104]


def test_watch_resp3_null(server: ServerThread) -> None:
    with redis.Redis(port=server.port, protocol=3) as a, redis.Redis(port=server.port) as b:
        a.execute_command("WATCH", "k")
        b.set("k", 1)
        a.execute_command("MULTI")
        a.execute_command("SET", "k", 2)
        assert a.execute_command("EXEC") is None
        assert a.get("k") == b"1"


def test_increments_from_many_clients_are_not_lost(server: ServerThread) -> None:
    def work(n: int) -> None:  # n, not the thread's ident: a finished thread's is reused
        with redis.Redis(port=server.port) as r:
            for i in range(25):
                r.incr("shared")
                r.set(f"own:{n}:{i}", i)
    threads = [threading.Thread(target=work, args=(n,)) for n in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with redis.Redis(port=server.port) as r:
        assert r.get("shared") == b"1000"
        assert r.dbsize() == 1 + 40 * 25


def test_hello_and_resp3_replies(server: ServerThread) -> None:
    with redis.Redis(port=server.port, protocol=3) as r:
        r.set("k", "v")
        hello = r.execute_command("HELLO", 3)
        assert hello[b"proto"] == 3 and hello[b"mode"] == b"standalone"
        assert r.get("missing") is None
        assert r.execute_command("CONFIG", "GET", "databases") == {b"databases": b"1"}
        with pytest.raises(redis.ResponseError, match="NOPROTO"):
            r.execute_command("HELLO", 4)


def test_auth(db: cm.Database) -> None:
    with serve(db, password_check=lambda p: p == "s3cret", auth_failure_delay_ms=1) as running:
        with RawClient(running.port) as anonymous:
            assert anonymous.call(b"GET", b"k") == "-NOAUTH Authentication required."
            assert anonymous.call(b"AUTH", b"wrong") == WRONGPASS
            assert anonymous.call(b"AUTH", b"alice", b"s3cret") == WRONGPASS
            assert anonymous.call(b"PING") == "-NOAUTH Authentication required."
            assert anonymous.call(b"AUTH", b"s3cret") == b"OK"
            assert anonymous.call(b"SET", b"k", b"v") == b"OK"
        with redis.Redis(port=running.port, password="s3cret") as r:
            assert r.get("k") == b"v"
        with redis.Redis(port=running.port, username="default", password="s3cret",
                         protocol=3) as r:
            assert r.get("k") == b"v"
        with pytest.raises(redis.AuthenticationError), \
                redis.Redis(port=running.port, password="nope") as r:
            r.ping()
        with pytest.raises(redis.AuthenticationError, match="HELLO must be called"), \
                redis.Redis(port=running.port, protocol=3) as r:
            r.ping()


def test_auth_without_password_configured(client: redis.Redis) -> None:
    with pytest.raises(redis.AuthenticationError, match="without any password configured"):
        client.execute_command("AUTH", "x")


def test_readonly(db: cm.Database) -> None:
    db.kv.put(b"k", b"v")
    with serve(db, readonly=True) as running, redis.Redis(port=running.port) as r:
        assert r.get("k") == b"v"
        with pytest.raises(redis.ReadOnlyError):
            r.set("k", "w")
        r.execute_command("MULTI")
        with pytest.raises(redis.ReadOnlyError):
            r.execute_command("DEL", "k")
        with pytest.raises(redis.ResponseError, match="Transaction discarded"):
            r.execute_command("EXEC")
        assert r.get("k") == b"v"


def test_flushdb_disabled_and_value_limit(db: cm.Database) -> None:
    with serve(db, max_value_bytes=100) as running, redis.Redis(port=running.port) as r:
        r.set("k", "v")
        with pytest.raises(redis.ResponseError, match="FLUSHDB is disabled"):
            r.flushdb()
        with pytest.raises(redis.ResponseError, match="max_value_bytes"):
            r.set("big", b"x" * 101)
        r.set("edge", b"x" * 100)
        with pytest.raises(redis.ResponseError, match="exceeds maximum allowed size"):
            r.append("edge", "y")
        assert r.get("k") == b"v" and r.strlen("edge") == 100


def test_observer_sees_every_command(db: cm.Database) -> None:
    seen: list[tuple[str, str | None]] = []
    with serve(db, observer=lambda name, seconds, error: seen.append((name, error))) \
            as running, redis.Redis(port=running.port, protocol=2) as r:
        r.set("k", "v")
        r.get("k")
        with pytest.raises(redis.ResponseError):
            r.execute_command("NOSUCH")
    assert ("set", None) in seen and ("get", None) in seen and ("unknown", "ERR") in seen


def test_shutdown_and_stats_document(db: cm.Database) -> None:
    requested: list[bool] = []
    with serve(db, on_shutdown=lambda: requested.append(True)) as running:
        with RawClient(running.port) as raw:
            document = json.loads(raw.call(b"COLDB.STATS"))
            assert document["server"]["port"] == running.port
            assert "wal_commits" in document["database"]
            assert raw.call(b"SHUTDOWN", b"BOGUS") == "-ERR syntax error"
            assert raw.call(b"SHUTDOWN") == b"OK"
            assert raw.closed_by_server()
        running.call(lambda: None)  # the loop ran the shutdown callback before this
        assert requested == [True]
    with serve(db) as running, RawClient(running.port) as raw:
        assert raw.call(b"SHUTDOWN") == "-ERR SHUTDOWN is not available on this server"
