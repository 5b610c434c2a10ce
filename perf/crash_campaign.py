"""Crash campaign: SIGKILL a committing process at random moments, reopen, check.

A child process opens the database and commits numbered transactions in a loop;
after each commit returns it writes ``ack <pid> <i>`` to a pipe. The parent kills it
with SIGKILL at a seeded random moment (sometimes during its start and recovery,
mostly while it commits), reopens the database itself (writable or read-only) and
checks it against an exact model of the workload:

- every acknowledged transaction is there, and at most one more (the transaction in
  flight when the kill landed);
- the content is exactly what transactions ``1..L`` produce, so no transaction is
  partly visible (its keys, its deletes and, for a big one, its thousands of pairs);
- the counter key equals ``L`` and so does the published CSN (every transaction is
  one commit: CSN ``i`` is transaction ``i``); recovery replayed no more than ``L``;
- ``recovery_dropped`` only names what a crash can leave (a torn tail of the last
  segment, records without their COMMIT, a segment whose header was being written).

Then it starts a new child, which continues numbering after what it finds.

Transaction ``i`` writes ``txn<i>:a``, ``txn<i>:b``, ``txn<i>:c`` (values encode
``i``), sets ``counter`` to ``i`` after checking it read ``i - 1``, and deletes
``txn<i - KEEP_C>:c``. About one in ``BIG_EVERY`` (chosen by a hash of ``i`` and the
seed) is big: it also overwrites one to two and a half thousand ``big:<n>`` pairs with
``put_many`` (values stamped with ``i``), so its records span WAL blocks and the
1 MiB segments roll often; a half-applied big transaction shows as mixed stamps.

Children are forked by a *zygote*: one long-lived, single-threaded Python process
that imported colibri-mm and loaded its Numba kernels once, so a kill cycle costs a
``fork`` instead of an interpreter start. The children write to the zygote's stdout,
a pipe the parent drains continuously; the zygote reaps a killed child before it
answers ``reaped``, so by then every ack the child wrote has been read.

Where the engine has automatic checkpoints, children ask for one every
:data:`CHECKPOINT_WAL_BYTES` of WAL and a writable reopen checkpoints when it closes,
so kills also land in checkpoints and recovery starts from them.

Usage::

    python perf/crash_campaign.py --kills 200 --durability full --seed 1 --dir /tmp/cc

prints the figures (kills, transactions acknowledged and recovered, seconds, ...) as
one JSON object and exits 1 with the reason if a check fails. ``tests/test_crash_campaign.py``
runs a small campaign per durability mode on every test run.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import queue
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import IO, Any, NoReturn

import colibri_mm as cm
from colibri_mm.options import Options

SEGMENT_SIZE = 1 << 20
"""WAL segment size of every open (the minimum), so segments roll often."""
CHECKPOINT_WAL_BYTES = 4 << 20
"""Where the engine checkpoints automatically, a child asks for one after this many
WAL bytes, so kills also land in checkpoints (a writable reopen checkpoints at close)."""
KEEP_C = 8
"""Transaction ``i`` deletes ``txn<i - KEEP_C>:c``."""
BIG_EVERY = 32
"""About one transaction in this many is big."""
BIG_MIN_PAIRS = 1000
BIG_MAX_PAIRS = 2500
BIG_VALUE_BYTES = 200
"""Approximate size of a big transaction's values."""
COUNTER = b"counter"

EARLY_KILL_SHARE = 0.15
"""Share of lives killed at a random moment of their start (open, recovery, repair)."""
EARLY_KILL_MAX = 0.05
"""Seconds after the fork within which an early kill lands."""
RUN_MAX = {"full": 0.1, "normal": 0.03}
"""Seconds after a child is ready within which a regular kill lands, per durability
mode: ``normal`` commits several times faster, and a shorter window keeps the WAL
(replayed twice per kill where nothing checkpoints) about as long as in ``full``."""
READONLY_CHECK_SHARE = 0.3
"""Share of checks that reopen the database read-only (the next child repairs the tail)."""
FIRST_LIFE_BYTES = SEGMENT_SIZE * 5 // 4
"""The first life runs until transactions holding this many key and value bytes are
acknowledged (more than a segment), so every campaign rolls segments."""
MAX_DROP_EXAMPLES = 3
LINE_TIMEOUT = 120.0
"""Seconds to wait for any message from the zygote or a child before giving up."""

_ALLOWED_DROPS = (
    re.compile(r"^\d+ change records of a transaction without its COMMIT \(cut by a crash\)$"),
    re.compile(r"^.*: \d+ bytes from offset \d+ dropped \((truncated|unwritten|checksum|length)"
               r" record at offset \d+\)$"),
    re.compile(r"^.*: segment header torn while it was created \(\d+ bytes\)$"),
)


class CampaignError(AssertionError):
    """A check of the crash campaign failed (or the child misbehaved)."""


def open_options() -> dict[str, Any]:
    """Options of every writable open: small segments, and frequent checkpoints if the
    engine has them."""
    options: dict[str, Any] = {"wal_segment_size": SEGMENT_SIZE}
    if "checkpoint_wal_bytes" in {f.name for f in fields(Options)}:
        options["checkpoint_wal_bytes"] = CHECKPOINT_WAL_BYTES
    return options


# -- the workload: what transaction i writes, and what transactions 1..L leave ------------


def mix(i: int, seed: int) -> int:
    """A well-spread 64-bit hash of ``(i, seed)`` (splitmix64's finaliser)."""
    z = (i * 0x9E3779B97F4A7C15 + seed * 0xBF58476D1CE4E5B9 + 1) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return z ^ (z >> 31)


def is_big(i: int, seed: int) -> bool:
    """Whether transaction ``i`` also overwrites a thousand or more ``big`` pairs."""
    return mix(i, seed) % BIG_EVERY == 0


def big_pairs(i: int, seed: int) -> int:
    """How many pairs big transaction ``i`` writes."""
    return BIG_MIN_PAIRS + (mix(i, seed) >> 8) % (BIG_MAX_PAIRS - BIG_MIN_PAIRS + 1)


def first_big(seed: int) -> int:
    """The number of the first big transaction."""
    i = 1
    while not is_big(i, seed):
        i += 1
    return i


def first_life_target(seed: int) -> int:
    """The first transaction by which keys and values of more than
    :data:`FIRST_LIFE_BYTES` have been written (the WAL holds at least as much)."""
    written = 0
    i = 0
    while written <= FIRST_LIFE_BYTES:
        i += 1
        written += sum(len(txn_key(i, p)) + len(txn_value(i, p)) for p in "abc")
        if is_big(i, seed):
            written += sum(len(big_key(n)) + len(big_value(i, n))
                           for n in range(big_pairs(i, seed)))
    return i


def txn_key(i: int, part: str) -> bytes:
    """Key ``part`` (a, b or c) of transaction ``i``."""
    return b"txn%08d:%s" % (i, part.encode())


def txn_value(i: int, part: str) -> bytes:
    """Value of key ``part`` of transaction ``i`` (its length varies with ``i``)."""
    return (b"%s=%d;" % (part.encode(), i)) * (1 + (i * 7 + ord(part)) % 6)


def big_key(n: int) -> bytes:
    """Key of pair ``n`` of a big transaction (each big one overwrites the pairs)."""
    return b"big:%05d" % n


def big_value(i: int, n: int) -> bytes:
    """Value of pair ``n`` of big transaction ``i``."""
    stamp = b"%d/%d;" % (i, n)
    return stamp * (BIG_VALUE_BYTES // len(stamp) + (n % 3))


def commit_transaction(db: cm.Database, i: int, seed: int) -> None:
    """Commit transaction ``i`` (see the module docstring); it must follow ``i - 1``."""
    with db.transaction() as tx:
        counter = tx.kv.get(COUNTER)
        if counter != (b"%d" % (i - 1) if i > 1 else None):
            raise CampaignError(f"transaction {i} found counter {counter!r}, expected {i - 1}")
        for part in "abc":
            tx.kv.put(txn_key(i, part), txn_value(i, part))
        tx.kv.put(COUNTER, b"%d" % i)
        if i > KEEP_C:
            tx.kv.delete(txn_key(i - KEEP_C, "c"))
        if is_big(i, seed):
            pairs = big_pairs(i, seed)
            tx.kv.put_many([big_key(n) for n in range(pairs)],
                           [big_value(i, n) for n in range(pairs)])


def expected_state(last: int, seed: int) -> dict[bytes, bytes]:
    """The whole key/value content after transactions ``1..last``."""
    state: dict[bytes, bytes] = {}
    if last == 0:
        return state
    state[COUNTER] = b"%d" % last
    for i in range(1, last + 1):
        state[txn_key(i, "a")] = txn_value(i, "a")
        state[txn_key(i, "b")] = txn_value(i, "b")
        if i > last - KEEP_C:
            state[txn_key(i, "c")] = txn_value(i, "c")
    filled = 0  # pairs 0..filled-1 hold the value of a later big transaction
    for i in range(last, 0, -1):
        if filled == BIG_MAX_PAIRS:
            break
        if is_big(i, seed):
            pairs = big_pairs(i, seed)
            for n in range(filled, pairs):
                state[big_key(n)] = big_value(i, n)
            filled = max(filled, pairs)
    return state


def _owner(key: bytes, value: bytes | None) -> str:
    """Which transaction a key (with the value found or expected) belongs to."""
    if key.startswith(b"txn"):
        return f"transaction {int(key[3:11])}"
    if key.startswith(b"big") and value is not None:
        return f"big transaction {int(value.split(b'/')[0])}"
    return "the counter"


def _describe_difference(found: dict[bytes, bytes], expected: dict[bytes, bytes]) -> str:
    missing = sorted(expected.keys() - found.keys())
    extra = sorted(found.keys() - expected.keys())
    wrong = sorted(k for k in expected.keys() & found.keys() if expected[k] != found[k])
    parts = []
    for what, keys in (("missing", missing), ("unexpected", extra), ("wrong value", wrong)):
        if keys:
            owners = sorted({_owner(k, found.get(k, expected.get(k))) for k in keys})
            shown = ", ".join(repr(k) for k in keys[:5])
            parts.append(f"{len(keys)} {what} keys of {', '.join(owners[:6])} (e.g. {shown})")
    return "; ".join(parts)


@dataclass
class CheckResult:
    """What one check of a reopened database found."""

    last: int
    """The last transaction present (the counter)."""
    dropped: list[str]
    recovery_seconds: float
    checkpoint_id: int


def check_database(db: cm.Database, *, acked: int, seed: int) -> CheckResult:
    """Check a reopened database against the model; raise :class:`CampaignError`.

    ``acked`` is the highest transaction acknowledged so far: it and everything before
    it must be present, and at most transaction ``acked + 1`` beyond it.
    """
    with db.snapshot() as snap:
        raw = snap.kv.get(COUNTER)
        found = dict(snap.kv.scan())
        last = int(raw) if raw is not None else 0
        if last > 0 and snap.kv.get(txn_key(last + 1, "a")) is not None:
            raise CampaignError(f"transaction {last + 1} is visible beyond the counter {last}")
    if last < acked:
        raise CampaignError(f"lost acknowledged commits: transaction {acked} was acknowledged "
                            f"but the counter says {last}")
    if last > acked + 1:
        raise CampaignError(f"transactions up to {last} are visible but only {acked} was "
                            "acknowledged: more than the one in flight")
    expected = expected_state(last, seed)
    if found != expected:
        raise CampaignError(f"content after transaction {last} is not exactly that of "
                            f"transactions 1..{last} (a lost or partial transaction): "
                            + _describe_difference(found, expected))
    published = db.stats()["published_csn"]
    if published != last:  # every transaction is one commit, one CSN
        raise CampaignError(f"published CSN {published}, expected {last}")
    return recovery_result(db, last)


def recovery_result(db: cm.Database, last: int) -> CheckResult:
    """What recovery of a database holding ``last`` transactions did; raises
    :class:`CampaignError` if it replayed more than that or dropped something a crash
    cannot explain."""
    stats = db.stats()
    if stats["recovery_transactions"] > last:
        raise CampaignError(f"recovery replayed {stats['recovery_transactions']} "
                            f"transactions, more than the {last} there are")
    dropped: list[str] = stats["recovery_dropped"]
    for entry in dropped:
        if not any(pattern.match(entry) for pattern in _ALLOWED_DROPS):
            raise CampaignError(f"recovery dropped something a crash cannot explain: {entry}")
    return CheckResult(last, dropped, stats["recovery_seconds"], stats["checkpoint_id"])


# -- the child and the zygote that forks it ------------------------------------------------


def _say(line: str) -> None:
    """One message line on stdout, in one ``write`` (atomic on a pipe)."""
    data = (line.replace("\n", " ") + "\n").encode()
    os.write(1, data)


def child_main(db_dir: Path, durability: str, options: dict[str, Any],
               start: Callable[[cm.Database], int],
               commit: Callable[[cm.Database, int], None]) -> NoReturn:
    """Open the database and commit transactions ``start(db) + 1, ...`` with ``commit``
    until killed, acknowledging each (runs in a forked child)."""
    pid = os.getpid()
    try:
        db = cm.connect(db_dir, durability=durability, **options)
        i = start(db) + 1
        _say(f"ready {pid} {i - 1}")
        while True:
            commit(db, i)
            _say(f"ack {pid} {i}")
            i += 1
    except BaseException as e:  # report anything, then die without cleanup
        try:
            _say(f"error {pid} {type(e).__name__}: {e}")
        finally:
            os._exit(1)


def _warm_up(directory: Path, durability: str, seed: int) -> None:
    """Load every kernel a child uses (commit, big commit, recovery) in the zygote."""
    path = directory / "warm-up"
    shutil.rmtree(path, ignore_errors=True)
    with cm.connect(path, create=True, durability=durability, **open_options()) as db:
        for i in range(1, first_big(seed) + 1):
            commit_transaction(db, i, seed)
    with cm.connect(path, durability=durability, **open_options()) as db:
        check_database(db, acked=first_big(seed), seed=seed)
    shutil.rmtree(path)


def _counter(db: cm.Database) -> int:
    """The last transaction the database holds (its counter)."""
    with db.snapshot() as snap:
        raw = snap.kv.get(COUNTER)
    return int(raw) if raw is not None else 0


def zygote_main(db_dir: Path, durability: str, seed: int) -> None:
    """The zygote of the key/value campaign: warm up, then fork children on demand."""
    _warm_up(db_dir.parent, durability, seed)
    serve_forks(lambda _: child_main(
        db_dir, durability, open_options(), _counter,
        lambda db, i: commit_transaction(db, i, seed)))


def serve_forks(child: Callable[[list[str]], object]) -> None:
    """Serve ``spawn [args]`` / ``reap <pid>`` / ``quit`` commands from stdin
    (single-threaded); a spawned child runs ``child(args)`` and never returns."""
    # Everything imported so far (Numba and LLVM make a large heap) is permanent: keep
    # it out of the children's collections, which would otherwise walk, and copy on
    # write, the whole heap and stall a child for a tenth of a second at a time.
    gc.collect()
    gc.freeze()
    _say("zygote ready")
    while True:
        line = sys.stdin.readline()
        command = line.split()
        if not command or command[0] == "quit":
            return
        if command[0] == "spawn":
            pid = os.fork()
            if pid == 0:
                try:
                    child(command[1:])
                finally:  # a child never returns into the zygote's loop
                    os._exit(1)
            _say(f"pid {pid}")
        elif command[0] == "reap":
            pid = int(command[1])
            _, status = os.waitpid(pid, 0)
            _say(f"reaped {pid} {os.waitstatus_to_exitcode(status)}")
        else:
            _say(f"error 0 unknown zygote command {line!r}")


class Zygote:
    """The parent's handle on the zygote process: commands in, message lines out."""

    def __init__(self, command: Sequence[str], log: IO[bytes], cwd: Path | None = None) -> None:
        """Start the zygote: ``command`` runs a Python process that calls
        :func:`serve_forks` (in ``cwd``); its stderr goes to ``log``."""
        self._log = log
        self._process = subprocess.Popen(list(command), cwd=cwd, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=log)
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.child: int | None = None
        """The pid of the child forked last, until it is reaped."""
        self._reader = threading.Thread(target=self._read, name="crash-campaign-reader",
                                        daemon=True)
        self._reader.start()
        line = self.next_line()
        if line != "zygote ready":
            raise CampaignError(f"the zygote did not start: {line!r}")

    def _read(self) -> None:
        assert self._process.stdout is not None
        for raw in self._process.stdout:
            self._lines.put(raw.decode(errors="replace").rstrip("\n"))
        self._lines.put(None)

    def send(self, command: str) -> None:
        """Send one command line."""
        assert self._process.stdin is not None
        self._process.stdin.write(command.encode() + b"\n")
        self._process.stdin.flush()

    def spawn(self, args: str = "") -> tuple[int, list[str]]:
        """Fork a child (given ``args``); returns its pid and the lines it wrote before
        the zygote reported the pid (the child may run first)."""
        self.send(f"spawn {args}")
        early: list[str] = []
        while not (reply := self.next_line()).startswith("pid "):
            early.append(reply)
        self.child = int(reply.split()[1])
        return self.child, early

    def kill_child(self) -> None:
        """SIGKILL the child and ask the zygote to reap it (it answers ``reaped``)."""
        assert self.child is not None
        os.kill(self.child, signal.SIGKILL)
        self.send(f"reap {self.child}")
        self.child = None

    def next_line(self) -> str:
        """The next message line (raises if the zygote died or stayed silent too long)."""
        try:
            line = self._lines.get(timeout=LINE_TIMEOUT)
        except queue.Empty:
            raise CampaignError(f"no message from the zygote or its child in "
                                f"{LINE_TIMEOUT} s") from None
        if line is None:
            raise CampaignError(f"the zygote exited (code {self._process.wait()}); "
                                "see its log")
        return line

    def close(self) -> None:
        """Stop the zygote (and a child left running by a failed check)."""
        if self.child is not None:
            os.kill(self.child, signal.SIGKILL)
        try:
            self.send("quit")
            self._process.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self._process.kill()
            self._process.wait()
        self._reader.join(timeout=30)


# -- the parent ----------------------------------------------------------------------------


@dataclass
class LifeFigures:
    """What any kill campaign did: its lives, kills and checks."""

    durability: str
    seed: int
    kills: int = 0
    early_kills: int = 0
    """Kills aimed at a child's start (open, recovery, repair of the tail)."""
    lives_without_ack: int = 0
    acknowledged: int = 0
    """Transactions acknowledged by children, over all lives."""
    in_flight_recovered: int = 0
    """Kills after which the unacknowledged transaction in flight was there."""
    recovered: int = 0
    """Transactions in the database at the end (all of them checked at every kill)."""
    readonly_checks: int = 0
    checks_with_drops: int = 0
    """Reopens whose recovery dropped a torn tail (reported in recovery_dropped)."""
    drop_examples: list[str] = field(default_factory=list)
    """The first few of those reports (file names without their directory)."""
    checkpoint_id: int = 0
    """The checkpoint the last reopen found (1 until the engine checkpoints)."""
    max_recovery_seconds: float = 0.0
    seconds: float = 0.0


@dataclass
class Figures(LifeFigures):
    """What a key/value campaign did (returned by :func:`run_campaign` as a dict)."""

    big_transactions: int = 0
    """Big transactions among the recovered ones."""
    wal_last_segment: int = 0
    """Number of the newest WAL segment (segments are numbered from 1)."""
    wal_bytes: int = 0
    """Bytes in the WAL segments left at the end."""


class _Life:
    """Messages of one child's life."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.ready: int | None = None
        self.acks: list[int] = []
        self.exit_code: int | None = None

    def take(self, line: str) -> None:
        kind, _, rest = line.partition(" ")
        pid_text, _, arg = rest.partition(" ")
        if kind == "error":
            raise CampaignError(f"child {pid_text} failed: {arg}")
        if kind not in ("ready", "ack", "reaped") or int(pid_text) != self.pid:
            raise CampaignError(f"unexpected message {line!r} during the life of {self.pid}")
        if kind == "ready":
            self.ready = int(arg)
        elif kind == "ack":
            self.acks.append(int(arg))
        else:
            self.exit_code = int(arg)


def run_campaign(kills: int, durability: str, seed: int,
                 directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Run a crash campaign of ``kills`` SIGKILLs; return its figures.

    The database is made in ``directory/db`` (which must not exist). Raises
    :class:`CampaignError` when a check fails.
    """
    figures = Figures(durability=durability, seed=seed)
    db_dir = kill_campaign(
        kills, Path(directory), figures, [sys.executable, str(Path(__file__).resolve())],
        options=open_options(), first_target=first_life_target(seed),
        check=lambda db, acked: check_database(db, acked=acked, seed=seed))
    figures.big_transactions = sum(is_big(i, seed) for i in range(1, figures.recovered + 1))
    segments = [p for p in (db_dir / "wal").iterdir() if p.suffix == ".wal"]
    figures.wal_last_segment = max((int(p.stem, 16) for p in segments), default=0)
    figures.wal_bytes = sum(p.stat().st_size for p in segments)
    return asdict(figures)


def kill_campaign(kills: int, work: Path, figures: LifeFigures, program: Sequence[str], *,
                  options: dict[str, Any], first_target: int,
                  check: Callable[[cm.Database, int], CheckResult],
                  spawn_args: Callable[[int], str] = lambda last: "",
                  run_max: dict[str, float] = RUN_MAX, cwd: Path | None = None) -> Path:
    """Deliver ``kills`` SIGKILLs to children of a zygote, checking the reopened
    database after each; returns the database directory (``work/db``, made here).

    ``program`` starts the zygote when given ``--zygote --dir --durability --seed``
    (in ``cwd``); each child starts with ``spawn_args(last)``, the last transaction
    the previous check found, the first life runs until ``first_target`` is
    acknowledged and later ones are killed within ``run_max[durability]`` seconds.
    ``check(db, acked)`` checks a reopen (with ``options``, writable or read-only) and
    returns what it found. The figures are filled in as it goes.
    """
    if figures.durability not in ("full", "normal"):
        raise ValueError(f"durability must be full or normal for a SIGKILL campaign, "
                         f"got {figures.durability!r}")
    started = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    db_dir = work / "db"
    if db_dir.exists():
        raise ValueError(f"{db_dir} exists; a campaign starts from a fresh database")
    cm.connect(db_dir, create=True, durability=figures.durability, **options).close()
    rng = random.Random(figures.seed)
    last = 0
    with open(work / "zygote.log", "wb") as log:
        zygote = Zygote([*program, "--zygote", "--dir", str(db_dir), "--durability",
                         figures.durability, "--seed", str(figures.seed)], log, cwd)
        try:
            for cycle in range(kills):
                life = _live_and_die(zygote, rng, spawn_args(last), first_target=(
                    first_target if cycle == 0 else None), run_max=run_max[figures.durability],
                    last=last, figures=figures)
                acked = max([last, *life.acks])
                readonly = rng.random() < READONLY_CHECK_SHARE
                figures.readonly_checks += readonly
                with cm.connect(db_dir, readonly=readonly, **options) as db:
                    result = check(db, acked)
                figures.in_flight_recovered += result.last > acked
                figures.checks_with_drops += bool(result.dropped)
                for entry in result.dropped[:MAX_DROP_EXAMPLES - len(figures.drop_examples)]:
                    figures.drop_examples.append(entry.replace(f"{db_dir / 'wal'}/", ""))
                figures.max_recovery_seconds = max(figures.max_recovery_seconds,
                                                   result.recovery_seconds)
                last = result.last
                figures.checkpoint_id = result.checkpoint_id
        finally:
            zygote.close()
    figures.recovered = last
    figures.seconds = round(time.perf_counter() - started, 3)
    figures.max_recovery_seconds = round(figures.max_recovery_seconds, 4)
    return db_dir


def _live_and_die(zygote: Zygote, rng: random.Random, args: str, *, first_target: int | None,
                  run_max: float, last: int, figures: LifeFigures) -> _Life:
    """Fork a child, kill it at a random moment, reap it; check its messages. The first
    life (``first_target`` given) runs until that transaction is acknowledged."""
    early = first_target is None and rng.random() < EARLY_KILL_SHARE
    delay = rng.uniform(0.0, EARLY_KILL_MAX if early else run_max)
    pid, early_lines = zygote.spawn(args)
    life = _Life(pid)
    for line in early_lines:
        life.take(line)
    if not early:
        while life.ready is None or (first_target is not None and
                                     (not life.acks or life.acks[-1] < first_target)):
            life.take(zygote.next_line())
    time.sleep(delay)
    zygote.kill_child()
    while life.exit_code is None:
        life.take(zygote.next_line())
    figures.kills += 1
    figures.early_kills += early
    if life.exit_code != -signal.SIGKILL:
        raise CampaignError(f"child {life.pid} exited with {life.exit_code} before the kill")
    if life.ready is not None and life.ready != last:
        raise CampaignError(f"child {life.pid} found counter {life.ready} at start, the "
                            f"last check found {last}")
    if life.acks != list(range(last + 1, last + 1 + len(life.acks))):
        raise CampaignError(f"child {life.pid} acknowledged {life.acks[:3]}... not "
                            f"consecutively after {last}")
    figures.acknowledged += len(life.acks)
    figures.lives_without_ack += not life.acks
    return life


def command_line(argv: Sequence[str] | None, description: str | None,
                 run: Callable[[int, str, int, Path], dict[str, Any]],
                 zygote: Callable[[Path, str, int], None]) -> int:
    """The command line of a kill campaign: run it (or, with ``--zygote``, be its
    zygote) and print its figures as JSON; 1 with the reason if a check fails."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--kills", type=int, default=100, help="SIGKILLs to deliver")
    parser.add_argument("--durability", choices=("full", "normal"), default="full")
    parser.add_argument("--seed", type=int, default=1, help="seeds kill moments and workload")
    parser.add_argument("--dir", type=Path, required=True,
                        help="working directory (the database is DIR/db, must not exist)")
    parser.add_argument("--zygote", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.zygote:
        zygote(args.dir, args.durability, args.seed)
        return 0
    if (args.dir / "db").exists():
        parser.error(f"{args.dir / 'db'} exists; give a fresh --dir")
    try:
        figures = run(args.kills, args.durability, args.seed, args.dir)
    except CampaignError as e:
        print(f"crash campaign FAILED: {e}", file=sys.stderr)
        return 1
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(command_line(None, __doc__.split("\n\n")[0] if __doc__ else None,
                          run_campaign, zygote_main))
