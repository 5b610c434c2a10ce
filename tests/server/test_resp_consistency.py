"""The RESP server's fast paths keep their promises under concurrency: pipelined
mixes of reads and writes from many connections get the replies the same commands
get one by one, reads see every write acknowledged before them (the connection's
own and other connections'), and the shared read snapshot is never stale."""

from __future__ import annotations

import queue
import random
import threading
from collections.abc import Callable
from typing import Any

import redis
from resp_server_thread import serve

import colibri_mm as cm

Model = dict[bytes, bytes]


def _random_command(rng: random.Random, keys: list[bytes]) -> tuple[Any, ...]:
    key = rng.choice(keys)
    kind = rng.randrange(9)
    if kind == 0:
        return ("SET", key, b"v%d" % rng.randrange(1000))
    if kind == 1:
        return ("INCR", key)
    if kind == 2:
        return ("APPEND", key, b"+")
    if kind == 3:
        return ("GETDEL", key)
    if kind == 4:
        return ("MGET", *rng.sample(keys, 3))
    if kind == 5:
        return ("EXISTS", key, rng.choice(keys))
    if kind == 6:
        return ("SET", key, b"n%d" % rng.randrange(1000), "NX")
    return ("GET", key)


def _model_reply(model: Model, command: tuple[Any, ...]) -> Any:
    """What the command answers (and does) run alone against ``model``."""
    name, *args = command
    if name == "SET":
        if len(args) == 3 and args[0] in model:
            return None
        model[args[0]] = args[1]
        return True  # redis-py's reading of +OK
    if name == "INCR":
        old = model.get(args[0], b"0")
        if not old.lstrip(b"-").isdigit():
            return redis.ResponseError("value is not an integer or out of range")
        model[args[0]] = b"%d" % (int(old) + 1)
        return int(old) + 1
    if name == "APPEND":
        model[args[0]] = model.get(args[0], b"") + args[1]
        return len(model[args[0]])
    if name == "GETDEL":
        return model.pop(args[0], None)
    if name == "MGET":
        return [model.get(key) for key in args]
    if name == "EXISTS":
        return sum(key in model for key in args)
    return model.get(args[0])


def _same(reply: Any, expected: Any) -> bool:
    if isinstance(expected, Exception):
        return isinstance(reply, redis.ResponseError) and str(reply) == str(expected)
    return bool(reply == expected)


def _run_threads(work: list[Callable[[], None]]) -> None:
    failures: list[BaseException] = []

    def guarded(function: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                function()
            except BaseException as e:
                failures.append(e)
        return run
    threads = [threading.Thread(target=guarded(w)) for w in work]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise failures[0]


def test_pipelined_mixes_get_the_replies_of_one_by_one(db: cm.Database) -> None:
    """Each connection owns its keys, so its replies are those of its commands run
    alone, in order, whatever the other connections do meanwhile; a shared counter
    counts every INCR."""
    with serve(db) as server:
        models: list[Model] = [{} for _ in range(12)]

        def client(number: int) -> Callable[[], None]:
            def work() -> None:
                rng = random.Random(number)
                keys = [b"c%d:k%d" % (number, i) for i in range(6)]
                model = models[number]
                with redis.Redis(port=server.port) as r:
                    for _ in range(25):
                        commands = [_random_command(rng, keys)
                                    for _ in range(rng.randrange(1, 24))]
                        pipe = r.pipeline(transaction=False)
                        for command in commands:
                            pipe.execute_command(*command)
                        pipe.execute_command("INCR", "shared")
                        replies = pipe.execute(raise_on_error=False)
                        for command, reply in zip(commands, replies, strict=False):
                            expected = _model_reply(model, command)
                            assert _same(reply, expected), (command, reply, expected)
            return work
        _run_threads([client(n) for n in range(len(models))])
        with redis.Redis(port=server.port) as r:
            assert r.get("shared") == b"%d" % (25 * len(models))
            for model in models:
                keys = sorted(model)
                assert r.mget(keys) == [model[key] for key in keys]


def test_a_read_sees_every_write_acknowledged_before_it(db: cm.Database) -> None:
    """A write acknowledged to one client is seen by another client's read sent after
    the acknowledgement, while other clients keep the server busy (so reads share
    snapshots across connections and passes)."""
    with serve(db) as server:
        acknowledged: queue.Queue[int | None] = queue.Queue()
        rounds = 400

        def writer() -> None:
            with redis.Redis(port=server.port) as r:
                for i in range(1, rounds + 1):
                    r.set("sequence", i)
                    acknowledged.put(i)
            acknowledged.put(None)

        def reader() -> None:
            with redis.Redis(port=server.port) as r:
                while (i := acknowledged.get()) is not None:
                    seen = r.get("sequence")
                    assert seen is not None and int(seen) >= i, (seen, i)
                    # The reader's own write, then its read in the same pipeline.
                    pipe = r.pipeline(transaction=False)
                    pipe.set("mine", i).get("mine")
                    assert pipe.execute() == [True, str(i).encode()]

        def noise(number: int) -> Callable[[], None]:
            def work() -> None:
                with redis.Redis(port=server.port) as r:
                    for i in range(150):
                        pipe = r.pipeline(transaction=False)
                        pipe.get("sequence").set(f"noise:{number}", i).get("sequence")
                        pipe.execute()
            return work
        _run_threads([writer, reader, *(noise(n) for n in range(6))])


def test_reads_share_a_snapshot_only_while_nothing_is_committed(db: cm.Database) -> None:
    """On the event loop, passes share one snapshot until a commit is published, and
    it is released at the next loop iteration."""
    with serve(db) as server:
        def shared_then_refreshed() -> None:
            first = server.server.begin_reads()
            assert first.get(b"k") is None
            assert server.server.begin_reads().get(b"k") is None
            assert db.stats()["live_snapshots"] == 1
            db.kv.put(b"k", b"1")
            assert server.server.begin_reads().get(b"k") == b"1"
            assert db.stats()["live_snapshots"] == 1
        server.call(shared_then_refreshed)
        assert server.call(lambda: db.stats()["live_snapshots"]) == 0
