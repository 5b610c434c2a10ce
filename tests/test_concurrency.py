"""Threads against one open database: snapshot readers beside a writer, many writers
with group commit, and commits caught in the middle of a group.

Every test does a bounded amount of work and checks invariants, never wall-clock
times. Where a test needs a precise interleaving it makes it with events: a file
system whose next ``fdatasync`` waits at a gate, and a key whose hashing pauses the
commit that records it.
"""

import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import colibri_mm as cm
from colibri_mm import database
from colibri_mm.kv.keys import USER_PREFIX
from colibri_mm.kv.memtable import Memtable
from colibri_mm.storage.files import File, FileSystem
from colibri_mm.wal.writer import WalTicket, WalWriter

ACCOUNTS = 50
START_BALANCE = 1000
TOTAL = ACCOUNTS * START_BALANCE
SWEEP_EVERY: int = getattr(database, "SWEEP_EVERY", 4096)
WRITER_TRANSACTIONS = {"full": 1000, "normal": SWEEP_EVERY + 300}
"""Per durability mode; in ``normal`` the writer passes a sweep of deleted keys."""
BULK_EVERY = 100
"""The writer adds a put_many of BULK_ITEMS items every BULK_EVERY transactions."""
BULK_ITEMS = 200
READERS = 8
CHECKS_PER_READER = 200
"""Snapshots a reader checks while the writer runs (at most; then one after it ends)."""
WRITER_THREADS = 16
PUTS_PER_THREAD = 50
WAIT_TIMEOUT = 60.0
"""Seconds a test waits for an event before it fails (never reached when it passes)."""


@pytest.fixture(autouse=True)
def _frequent_thread_switches() -> Iterator[None]:
    """Switch threads every 100 µs instead of 5 ms: many more interleavings per run."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    yield
    sys.setswitchinterval(before)


def account(n: int) -> bytes:
    return b"acct:%02d" % n


def item(n: int) -> bytes:
    return b"item:%06d" % n


ITEM_COUNT = b"items:count"


def run_threads(targets: list[Callable[[], None]]) -> None:
    """Run each target in its own thread; re-raise the first failure of any."""
    errors: list[BaseException] = []

    def guarded(target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=guarded, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_TIMEOUT * 10)
        assert not thread.is_alive(), "a thread did not finish (deadlock?)"
    if errors:
        raise errors[0]


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.0005)


# -- 8 snapshot readers beside 1 writer ------------------------------------------------------


class Bank:
    """The writer's workload: transfers between accounts (the total never changes), and
    items inserted and deleted with a count kept beside them."""

    def __init__(self, db: cm.Database, seed: int, transactions: int) -> None:
        self.db = db
        self.transactions = transactions
        self.rng = random.Random(seed)
        self.live_items: list[int] = []
        self.next_item = 0
        self.done = threading.Event()

    def setup(self) -> None:
        self.db.kv.put_many([account(n) for n in range(ACCOUNTS)],
                            [b"%d" % START_BALANCE] * ACCOUNTS)

    def run(self) -> None:
        try:
            for t in range(self.transactions):
                self.transaction(t)
        finally:
            self.done.set()

    def transaction(self, t: int) -> None:
        rng = self.rng
        with self.db.transaction() as tx:
            for _ in range(rng.randint(1, 3)):
                a, b = rng.sample(range(ACCOUNTS), 2)
                balance_a = int(tx.kv.get(account(a)) or b"")
                balance_b = int(tx.kv.get(account(b)) or b"")
                amount = min(balance_a, rng.randint(1, 100))
                tx.kv.put(account(a), b"%d" % (balance_a - amount))
                tx.kv.put(account(b), b"%d" % (balance_b + amount))
            new = [self.next_item]
            if t % BULK_EVERY == BULK_EVERY - 1:
                new = list(range(self.next_item, self.next_item + BULK_ITEMS))
                tx.kv.put_many([item(n) for n in new], [b"bulk %d" % t] * len(new))
            else:
                tx.kv.put(item(new[0]), b"item of transaction %d" % t)
            self.next_item += len(new)
            self.live_items.extend(new)
            for _ in range(rng.randint(0, 2) if len(self.live_items) > 10 else 0):
                gone = self.live_items.pop(rng.randrange(len(self.live_items)))
                assert tx.kv.delete(item(gone))
            tx.kv.put(ITEM_COUNT, b"%d" % len(self.live_items))


class Reader:
    """Checks up to CHECKS_PER_READER snapshots while the writer runs (each once the
    writer published ``stride`` more commits, so the checks spread over its whole run),
    then one more after it is done."""

    def __init__(self, db: cm.Database, writer_done: threading.Event, stride: int) -> None:
        self.db = db
        self.writer_done = writer_done
        self.stride = stride
        self.csns: list[int] = []
        self.first_balances: dict[bytes, bytes] = {}
        self.last_balances: dict[bytes, bytes] = {}

    def check(self) -> dict[bytes, bytes]:
        """One snapshot: the invariants, scans against gets; returns the balances."""
        with self.db.snapshot() as snap:
            if self.csns:
                assert snap.csn >= self.csns[-1], "a later snapshot went back in time"
            self.csns.append(snap.csn)
            balances = dict(snap.kv.scan(prefix=b"acct:"))
            assert len(balances) == ACCOUNTS
            assert sum(map(int, balances.values())) == TOTAL, \
                f"balances at CSN {snap.csn} sum to {sum(map(int, balances.values()))}"
            for key, value in balances.items():
                assert snap.kv.get(key) == value, f"get and scan disagree on {key!r}"
            assert dict(snap.kv.scan(start=account(0), end=account(ACCOUNTS))) == balances
            items = dict(snap.kv.scan(prefix=b"item:"))
            count = snap.kv.get(ITEM_COUNT)
            assert len(items) == (int(count) if count is not None else 0), \
                f"{len(items)} items at CSN {snap.csn}, the count says {count!r}"
            for key in list(items)[:: max(1, len(items) // 16)]:
                assert snap.kv.get(key) == items[key]
            assert snap.kv.get(item(10**6 - 1)) is None
            assert dict(snap.kv.scan(prefix=b"acct:")) == balances, "a re-read changed"
            return balances

    def run(self) -> None:
        for _ in range(CHECKS_PER_READER):
            if self.writer_done.is_set():
                break
            self.check()
            while (self.db.stats()["published_csn"] < self.csns[-1] + self.stride
                   and not self.writer_done.is_set()):
                time.sleep(0.0002)
        assert self.writer_done.wait(WAIT_TIMEOUT * 10)
        self.last_balances = self.check()


@pytest.mark.parametrize("durability", ["full", "normal"])
def test_snapshot_readers_see_consistent_states_while_one_writer_commits(
        durability: str, tmp_path: Path) -> None:
    with cm.connect(tmp_path / "db", create=True, durability=durability) as db:
        bank = Bank(db, seed=7, transactions=WRITER_TRANSACTIONS[durability])
        bank.setup()
        stride = max(1, bank.transactions // CHECKS_PER_READER)
        readers = [Reader(db, bank.done, stride) for _ in range(READERS)]
        for reader in readers:  # a first snapshot before the writer starts
            reader.first_balances = reader.check()
        run_threads([bank.run, *(reader.run for reader in readers)])
        final_csn = db.stats()["published_csn"]
        assert final_csn == 1 + bank.transactions
        for reader in readers:
            # progress: each reader saw the writer's work, ending at its last commit
            assert reader.csns[0] == 1 and reader.csns[-1] == final_csn
            assert reader.last_balances != reader.first_balances
        seen = sorted({csn for reader in readers for csn in reader.csns})
        print(f"{durability}: {sum(len(r.csns) for r in readers)} snapshots checked at "
              f"{len(seen)} distinct CSNs of {final_csn}")
        final = dict(db.kv.scan(prefix=b"item:"))
        assert sorted(final) == [item(n) for n in sorted(bank.live_items)]
    with cm.connect(tmp_path / "db", readonly=True) as db:
        balances = dict(db.kv.scan(prefix=b"acct:"))
        assert sum(map(int, balances.values())) == TOTAL
        assert balances == readers[0].last_balances


# -- many writers, group commit ----------------------------------------------------------------


def test_many_writer_threads_every_commit_survives_reopen(tmp_path: Path) -> None:
    barrier = threading.Barrier(WRITER_THREADS)

    def writer(t: int) -> Callable[[], None]:
        def run() -> None:
            barrier.wait()
            for j in range(PUTS_PER_THREAD):
                db.kv.put(b"w%02d:%03d" % (t, j), b"%d/%d" % (t, j))
        return run

    expected = {b"w%02d:%03d" % (t, j): b"%d/%d" % (t, j)
                for t in range(WRITER_THREADS) for j in range(PUTS_PER_THREAD)}
    with cm.connect(tmp_path / "db", create=True, durability="full") as db:
        run_threads([writer(t) for t in range(WRITER_THREADS)])
        stats = db.stats()
    commits = WRITER_THREADS * PUTS_PER_THREAD
    assert stats["wal_commits"] == commits
    # Grouping depends on the scheduler; the deterministic test follows.
    assert stats["wal_groups"] <= stats["wal_commits"]
    print(f"{commits} commits from {WRITER_THREADS} threads in {stats['wal_groups']} groups "
          f"(largest {stats['wal_largest_group']}), {stats['wal_syncs']} syncs")
    with cm.connect(tmp_path / "db") as db:
        assert dict(db.kv.scan()) == expected
        assert db.stats()["published_csn"] == commits


class SyncGate:
    """Holds the first ``fdatasync`` after :meth:`arm` until :attr:`release` is set."""

    def __init__(self) -> None:
        self._armed = False
        self.entered = threading.Event()
        self.release = threading.Event()

    def arm(self) -> None:
        self._armed = True

    def pass_through(self) -> None:
        if self._armed:
            self._armed = False
            self.entered.set()
            if not self.release.wait(WAIT_TIMEOUT):
                raise OSError("the test never released the sync gate")


class GatedFile(File):
    def __init__(self, path: Path, fd: int, gate: SyncGate) -> None:
        super().__init__(path, fd)
        self._gate = gate

    def datasync(self) -> None:
        self._gate.pass_through()
        super().datasync()


class GatedFileSystem(FileSystem):
    """The real file system, with every file's ``datasync`` going through one gate."""

    def __init__(self) -> None:
        self.gate = SyncGate()

    def open(self, path: Path, *, create: bool = False, exclusive: bool = False,
             writable: bool = True) -> File:
        file = super().open(path, create=create, exclusive=exclusive, writable=writable)
        return GatedFile(file.path, file.fileno(), self.gate)


def _hold_a_group_in_its_sync(db: cm.Database, fs: GatedFileSystem) -> threading.Thread:
    """Commit key ``a`` in a thread that leads its group and waits at the gate."""
    fs.gate.arm()
    leader = threading.Thread(target=db.kv.put, args=(b"a", b"leader"))
    leader.start()
    assert fs.gate.entered.wait(WAIT_TIMEOUT)
    return leader


def test_commits_queued_behind_a_sync_share_one_group(tmp_path: Path) -> None:
    fs = GatedFileSystem()
    followers = WRITER_THREADS - 1
    with cm.connect(tmp_path / "db", create=True, durability="full", file_system=fs) as db:
        try:
            leader = _hold_a_group_in_its_sync(db, fs)
            threads = [threading.Thread(target=db.kv.put, args=(b"f%02d" % t, b"%d" % t))
                       for t in range(followers)]
            for thread in threads:
                thread.start()
            # A commit records its versions right after queueing its WAL records.
            wait_until(lambda: db.stats()["kv_keys_in_memory"] == 1 + followers,
                       "every follower has queued its commit")
            assert db.stats()["published_csn"] == 0
        finally:
            fs.gate.release.set()
        for thread in [leader, *threads]:
            thread.join(WAIT_TIMEOUT)
        stats = db.stats()
        assert (stats["wal_commits"], stats["wal_groups"]) == (1 + followers, 2)
        assert stats["wal_largest_group"] == followers
        assert stats["published_csn"] == 1 + followers
    with cm.connect(tmp_path / "db") as db:
        assert len(dict(db.kv.scan())) == 1 + followers


def test_a_commit_is_never_published_while_it_records_its_versions(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fs = GatedFileSystem()
    keys = [b"b0", b"b1", b"b2", b"b3"]
    paused_halfway = threading.Event()
    resume = threading.Event()
    record = Memtable.apply

    def record_in_two_halves(self: Memtable, csn: int, changes: dict[bytes, bytes | None],
                             horizon: Callable[[], int]) -> None:
        """Hold CSN 3's commit after it recorded b0 and b1, before b2 and b3."""
        if USER_PREFIX + b"b2" not in changes:
            return record(self, csn, changes, horizon)
        items = list(changes.items())
        record(self, csn, dict(items[:2]), horizon)
        paused_halfway.set()
        resume.wait(WAIT_TIMEOUT)
        return record(self, csn, dict(items[2:]), horizon)

    monkeypatch.setattr(Memtable, "apply", record_in_two_halves)

    def big_commit() -> None:
        with db.transaction() as tx:
            tx.kv.put_many(keys, [b"v"] * len(keys))

    with cm.connect(tmp_path / "db", create=True, durability="full", file_system=fs) as db:
        try:
            leader = _hold_a_group_in_its_sync(db, fs)  # CSN 1, leading, held
            queued = threading.Thread(target=db.kv.put, args=(b"w", b"queued"))  # CSN 2
            queued.start()
            wait_until(lambda: db.stats()["kv_keys_in_memory"] == 2, "CSN 2 is queued")
            paused = threading.Thread(target=big_commit)  # CSN 3: queued, then paused
            paused.start()
            assert paused_halfway.wait(WAIT_TIMEOUT)
            fs.gate.release.set()  # CSN 2's committer now leads the next group
            leader.join(WAIT_TIMEOUT)
            queued.join(WAIT_TIMEOUT)
            assert not queued.is_alive()
            published = db.stats()["published_csn"]
            with db.snapshot() as snap:
                visible = [snap.kv.get(key) is not None for key in (b"b0", b"b1", b"b2",
                                                                     b"b3")]
        finally:
            fs.gate.release.set()
            resume.set()
        paused.join(WAIT_TIMEOUT)
        assert visible in ([False] * 4, [True] * 4), \
            f"a snapshot at published CSN {published} sees {visible} of CSN 3's four keys"


def test_a_committer_that_never_waits_does_not_strand_the_others(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: leadership handed to a committer interrupted before it waited
    hung everyone queued behind it. Now the next parked committer takes over."""
    fs = GatedFileSystem()
    real_wait = WalWriter.wait

    def wait_unless_interrupted(self: WalWriter, ticket: WalTicket) -> None:
        if threading.current_thread().name == "interrupted":
            raise KeyboardInterrupt  # the committer goes away without waiting
        real_wait(self, ticket)

    monkeypatch.setattr(WalWriter, "wait", wait_unless_interrupted)
    with cm.connect(tmp_path / "db", create=True, durability="full", file_system=fs) as db:
        try:
            leader = _hold_a_group_in_its_sync(db, fs)
            errors: list[BaseException] = []

            def put_catching(key: bytes) -> None:
                try:
                    db.kv.put(key, b"v")
                except BaseException as e:
                    errors.append(e)

            gone = threading.Thread(target=put_catching, args=(b"x",), name="interrupted")
            gone.start()
            gone.join(WAIT_TIMEOUT)
            parked = threading.Thread(target=put_catching, args=(b"y",))
            parked.start()
            wait_until(lambda: db.stats()["kv_keys_in_memory"] == 3, "y has queued")
        finally:
            fs.gate.release.set()
        leader.join(WAIT_TIMEOUT)
        parked.join(WAIT_TIMEOUT)
        assert not parked.is_alive(), "the parked committer was stranded"
        assert [type(e) for e in errors] == [KeyboardInterrupt]
        assert db.kv.get(b"y") == b"v"
    with cm.connect(tmp_path / "db") as db:
        assert db.kv.get(b"x") == b"v" and db.kv.get(b"y") == b"v"
