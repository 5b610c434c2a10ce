"""The staging burn-in: a mixed load against a real ``coldb-server`` for ``--minutes``,
sampled every few seconds, with a pass/fail verdict.

This module owns the burn-in: the load, the samples (a CSV and a PNG plot), the
checks of what was acknowledged and the verdict. What runs, all at once:

- **the server**: ``coldb-server`` in a child process on a fresh data directory in
  ``--out``, durability ``full``, Flight on, a checkpoint every 32 MiB of WAL (the
  default 256 MiB would make a short run checkpoint rarely or never);
- **``--clients`` RESP clients** (default 120): threads with their own redis-py
  connection, each owning 16 keys, a counter and a MULTI pair, and mixing SETs of its
  keys, INCRs, MULTI/EXEC pairs, WATCH/MULTI/EXEC transfers between 200 shared
  accounts (a lost WATCH is retried and counted, not an error), GETs of its own keys
  (which must read its last acknowledged value), MGETs of another client's pair
  (never split), MGETs of every account (the total never changes) and SCANs of
  another client's keys (exactly its key set). Every acknowledged write is recorded;
  a write whose reply was lost is recorded as maybe applied;
- **one large transaction** every 20 s: a client process (its own interpreter, so
  that building the commands does not stall the other clients' threads) queues
  100,000 SETs after MULTI and EXECs them (about 2 MB of queued arguments, under
  the default ``max_request_bytes`` of 64 MiB, which also bounds what one MULTI
  queues; the soak sets it explicitly);
- **a Flight client** every 10 s: ``do_put`` of a 50,000-row Arrow table (mode
  ``replace``), then ``do_get`` of it, which must return exactly those rows;
- **one snapshot held open for the first half of the run**: a reader process beside
  the server (``colibri_mm.connect(data_dir, readonly=True)``) opens
  ``db.snapshot()`` once the keys are set up and keeps it open until half time,
  re-reading every client key and account every few seconds: the reads must never
  change (the snapshot is stable) and the accounts must add up. It announces its
  checkpoint in the reader table, so meanwhile the server keeps the WAL segments and
  data pages it may need. (A Flight ``do_get`` read slowly was not used: how long
  it holds the server's lease depends on how far gRPC buffers the stream ahead of
  the client, which the soak does not control; the reader process holds exactly one
  snapshot for a chosen time.)

Every ``--sample-seconds`` (default 2) a row goes to ``soak-<timestamp>.csv``:
acknowledged operations/s and their p95 latency as the clients saw them, the
server's commits/s and commit p95 (``COLDB.STATS``), its RSS (``VmRSS``), CPU
(share of one core) and open file descriptors (``/proc/<pid>/fd``), the machine's
load average, the WAL and data file sizes, the free disk, the errors so far and
whether the snapshot is held. ``soak-<timestamp>.png`` plots
them.

At the end the load stops, every acknowledged value (client keys, counters, pairs,
exact account balances, the 100,000 keys of the last large transaction, the Flight
table) is read back through the server, the server is stopped with SIGTERM (it must
exit 0), and the database is opened directly and checked again.

The verdict fails (exit 1, one line per reason) on: a client error or a consistency
violation (including the snapshot reader's), acknowledged data missing or wrong at
either check, a server exit status other than 0, and a leak: the least-squares slope
of the open descriptors or of the anonymous RSS (``RssAnon``: the heap, not the
resident pages of the memory-mapped data file) over the second half of the samples
(the first half is warm-up), extrapolated over the whole run, above
:data:`FD_LEAK_COUNT` descriptors or :data:`RSS_LEAK_BYTES` (or
:data:`RSS_LEAK_SHARE` of the second half's median, whichever is larger). RSS is
judged from 5-minute runs on (:data:`RSS_JUDGED_SECONDS`): the summary says when
it was not.

Run from the repository root: ``python -m perf.soak --minutes 1`` (CI) or
``--minutes 30`` (release).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import itertools
import json
import multiprocessing
import multiprocessing.connection
import os
import random
import shlex
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.flight as flight
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

import colibri_mm as cm
from colibri_mm.cli.server_client import ServerClient
from colibri_mm.cli.server_commands import server_stats
from perf.bench_kv import MB
from perf.bench_server import Server, free_port
from perf.run import git_revision

DEFAULT_CLIENTS = 120
KEYS_PER_CLIENT = 16
ACCOUNTS = 200
ACCOUNT_START = 1000
TOTAL = ACCOUNTS * ACCOUNT_START
BIG_COMMANDS = 100_000
"""SETs queued by one large MULTI/EXEC."""
BIG_PAUSE_SECONDS = 20.0
FLIGHT_ROWS = 50_000
FLIGHT_PAUSE_SECONDS = 10.0
FLIGHT_TABLE = "soak_import"
SNAPSHOT_CHECK_SECONDS = 5.0
"""Seconds between two re-reads of the held snapshot."""
TRANSFER_ATTEMPTS = 20
"""WATCH conflicts one transfer may meet before it counts as an error."""
CHECKPOINT_WAL_BYTES = 32 << 20
MAX_REQUEST_BYTES = 64 << 20
SOCKET_TIMEOUT = 300.0
"""Seconds a client waits for a reply (a large EXEC on a loaded machine is slow)."""
SETUP_CHUNK = 1000
"""Keys per MSET / MGET of the set-up and the checks."""
RSS_LEAK_BYTES = 64 * MB
"""Fitted growth of anonymous RSS over the run above which (and above
:data:`RSS_LEAK_SHARE`) the soak fails."""
RSS_LEAK_SHARE = 0.25
"""... as a share of the second half's median anonymous RSS."""
RSS_JUDGED_SECONDS = 300.0
"""The shortest run whose RSS is judged. The server's heap grows step by step with
the first large MULTIs, checkpoints and imports (measured here: +100 MB in the second
half of a 1-minute run, flat after about 2.5 minutes in 5- and 30-minute runs), so a
shorter run ends inside that warm-up and cannot tell it from a leak."""
FD_LEAK_COUNT = 16
"""Fitted growth of open descriptors over the run above which the soak fails."""
LEAK_MIN_SAMPLES = 5
"""Samples the second half needs for a fit (fewer: the leak check says so and fails)."""
ERRORS_SHOWN = 10
"""Distinct error messages the verdict quotes."""

OPERATIONS = {"set": 30, "incr": 10, "pair": 10, "transfer": 10, "get_own": 15,
              "pair_other": 15, "accounts": 5, "scan": 5}
"""Relative weights of each client's operations."""


class ConsistencyError(Exception):
    """A read that contradicts what was acknowledged (a consistency failure)."""


def client_keys(owner: int) -> list[bytes]:
    """Every key of client ``owner``: its own keys, counter and MULTI pair."""
    return [b"s%d:k%d" % (owner, j) for j in range(KEYS_PER_CLIENT)] + \
        [b"s%d:n" % owner, b"s%d:a" % owner, b"s%d:b" % owner]


def account_key(i: int) -> bytes:
    return b"acct:%03d" % i


ACCOUNT_KEYS = [account_key(i) for i in range(ACCOUNTS)]


def big_key(i: int) -> bytes:
    return b"big:%06d" % i


def big_values(generation: int) -> list[bytes]:
    """What the large transaction's keys hold after ``generation``."""
    return [b"%d:%d" % (generation, i) for i in range(BIG_COMMANDS)]


def number(value: bytes | str | None) -> int:
    """A counter or balance read back (a missing one is a consistency failure)."""
    if value is None:
        raise ConsistencyError("a number read back is missing")
    return int(value)


def connect_resp(port: int) -> redis.Redis:
    """A client that never retries a command by itself (a retried INCR could apply
    twice; the soak sees every failure)."""
    return redis.Redis(port=port, socket_timeout=SOCKET_TIMEOUT, retry=Retry(NoBackoff(), 0))


# -- what was acknowledged ------------------------------------------------------------

@dataclass
class Ledger:
    """What one client had acknowledged: the value of each of its keys, values that
    may have been applied (a write whose reply never came), and for the shared
    accounts the sum of its acknowledged transfers."""

    acked: dict[bytes, bytes] = field(default_factory=dict)
    maybe: dict[bytes, set[bytes]] = field(default_factory=dict)
    account_deltas: dict[int, int] = field(default_factory=dict)
    unsure_accounts: set[int] = field(default_factory=set)
    pending: list[tuple[bytes, bytes]] = field(default_factory=list)
    pending_accounts: tuple[int, ...] = ()

    def begin(self, *writes: tuple[bytes, bytes]) -> None:
        self.pending = list(writes)

    def commit(self) -> None:
        self.acked.update(self.pending)
        self.pending = []

    def transferred(self, source: int, target: int, amount: int) -> None:
        self.account_deltas[source] = self.account_deltas.get(source, 0) - amount
        self.account_deltas[target] = self.account_deltas.get(target, 0) + amount
        self.pending_accounts = ()

    def abandon(self) -> None:
        """The pending writes' outcome is unknown: either value may be there (and
        the accounts of a transfer in flight are no longer known exactly)."""
        for key, value in self.pending:
            self.maybe.setdefault(key, set()).add(value)
        self.unsure_accounts.update(self.pending_accounts)
        self.pending, self.pending_accounts = [], ()

    def allowed(self, key: bytes) -> set[bytes]:
        return {self.acked[key], *self.maybe.get(key, ())}


@dataclass
class Generations:
    """A writer of numbered generations (the large MULTI, the Flight import): the last
    acknowledged one, and those whose reply was lost."""

    acked: int = 0
    maybe: set[int] = field(default_factory=set)

    def allowed(self) -> set[int]:
        return {self.acked, *self.maybe}


class Tally:
    """Counts shared by every thread: operations and their latencies in the current
    sample window, errors by message, expected retries."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latencies: list[float] = []
        self.errors: dict[str, int] = {}
        self.violations: dict[str, int] = {}
        self.watch_retries = 0

    def done(self, seconds: float) -> None:
        with self._lock:
            self._latencies.append(seconds)

    def take_window(self) -> list[float]:
        with self._lock:
            window, self._latencies = self._latencies, []
        return window

    def error(self, what: str, e: BaseException) -> None:
        target = self.violations if isinstance(e, ConsistencyError) else self.errors
        message = f"{what}: {type(e).__name__}: {e}"[:300]
        with self._lock:
            target[message] = target.get(message, 0) + 1

    def retried(self) -> None:
        with self._lock:
            self.watch_retries += 1

    def error_count(self) -> int:
        with self._lock:
            return sum(self.errors.values()) + sum(self.violations.values())


# -- the load -------------------------------------------------------------------------

class Client:
    """One RESP client of the mixed load (a thread)."""

    def __init__(self, me: int, clients: int, port: int, tally: Tally,
                 stop: threading.Event) -> None:
        self.me = me
        self.clients = clients
        self.keys = client_keys(me)
        self.ledger = Ledger(acked={key: b"0" for key in self.keys})
        self.sequence = 0
        self.rng = random.Random(me)
        self.redis = connect_resp(port)
        self.tally = tally
        self.stop = stop
        self.operations: dict[str, Callable[[], None]] = {
            "set": self.set_own, "incr": self.incr, "pair": self.pair,
            "transfer": self.transfer, "get_own": self.get_own,
            "pair_other": self.pair_other, "accounts": self.accounts, "scan": self.scan}
        self.names = list(OPERATIONS)
        self.weights = list(OPERATIONS.values())
        self.thread = threading.Thread(target=self.run, name=f"soak-client-{me}")

    def run(self) -> None:
        with self.redis:
            while not self.stop.is_set():
                name = self.rng.choices(self.names, self.weights)[0]
                start = time.perf_counter()
                try:
                    self.operations[name]()
                except (redis.RedisError, ConsistencyError) as e:
                    self.ledger.abandon()
                    self.tally.error(name, e)
                else:
                    self.tally.done(time.perf_counter() - start)

    def next_value(self) -> bytes:
        """A value of this client's next write: unique, 8 to 400 bytes."""
        self.sequence += 1
        tag = b"%d:%d:" % (self.me, self.sequence)
        return tag + b"x" * self.rng.randrange(max(0, 8 - len(tag)), 400 - len(tag))

    def other(self) -> int:
        return self.rng.randrange(self.clients)

    def set_own(self) -> None:
        key, value = self.keys[self.rng.randrange(KEYS_PER_CLIENT)], self.next_value()
        self.ledger.begin((key, value))
        self.redis.set(key, value)
        self.ledger.commit()

    def incr(self) -> None:
        key = self.keys[KEYS_PER_CLIENT]
        expected = int(self.ledger.acked[key]) + 1
        self.ledger.begin((key, b"%d" % expected))
        got = self.redis.incr(key)
        self.ledger.commit()
        if got != expected:
            raise ConsistencyError(f"INCR of {key!r} gave {got}, expected {expected}")

    def pair(self) -> None:
        a, b = self.keys[-2:]
        value = self.next_value()
        self.ledger.begin((a, value), (b, value))
        with self.redis.pipeline(transaction=True) as multi:
            multi.set(a, value)
            multi.set(b, value)
            replies = multi.execute()
        self.ledger.commit()
        if replies != [True, True]:
            raise ConsistencyError(f"MULTI of the pair replied {replies}")

    def transfer(self) -> None:
        """Move an amount between two accounts with WATCH/MULTI/EXEC (retried when a
        watched account changed meanwhile)."""
        source, target = self.rng.sample(range(ACCOUNTS), 2)
        keys = account_key(source), account_key(target)
        with self.redis.pipeline(transaction=True) as pipe:
            for _ in range(TRANSFER_ATTEMPTS):
                try:
                    pipe.watch(*keys)  # type: ignore[no-untyped-call]
                    have, other = (number(v) for v in pipe.mget(keys))
                    amount = self.rng.randint(0, min(have, 50))
                    pipe.multi()
                    pipe.set(keys[0], have - amount)
                    pipe.set(keys[1], other + amount)
                    self.ledger.pending_accounts = (source, target)
                    pipe.execute()
                except redis.WatchError:
                    self.ledger.pending_accounts = ()
                    self.tally.retried()
                    continue
                self.ledger.transferred(source, target, amount)
                return
        raise ConsistencyError(f"a transfer lost its WATCH {TRANSFER_ATTEMPTS} times in a row")

    def get_own(self) -> None:
        key = self.keys[self.rng.randrange(len(self.keys))]
        got = self.redis.get(key)
        if got not in self.ledger.allowed(key):
            raise ConsistencyError(f"GET {key!r} read {got!r:.60}, not its last acknowledged value")

    def pair_other(self) -> None:
        a, b = client_keys(self.other())[-2:]
        got = self.redis.mget(a, b)
        if got[0] != got[1]:
            raise ConsistencyError(f"a MULTI pair read split: {got[0]!r:.40} / {got[1]!r:.40}")

    def accounts(self) -> None:
        got = sum(number(v) for v in self.redis.mget(ACCOUNT_KEYS))
        if got != TOTAL:
            raise ConsistencyError(f"the accounts add up to {got}, not {TOTAL}")

    def scan(self) -> None:
        owner = self.other()
        got = set(self.redis.scan_iter(match=b"s%d:*" % owner, count=100))
        if got != set(client_keys(owner)):
            raise ConsistencyError(f"SCAN of client {owner}'s keys returned {len(got)} keys, "
                            f"expected {len(client_keys(owner))}")


def flight_table(generation: int) -> pa.Table:
    """The rows of the Flight import of ``generation``."""
    ids = np.arange(FLIGHT_ROWS, dtype=np.int64)
    return pa.table({"id": ids, "generation": np.full(FLIGHT_ROWS, generation, np.int64),
                     "v": ids * 0.5 + generation})


def flight_table_problem(table: pa.Table, allowed: set[int]) -> str | None:
    """What is wrong with ``table`` read back, if it is not the import of one of the
    ``allowed`` generations."""
    generations = set(table.column("generation").to_pylist()) if table.num_rows else set()
    if len(generations) != 1 or not generations <= allowed:
        return f"the Flight table holds generations {sorted(generations)[:5]}, " \
               f"expected one of {sorted(allowed)}"
    if not table.sort_by("id").equals(flight_table(generations.pop())):
        return "the Flight table's rows differ from the import"
    return None


class FlightImports:
    """A Flight client replacing :data:`FLIGHT_TABLE` (``do_put``) and reading it back
    (``do_get``) every :data:`FLIGHT_PAUSE_SECONDS`."""

    def __init__(self, location: str, tally: Tally, stop: threading.Event) -> None:
        self.location = location
        self.generations = Generations()
        self.tally = tally
        self.stop = stop
        self.thread = threading.Thread(target=self.run, name="soak-flight")

    def run(self) -> None:
        client = flight.connect(self.location)
        try:
            for generation in itertools.count(1):
                try:
                    self.put(client, generation)
                    problem = flight_table_problem(read_flight_table(client),
                                                   {generation})
                    if problem is not None:
                        raise ConsistencyError(problem)
                except (flight.FlightError, ConsistencyError) as e:
                    self.tally.error("Flight", e)
                if self.stop.wait(FLIGHT_PAUSE_SECONDS):
                    return
        finally:
            client.close()

    def put(self, client: Any, generation: int) -> None:
        table = flight_table(generation)
        command = json.dumps({"table": FLIGHT_TABLE, "mode": "replace", "primary_key": None})
        self.generations.maybe.add(generation)
        writer, reply = client.do_put(flight.FlightDescriptor.for_command(command),
                                      table.schema)
        with writer:
            writer.write_table(table)
            writer.done_writing()
            answer = json.loads(reply.read().to_pybytes())
        if answer["rows"] != FLIGHT_ROWS:
            raise ConsistencyError(f"do_put imported {answer['rows']} rows of {FLIGHT_ROWS}")
        self.generations.maybe.discard(generation)
        self.generations.acked = generation


def read_flight_table(client: Any) -> pa.Table:
    ticket = flight.Ticket(json.dumps({"table": FLIGHT_TABLE, "columns": None,
                                       "filter": None}))
    return client.do_get(ticket).read_all()


# -- child processes: the large transactions, the snapshot held open ----------------

SPAWN = multiprocessing.get_context("spawn")


class ChildProcess:
    """A spawned process of the soak (its own interpreter, so its work does not hold
    the load's GIL) that reports tuples over a pipe; a thread hands each to
    :meth:`received`."""

    def __init__(self, name: str, target: Callable[..., None], *args: object) -> None:
        receiving, sending = multiprocessing.Pipe(duplex=False)
        self.process = SPAWN.Process(target=target, args=(*args, sending), name=name,
                                     daemon=True)  # ended with the soak if it fails
        self.process.start()
        sending.close()
        self.listener = threading.Thread(target=self._listen, args=(receiving,),
                                         name=f"{name}-listener")
        self.listener.start()

    def _listen(self, receiving: multiprocessing.connection.Connection) -> None:
        with receiving:
            while True:
                try:
                    message = receiving.recv()
                except EOFError:  # the process exited
                    return
                self.received(message)

    def received(self, message: tuple[Any, ...]) -> None:
        raise NotImplementedError

    def finish(self) -> int | None:
        """Wait for the process; its exit status."""
        self.process.join()
        self.listener.join()
        return self.process.exitcode


def run_large_transactions(port: int, stop: Any,
                           report: multiprocessing.connection.Connection) -> None:
    """In a client process: queue :data:`BIG_COMMANDS` SETs after MULTI and EXEC them,
    every :data:`BIG_PAUSE_SECONDS` until ``stop`` is set; report ``("acked",
    generation, seconds)`` or ``("failed", generation, error)`` for each."""
    with connect_resp(port) as client:
        for generation in itertools.count(1):
            start = time.perf_counter()
            try:
                with client.pipeline(transaction=True) as multi:
                    for i, value in enumerate(big_values(generation)):
                        multi.set(big_key(i), value)
                    replies = multi.execute()
                if replies != [True] * BIG_COMMANDS:
                    raise ConsistencyError("EXEC replied other than OK")
            except (redis.RedisError, ConsistencyError) as e:
                report.send(("failed", generation, e))
            else:
                report.send(("acked", generation, time.perf_counter() - start))
            if stop.wait(BIG_PAUSE_SECONDS):
                return


class LargeTransactions(ChildProcess):
    """The process of :func:`run_large_transactions`: what it had acknowledged."""

    def __init__(self, port: int, tally: Tally, stop: Any) -> None:
        self.generations = Generations()
        self.seconds: list[float] = []
        self.tally = tally
        super().__init__("soak-large-multi", run_large_transactions, port, stop)

    def received(self, message: tuple[Any, ...]) -> None:
        outcome, generation, detail = message
        if outcome == "acked":
            self.generations.acked = generation
            self.seconds.append(detail)
        else:
            self.generations.maybe.add(generation)
            self.tally.error("large MULTI", detail)


def snapshot_view(snap: Any) -> dict[bytes, bytes]:
    """Every client key and account as ``snap`` reads them."""
    return {**dict(snap.kv.scan(prefix=b"s")), **dict(snap.kv.scan(prefix=b"acct:"))}


def hold_snapshot(data_dir: str, seconds: float,
                  report: multiprocessing.connection.Connection) -> None:
    """In a reader process: open ``data_dir`` read-only beside the server, hold one
    snapshot for ``seconds`` re-reading it every :data:`SNAPSHOT_CHECK_SECONDS`, and
    report ``("held", keys)``, then ``("checked", problem or None)`` after each
    re-read, then ``("released",)``."""
    with cm.connect(data_dir, readonly=True) as db, db.snapshot() as snap:
        first = snapshot_view(snap)
        report.send(("held", len(first)))
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(SNAPSHOT_CHECK_SECONDS, left))
            again = snapshot_view(snap)
            balance = sum(int(v) for k, v in again.items() if k.startswith(b"acct:"))
            changed = sum(again.get(k) != v for k, v in first.items())
            report.send(("checked", f"the held snapshot changed: {changed} keys read "
                                    f"differently, accounts add up to {balance}"
                         if again != first or balance != TOTAL else None))
    report.send(("released",))


class SnapshotHolder(ChildProcess):
    """The reader process of :func:`hold_snapshot`: whether it holds its snapshot, and
    what its re-reads found."""

    def __init__(self, data_dir: Path, seconds: float) -> None:
        self.keys = 0
        self.checks = 0
        self.problems: list[str] = []
        self.taken = threading.Event()
        self.held = False
        super().__init__("soak-snapshot", hold_snapshot, str(data_dir), seconds)

    def received(self, message: tuple[Any, ...]) -> None:
        if message[0] == "held":
            self.keys, self.held = message[1], True
            self.taken.set()
        elif message[0] == "checked":
            self.checks += 1
            if message[1] is not None:
                self.problems.append(message[1])
        else:
            self.held = False

    def wait_until_held(self) -> None:
        while not self.taken.wait(0.1):
            if not self.process.is_alive():
                raise RuntimeError("the snapshot reader exited before opening its snapshot")

    def verdict(self) -> list[str]:
        """Reasons the snapshot reader failed, after :meth:`finish`."""
        status = self.process.exitcode
        if status != 0:
            return [*self.problems, f"the snapshot reader exited with {status}"]
        if self.checks == 0:
            return ["the snapshot reader never re-read its snapshot"]
        return self.problems[:ERRORS_SHOWN]


# -- samples --------------------------------------------------------------------------

@dataclass
class Sample:
    """One row of the CSV."""

    seconds: float
    ops_per_second: float
    p95_ms: float
    commits_per_second: float
    commit_p95_ms: float
    rss_mb: float
    rss_anon_mb: float
    server_cpu_percent: float
    load_average: float
    open_fds: int
    wal_mb: float
    data_mb: float
    disk_free_gb: float
    errors: int
    snapshot_held: int


def p95(values: Sequence[float]) -> float:
    return float(np.percentile(values, 95)) if values else 0.0


def memory_mb(pid: int) -> tuple[float, float]:
    """``VmRSS`` and ``RssAnon`` of process ``pid`` in MB: all its resident memory,
    and the part that is not a mapped file (the heap, where a leak shows; resident
    pages of the memory-mapped data file are cache the kernel can reclaim)."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "RssAnon"):
            found[name] = int(value.split()[0]) * 1024 / MB
    return found["VmRSS"], found["RssAnon"]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` so far."""
    fields_after_name = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields_after_name[11]) + int(fields_after_name[12])) / os.sysconf("SC_CLK_TCK")


def file_sizes(paths: Iterator[Path]) -> int:
    """Bytes in ``paths`` (a file removed meanwhile counts 0)."""
    total = 0
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            total += path.stat().st_size
    return total


class Sampler:
    """A thread writing a :class:`Sample` to the CSV every ``interval`` seconds."""

    def __init__(self, server: Server, data_dir: Path, csv_path: Path, interval: float,
                 tally: Tally, holder: SnapshotHolder, stop: threading.Event) -> None:
        self.server_client = ServerClient(connect_resp(server.port))
        self.pid = server.process.pid
        self.data_dir = data_dir
        self.csv_path = csv_path
        self.interval = interval
        self.tally = tally
        self.holder = holder
        self.stop = stop
        self.samples: list[Sample] = []
        self.thread = threading.Thread(target=self.run, name="soak-sampler")

    def run(self) -> None:
        start = last = time.monotonic()
        self.cpu = cpu_seconds(self.pid)
        server_stats(self.server_client)  # starts the server's rate interval
        with self.csv_path.open("w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow([f.name for f in fields(Sample)])
            while not self.stop.wait(self.interval):
                now = time.monotonic()
                sample = self.sample(now - start, now - last)
                last = now
                self.samples.append(sample)
                writer.writerow([round(v, 3) if isinstance(v, float) else v
                                 for v in vars(sample).values()])
                file.flush()

    def sample(self, seconds: float, window: float) -> Sample:
        latencies = self.tally.take_window()
        metrics = server_stats(self.server_client)["metrics"]
        cpu, self.cpu = self.cpu, cpu_seconds(self.pid)
        rss, rss_anon = memory_mb(self.pid)
        return Sample(
            seconds=seconds,
            ops_per_second=len(latencies) / window,
            p95_ms=p95(latencies) * 1000,
            commits_per_second=metrics["rates"].get("colibri_commits_total") or 0.0,
            commit_p95_ms=(metrics["commit_latency_seconds"].get("p95") or 0.0) * 1000,
            rss_mb=rss,
            rss_anon_mb=rss_anon,
            server_cpu_percent=(self.cpu - cpu) / window * 100,
            load_average=os.getloadavg()[0],
            open_fds=len(os.listdir(f"/proc/{self.pid}/fd")),
            wal_mb=file_sizes((self.data_dir / "wal").glob("*.wal")) / MB,
            data_mb=file_sizes(iter([self.data_dir / "data.pages"])) / MB,
            disk_free_gb=shutil.disk_usage(self.data_dir).free / 1e9,
            errors=self.tally.error_count(),
            snapshot_held=int(self.holder.held))


def plot(samples: Sequence[Sample], path: Path, title: str) -> None:
    """The samples as a PNG: one panel per figure against minutes, with a line where
    the held snapshot was released."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [s.seconds / 60 for s in samples]
    released = next((s.seconds / 60 for before, s in itertools.pairwise(samples)
                     if before.snapshot_held and not s.snapshot_held), None)
    panels: list[tuple[str, list[tuple[str, list[float]]]]] = [
        ("operations/s", [("client ops/s", [s.ops_per_second for s in samples]),
                          ("server commits/s", [s.commits_per_second for s in samples])]),
        ("p95 ms", [("client p95", [s.p95_ms for s in samples]),
                    ("commit p95", [s.commit_p95_ms for s in samples])]),
        ("RSS MB", [("server RSS", [s.rss_mb for s in samples]),
                    ("of which anonymous", [s.rss_anon_mb for s in samples])]),
        ("open fds", [("server fds", [float(s.open_fds) for s in samples])]),
        ("CPU", [("server CPU % of a core", [s.server_cpu_percent for s in samples]),
                 ("load average x 10", [s.load_average * 10 for s in samples])]),
        ("MB", [("WAL", [s.wal_mb for s in samples]),
                ("data file", [s.data_mb for s in samples])]),
        ("free disk GB", [("free", [s.disk_free_gb for s in samples])]),
    ]
    figure, axes = plt.subplots(len(panels), 1, sharex=True, figsize=(10, 16))
    for ax, (label, lines) in zip(axes, panels, strict=True):
        for name, values in lines:
            ax.plot(minutes, values, label=name)
        if released is not None:
            ax.axvline(released, color="grey", linestyle=":",
                       label="snapshot released")
        ax.set_ylabel(label)
        ax.legend(loc="upper left", fontsize="small")
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("minutes")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


# -- verdict --------------------------------------------------------------------------

def second_half(samples: Sequence[Sample], duration: float) -> list[Sample]:
    """The samples of the second half of a run of ``duration`` seconds (the first is
    warm-up; see the module docstring)."""
    return [s for s in samples if s.seconds >= duration / 2]


def fitted_growth(samples: Sequence[Sample], column: str, duration: float) -> float:
    """The least-squares slope of the ``column`` of ``samples`` against their
    seconds, times ``duration``."""
    return float(np.polyfit([s.seconds for s in samples],
                            [float(getattr(s, column)) for s in samples], 1)[0]) * duration


def leaks(samples: Sequence[Sample], duration: float) -> list[str]:
    """A reason for each figure that grew steadily over the second half of the run.
    RSS is judged only in runs of at least :data:`RSS_JUDGED_SECONDS`."""
    half = second_half(samples, duration)
    if len(half) < LEAK_MIN_SAMPLES:
        return [f"leak check: only {len(half)} samples in the second half (need "
                f"{LEAK_MIN_SAMPLES}); lower --sample-seconds"]
    checks = [("open descriptors", "", "open_fds", float(FD_LEAK_COUNT))]
    if duration >= RSS_JUDGED_SECONDS:
        median = statistics.median(s.rss_anon_mb for s in half)
        checks.append(("anonymous RSS", " MB", "rss_anon_mb",
                       max(RSS_LEAK_BYTES / MB, RSS_LEAK_SHARE * median)))
    return [f"leak: {name} grew steadily: +{growth:.1f}{unit} over the run, fitted on "
            f"the second half (limit {limit:.1f}{unit})"
            for name, unit, column, limit in checks
            if (growth := fitted_growth(half, column, duration)) > limit]


@dataclass
class Expected:
    """Every acknowledged value at the end of the load."""

    values: dict[bytes, set[bytes]]
    balances: dict[bytes, int]
    """Exact balance of each account nobody is unsure about."""
    big: set[int]
    flight: set[int]

    @classmethod
    def of(cls, clients: Sequence[Client], large: LargeTransactions,
           imports: FlightImports) -> Expected:
        values = {key: c.ledger.allowed(key) for c in clients for key in c.keys}
        unsure = set().union(*(c.ledger.unsure_accounts for c in clients))
        balances = {account_key(i): ACCOUNT_START + sum(c.ledger.account_deltas.get(i, 0)
                                                        for c in clients)
                    for i in range(ACCOUNTS) if i not in unsure}
        return cls(values, balances, large.generations.allowed(),
                   imports.generations.allowed())

    def missing(self, get_many: Callable[[list[bytes]], list[bytes | None]],
                where: str) -> list[str]:
        """Reasons acknowledged data read through ``get_many`` is missing or wrong."""
        problems: list[str] = []

        def read(keys: list[bytes]) -> Iterator[tuple[bytes, bytes | None]]:
            for i in range(0, len(keys), SETUP_CHUNK):
                chunk = keys[i:i + SETUP_CHUNK]
                yield from zip(chunk, get_many(chunk), strict=True)

        wrong = [k for k, v in read(list(self.values)) if v not in self.values[k]]
        if wrong:
            problems.append(f"{where}: {len(wrong)} client keys lack their last "
                            f"acknowledged value (first {wrong[0]!r})")
        balances = dict(read(ACCOUNT_KEYS))
        off = [k for k, v in self.balances.items() if int(balances[k] or -1) != v]
        total = sum(int(v or 0) for v in balances.values())
        if off or total != TOTAL:
            problems.append(f"{where}: {len(off)} account balances differ from the "
                            f"acknowledged transfers; they add up to {total} of {TOTAL}")
        big = [v for _, v in read([big_key(i) for i in range(BIG_COMMANDS)])]
        if not any(big == (big_values(g) if g else [None] * BIG_COMMANDS)
                   for g in self.big):
            problems.append(f"{where}: the large transaction's keys are not all those of "
                            f"one acknowledged generation ({sorted(self.big)}); first "
                            f"{big[0]!r}, last {big[-1]!r}")
        return problems


def check_flight_table(table: pa.Table, allowed: set[int], where: str) -> list[str]:
    problem = flight_table_problem(table, allowed)
    return [] if problem is None else [f"{where}: {problem}"]


# -- the run --------------------------------------------------------------------------

@dataclass
class Run:
    """Where the run writes and how big it is."""

    minutes: float
    clients: int
    out: Path
    sample_seconds: float

    @property
    def seconds(self) -> float:
        return self.minutes * 60


def start_server(directory: Path) -> tuple[Server, int]:
    """``coldb-server`` on a fresh database in ``directory / "data"``; and its Flight
    port."""
    port, flight_port = free_port(), free_port()
    config = {
        "data_dir": str(directory / "data"),
        "server": {"resp_port": port, "http_port": free_port(), "flight_port": flight_port,
                   "max_request_bytes": MAX_REQUEST_BYTES, "shutdown_timeout_seconds": 120},
        "storage": {"durability": "full", "checkpoint_wal_bytes": CHECKPOINT_WAL_BYTES},
        "logging": {"file": str(directory / "server.log"), "format": "json"},
    }
    path = directory / "colibridb.conf.json"
    path.write_text(json.dumps(config, indent=2))
    server = Server([sys.executable, "-m", "colibri_mm.server.main", "--config", str(path)],
                    port, directory / "server.stdout")
    return server, flight_port


def set_up(port: int, clients: int) -> None:
    """Every client key at ``0`` and every account at :data:`ACCOUNT_START`."""
    values = {key: b"0" for me in range(clients) for key in client_keys(me)}
    values.update({key: b"%d" % ACCOUNT_START for key in ACCOUNT_KEYS})
    items = list(values.items())
    with connect_resp(port) as client:
        for i in range(0, len(items), SETUP_CHUNK):
            client.mset(dict(items[i:i + SETUP_CHUNK]))


@dataclass
class Outcome:
    """What the verdict and the summary need."""

    samples: list[Sample]
    tally: Tally
    holder: SnapshotHolder
    large: LargeTransactions
    imports: FlightImports
    problems: list[str]
    exit_status: int


def soak(run: Run, stamp: str) -> Outcome:
    """The load, its samples, and the checks after it (the server is killed if they
    raise)."""
    directory = run.out / f"soak-{stamp}"
    directory.mkdir(parents=True)
    server, flight_port = start_server(directory)
    try:
        return load_and_check(run, stamp, server, flight_port, directory / "data")
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


def load_and_check(run: Run, stamp: str, server: Server, flight_port: int,
                   data_dir: Path) -> Outcome:
    set_up(server.port, run.clients)
    holder = SnapshotHolder(data_dir, run.seconds / 2)
    holder.wait_until_held()

    tally, stop = Tally(), threading.Event()
    clients = [Client(me, run.clients, server.port, tally, stop) for me in range(run.clients)]
    large_stop = SPAWN.Event()
    large = LargeTransactions(server.port, tally, large_stop)
    imports = FlightImports(f"grpc://127.0.0.1:{flight_port}", tally, stop)
    sampler = Sampler(server, data_dir, run.out / f"soak-{stamp}.csv", run.sample_seconds,
                      tally, holder, stop)
    threads = [sampler.thread, imports.thread, *(c.thread for c in clients)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(run.seconds)
    finally:
        stop.set()
        large_stop.set()
        for thread in threads:
            if thread.is_alive():
                thread.join()
    problems = [] if (status := large.finish()) == 0 else \
        [f"the large-MULTI client exited with {status}"]
    holder.finish()

    expected = Expected.of(clients, large, imports)
    with connect_resp(server.port) as client:
        problems += expected.missing(lambda keys: client.mget(keys), "through the server")
    client_of_flight = flight.connect(f"grpc://127.0.0.1:{flight_port}")
    problems += check_flight_table(read_flight_table(client_of_flight), expected.flight,
                                   "through the server")
    client_of_flight.close()
    exit_status = server.stop()
    with cm.connect(data_dir) as db:
        problems += expected.missing(lambda keys: [db.kv.get(k) for k in keys],
                                     "reopened directly")
        problems += check_flight_table(db.table(FLIGHT_TABLE).to_arrow_table(),
                                       expected.flight, "reopened directly")
    return Outcome(sampler.samples, tally, holder, large, imports, problems, exit_status)


def verdict(outcome: Outcome, run: Run) -> list[str]:
    """One reason per failure; empty when the soak passed."""
    reasons = list(outcome.problems)
    tally = outcome.tally
    for kind, counts in (("client errors", tally.errors),
                         ("consistency violations", tally.violations)):
        if counts:
            shown = "; ".join(f"{n} x {m}" for m, n in list(counts.items())[:ERRORS_SHOWN])
            reasons.append(f"{sum(counts.values())} {kind}: {shown}")
    reasons += outcome.holder.verdict()
    if outcome.exit_status != 0:
        reasons.append(f"the server exited with {outcome.exit_status} on SIGTERM")
    if not outcome.large.seconds:
        reasons.append("no large MULTI/EXEC was acknowledged")
    if outcome.imports.generations.acked == 0:
        reasons.append("no Flight import was acknowledged")
    reasons += leaks(outcome.samples, run.seconds)
    return reasons


def figures(outcome: Outcome, run: Run) -> dict[str, Any]:
    """The figures of the run by name (what the summary prints and ``--record``
    keeps); empty when there were no samples."""
    s = outcome.samples
    if not s:
        return {}
    ops = [x.ops_per_second for x in s]
    p95s = [x.p95_ms for x in s]
    half = second_half(s, run.seconds) or s
    fits = len(half) >= LEAK_MIN_SAMPLES
    large = outcome.large.seconds
    return {
        "minutes": run.minutes, "clients": run.clients, "samples": len(s),
        "sample_seconds": run.sample_seconds,
        "tps_mean": statistics.fmean(ops), "tps_min": min(ops),
        "commits_per_second_mean": statistics.fmean(x.commits_per_second for x in s),
        "p95_ms_median": statistics.median(p95s), "p95_ms_max": max(p95s),
        "commit_p95_ms_median": statistics.median(x.commit_p95_ms for x in s),
        "rss_mb_start": s[0].rss_mb, "rss_mb_end": s[-1].rss_mb,
        "rss_mb_max": max(x.rss_mb for x in s),
        "rss_anon_mb_start": s[0].rss_anon_mb, "rss_anon_mb_end": s[-1].rss_anon_mb,
        "rss_anon_mb_second_half_min": min(x.rss_anon_mb for x in half),
        "rss_anon_mb_second_half_max": max(x.rss_anon_mb for x in half),
        "rss_anon_mb_fitted_growth":
            fitted_growth(half, "rss_anon_mb", run.seconds) if fits else None,
        "fds_start": s[0].open_fds, "fds_end": s[-1].open_fds,
        "fds_max": max(x.open_fds for x in s),
        "fds_fitted_growth": fitted_growth(half, "open_fds", run.seconds) if fits else None,
        "server_cpu_percent_mean": statistics.fmean(x.server_cpu_percent for x in s),
        "load_average_mean": statistics.fmean(x.load_average for x in s),
        "cpus": os.cpu_count(),
        "wal_mb_end": s[-1].wal_mb, "wal_mb_max": max(x.wal_mb for x in s),
        "data_mb_end": s[-1].data_mb, "data_mb_max": max(x.data_mb for x in s),
        "disk_free_gb_end": s[-1].disk_free_gb,
        "large_transactions": len(large),
        "large_seconds_mean": statistics.fmean(large) if large else None,
        "large_seconds_max": max(large) if large else None,
        "flight_imports": outcome.imports.generations.acked,
        "snapshot_held_seconds": run.seconds / 2, "snapshot_keys": outcome.holder.keys,
        "snapshot_rereads": outcome.holder.checks,
        "errors": outcome.tally.error_count(), "watch_retries": outcome.tally.watch_retries,
        "exit_status": outcome.exit_status,
    }


def summary(f: dict[str, Any]) -> str:
    """The :func:`figures` of the run in a few lines."""
    if not f:
        return "no samples"
    large = f"{f['large_transactions']} acknowledged"
    if f["large_transactions"]:
        large += f", {f['large_seconds_mean']:.1f} s mean, {f['large_seconds_max']:.1f} s max"
    return "\n".join([
        f"soak {f['minutes']:g} min, {f['clients']} clients + a large-MULTI client + a "
        f"Flight client + a snapshot reader; {f['samples']} samples every "
        f"{f['sample_seconds']:g} s",
        f"TPS (acknowledged operations/s): mean {f['tps_mean']:,.0f}, "
        f"min {f['tps_min']:,.0f}; server commits/s mean {f['commits_per_second_mean']:,.0f}",
        f"client p95 latency: median {f['p95_ms_median']:.1f} ms, "
        f"max {f['p95_ms_max']:.1f} ms; commit p95 median "
        f"{f['commit_p95_ms_median']:.1f} ms",
        f"RSS {f['rss_mb_start']:.0f} MB -> {f['rss_mb_end']:.0f} MB (max "
        f"{f['rss_mb_max']:.0f}), anonymous {f['rss_anon_mb_start']:.0f} MB -> "
        f"{f['rss_anon_mb_end']:.0f} MB; fds {f['fds_start']} -> {f['fds_end']} "
        f"(max {f['fds_max']})",
        f"machine: server CPU mean {f['server_cpu_percent_mean']:.0f}% "
        f"of one core, 1-minute load average mean "
        f"{f['load_average_mean']:.1f} on {f['cpus']} CPUs",
        f"WAL {f['wal_mb_end']:.1f} MB (max {f['wal_mb_max']:.1f}); data file "
        f"{f['data_mb_end']:.1f} MB (max {f['data_mb_max']:.1f}); free disk "
        f"{f['disk_free_gb_end']:.1f} GB",
        f"large MULTI/EXEC of {BIG_COMMANDS:,}: {large}; Flight imports of "
        f"{FLIGHT_ROWS:,} rows: {f['flight_imports']}; snapshot held "
        f"{f['snapshot_held_seconds']:.0f} s ({f['snapshot_keys']} keys, "
        f"{f['snapshot_rereads']} re-reads)",
        *([] if f["minutes"] * 60 >= RSS_JUDGED_SECONDS else [
            f"RSS not judged for a leak: runs shorter than {RSS_JUDGED_SECONDS / 60:g} "
            "minutes end inside the heap's warm-up"]),
        f"errors {f['errors']}, WATCH retries {f['watch_retries']}, "
        f"server exit status {f['exit_status']}",
    ])


def record(path: Path, f: dict[str, Any], reasons: list[str], stamp: str, at: str,
           argv: Sequence[str]) -> None:
    """Write the run's figures, verdict, command and the revision ``at`` which it
    started to ``path`` as JSON (what ``perf/run.py`` puts in ``perf/RESULTS.md``)."""
    document = {"started": stamp, "revision": at,
                "command": shlex.join([".venv/bin/python", "-m", "perf.soak", *argv]),
                "verdict": "FAIL" if reasons else "PASS", "reasons": reasons,
                "figures": f}
    path.write_text(json.dumps(document, indent=2) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m perf.soak",
        description="The staging burn-in: a mixed load against coldb-server, sampled, "
                    "with a verdict (exit 1 with the reasons on a failure).")
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--clients", type=int, default=DEFAULT_CLIENTS)
    parser.add_argument("--out", type=Path, default=None,
                        help="directory of the CSV, the PNG and the server's data and log "
                             "(default: a new temporary directory)")
    parser.add_argument("--sample-seconds", type=float, default=2.0)
    parser.add_argument("--record", type=Path, default=None,
                        help="also write the figures, the verdict and this command as "
                             "JSON to this file (perf/SOAK.json is the release run that "
                             "make perf puts in perf/RESULTS.md)")
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(arguments)
    out = args.out or Path(tempfile.mkdtemp(prefix="soak-"))
    run = Run(args.minutes, args.clients, out, args.sample_seconds)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    started_at = git_revision()

    outcome = soak(run, stamp)
    reasons = verdict(outcome, run)
    png = out / f"soak-{stamp}.png"
    plot(outcome.samples, png, f"colibri-mm soak, {run.minutes:g} min, "
         f"{run.clients} clients: {'FAIL' if reasons else 'PASS'}")
    run_figures = figures(outcome, run)
    print(summary(run_figures))
    if args.record:
        record(args.record, run_figures, reasons, stamp, started_at, arguments)
    print(f"csv: {out / f'soak-{stamp}.csv'}\npng: {png}\nserver data and log: "
          f"{out / f'soak-{stamp}'}")
    for reason in reasons:
        print(f"FAIL: {reason}")
    print("verdict: FAIL" if reasons else "verdict: PASS", flush=True)
    return 1 if reasons else 0


if __name__ == "__main__":
    sys.exit(main())
