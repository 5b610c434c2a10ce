"""A real ``coldb-server`` under load: many concurrent clients reading and writing
with known sequences, a SIGKILL during a redis-benchmark SET load, and graceful stops
(SIGTERM, ``coldb shutdown``) while many clients write. Every acknowledged write must
be there afterwards, and what clients read along the way must be consistent.

Sizes (small in CI; the release-size runs are in ``perf/CAMPAIGNS.md``):
``COLIBRI_LOAD_CLIENTS`` concurrent clients (default 120) of ``COLIBRI_LOAD_STEPS``
steps each (default 25) in the mixed test; ``COLIBRI_LOAD_WRITES`` (default 300)
writes each writer has had acknowledged before the server is killed or stopped.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from running_server import RunningServer, write_config

import colibri_mm as cm

CLIENTS = int(os.environ.get("COLIBRI_LOAD_CLIENTS", "120"))
STEPS = int(os.environ.get("COLIBRI_LOAD_STEPS", "25"))
WRITES = int(os.environ.get("COLIBRI_LOAD_WRITES", "300"))
WRITERS = 32
"""Clients writing while the server is stopped gracefully."""
BENCHMARK_CLIENTS = 50
BENCHMARK_REQUESTS = 10_000_000
"""More than the load runs for: redis-benchmark exits when the server goes away."""
MAX_WRITES = 10_000_000
"""Bound on any writer's loop (it ends when the server goes away)."""
REDIS_BENCHMARK = "/usr/bin/redis-benchmark"


class Workers:
    """Threads started together (a barrier) whose exceptions are kept."""

    def __init__(self, count: int, work: Callable[[int], None], name: str) -> None:
        self.errors: list[BaseException] = []
        barrier = threading.Barrier(count)

        def run(index: int) -> None:
            try:
                barrier.wait()
                work(index)
            except BaseException as e:
                self.errors.append(e)

        self.threads = [threading.Thread(target=run, args=(i,), name=f"{name}-{i}")
                        for i in range(count)]
        for thread in self.threads:
            thread.start()

    def join(self) -> list[BaseException]:
        for thread in self.threads:
            thread.join()
        return self.errors


def log_of(steps: int) -> bytes:
    """What a client's APPEND log holds after ``steps`` steps."""
    return b"".join(b"%d," % s for s in range(1, steps + 1))


# -- 100+ clients, mixed reads and writes ----------------------------------------------

@dataclass
class Sighting:
    """What one reader last saw of another client's keys."""

    counter: int = 0
    appended: int = 0
    pair: int = 0


@dataclass
class Reader:
    """A client's sightings of the others, checked as they come."""

    seen: dict[int, Sighting] = field(default_factory=dict)
    reads: int = 0

    def observe(self, owner: int, counter: bytes | None, log: bytes | None,
                pair: list[bytes | None]) -> None:
        """Check one read of ``owner``'s keys against what this reader saw before: no
        sequence goes backwards, the log is whole, the MULTI pair is never split."""
        last = self.seen.setdefault(owner, Sighting())
        now_counter = int(counter or 0)
        now_log = log or b""
        appended = now_log.count(b",")
        assert now_log == log_of(appended), f"client {owner}'s log reads {now_log!r}"
        assert pair[0] == pair[1], f"client {owner}'s MULTI pair read split: {pair}"
        now_pair = int(pair[0] or 0)
        assert now_counter >= last.counter and appended >= last.appended and \
            now_pair >= last.pair, f"client {owner} went backwards: {last} then " \
            f"{(now_counter, appended, now_pair)}"
        assert max(now_counter, appended, now_pair) <= STEPS
        self.seen[owner] = Sighting(now_counter, appended, now_pair)
        self.reads += 1


def keys_of(owner: int) -> tuple[str, str, str, str]:
    """The counter, log and MULTI pair keys of client ``owner``."""
    return f"c{owner}:n", f"c{owner}:log", f"c{owner}:a", f"c{owner}:b"


def test_many_clients_reading_and_writing(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    with RunningServer(config) as server:
        readers = [Reader() for _ in range(CLIENTS)]
        acknowledged = [0] * CLIENTS

        def client_work(me: int) -> None:
            counter, log, a, b = keys_of(me)
            rng = random.Random(me)
            with server.client() as client:
                for step in range(1, STEPS + 1):
                    assert client.incr(counter) == step
                    assert client.append(log, b"%d," % step) == len(log_of(step))
                    with client.pipeline(transaction=True) as multi:
                        assert multi.set(a, step).set(b, step).execute() == [True, True]
                    acknowledged[me] = step
                    other = rng.randrange(CLIENTS)
                    o_counter, o_log, o_a, o_b = keys_of(other)
                    with client.pipeline(transaction=False) as reads:
                        got = reads.get(counter).get(o_counter).get(o_log) \
                            .mget(o_a, o_b).execute()
                    assert got[0] == b"%d" % step  # its own writes, at once
                    readers[me].observe(other, got[1], got[2], got[3])

        errors = Workers(CLIENTS, client_work, "load").join()
        assert not errors, f"{len(errors)} clients failed; first: {errors[0]!r}"
        assert acknowledged == [STEPS] * CLIENTS
        assert sum(r.reads for r in readers) == CLIENTS * STEPS

        expected = [b"%d" % STEPS, log_of(STEPS), b"%d" % STEPS, b"%d" % STEPS]
        with server.client() as client:
            for owner in range(CLIENTS):
                assert client.mget(keys_of(owner)) == expected
        assert server.stop() == 0
        with cm.connect(tmp_path / "data") as db:  # and durable
            for owner in range(CLIENTS):
                assert [db.kv.get(k) for k in keys_of(owner)] == expected


# -- SIGKILL and graceful stops under load --------------------------------------------

@dataclass
class Writer:
    """A client writing ``{name}:{n}`` = ``v{n}`` (and INCR ``{name}:count`` every
    tenth write) until the server goes away, recording what was acknowledged."""

    name: str
    written: int = 0
    """Keys ``0 .. written - 1`` were acknowledged."""
    counted: int = 0
    """The last acknowledged INCR reply."""
    reached: threading.Event = field(default_factory=threading.Event)

    def run(self, server: RunningServer) -> None:
        """Write until the server goes away (a connection error ends the loop)."""
        try:
            with server.client() as client:
                for n in range(MAX_WRITES):
                    assert client.set(f"{self.name}:{n}", f"v{n}")
                    self.written = n + 1
                    if n % 10 == 0:
                        self.counted = int(client.incr(f"{self.name}:count"))
                    if self.written >= WRITES:
                        self.reached.set()
        except (redis.ConnectionError, redis.TimeoutError):
            pass  # the server went away
        finally:
            self.reached.set()

    def check(self, get: Callable[[str], bytes | None]) -> None:
        """Every acknowledged write is there (the one in flight may be too)."""
        assert self.written >= WRITES
        for n in range(self.written):
            assert get(f"{self.name}:{n}") == f"v{n}".encode(), f"{self.name}:{n} lost"
        count = int(get(f"{self.name}:count") or 0)
        assert self.counted <= count <= self.counted + 1


def start_benchmark(server: RunningServer) -> subprocess.Popen[bytes]:
    """redis-benchmark writing SETs until the server goes away."""
    return subprocess.Popen(
        [REDIS_BENCHMARK, "-p", str(server.resp_port), "-c", str(BENCHMARK_CLIENTS),
         "-n", str(BENCHMARK_REQUESTS), "-t", "set", "-r", "100000", "-d", "100", "-q"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def end_benchmark(benchmark: subprocess.Popen[bytes]) -> None:
    if benchmark.poll() is None:
        benchmark.kill()
    benchmark.wait()


def wait_for_benchmark_writes(server: RunningServer, benchmark: subprocess.Popen[bytes],
                              at_least: int) -> None:
    """Until the server has committed ``at_least`` writes (the benchmark running)."""
    with server.client() as client:
        while int(client.info("stats")["write_batch_commands"]) < at_least:
            assert benchmark.poll() is None, "redis-benchmark stopped early"
            time.sleep(0.05)


def test_sigkill_during_a_redis_benchmark_set_load(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    with RunningServer(config) as server:
        benchmark = start_benchmark(server)
        writer = Writer("mine")
        workers = Workers(1, lambda _: writer.run(server), "kill-writer")
        try:
            writer.reached.wait()
            wait_for_benchmark_writes(server, benchmark, at_least=WRITES * 10)
            assert server.stop(signal.SIGKILL) == -signal.SIGKILL
        finally:
            errors = workers.join()
            end_benchmark(benchmark)
        assert not errors, f"the writer failed: {errors[0]!r}"

        with RunningServer(config) as again:
            opened = next(e for e in again.events if e["msg"] == "database open")
            assert opened["recovery_transactions"] > 0
            with again.client() as client:
                writer.check(client.get)
                assert client.dbsize() > writer.written  # the benchmark's keys too
            assert again.stop() == 0


@pytest.mark.parametrize("how", ["SIGTERM", "coldb shutdown"])
def test_graceful_stop_under_load_loses_nothing(tmp_path: Path, how: str) -> None:
    config = write_config(tmp_path)
    with RunningServer(config) as server:
        benchmark = start_benchmark(server)
        writers = [Writer(f"w{i}") for i in range(WRITERS)]
        workers = Workers(WRITERS, lambda i: writers[i].run(server), "stop-writer")
        try:
            for writer in writers:
                writer.reached.wait()
            if how == "SIGTERM":
                status = server.stop(signal.SIGTERM)
            else:
                stopped = subprocess.run(
                    [sys.executable, "-m", "colibri_mm.cli.main", "shutdown", "--server",
                     server.address], capture_output=True, text=True)
                assert (stopped.returncode, stopped.stdout) == (0, "stopped\n"), stopped.stderr
                status = server.wait()
        finally:
            errors = workers.join()
            end_benchmark(benchmark)
        assert not errors, f"{len(errors)} writers failed; first: {errors[0]!r}"
        assert status == 0
        last = server.log_events()[-1]
        assert (last["msg"], last["clean"]) == ("stopped", True)
        with cm.connect(tmp_path / "data") as db:
            assert db.replayed_transactions == 0  # the stop checkpointed everything
            for writer in writers:
                writer.check(db.kv.get)
