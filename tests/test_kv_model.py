"""The key/value store against a dict, under random operations mixed with reopens
(Hypothesis stateful testing), and the I/O-error loop: fail the Nth file operation
of a workload for every N, then check that what was acknowledged survives."""

import contextlib
import errno
import shutil
import tempfile
from pathlib import Path
from typing import ClassVar

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import colibri_mm as cm
from colibri_mm.storage.faults import FaultyFileSystem

KEYS = st.binary(min_size=0, max_size=6)
VALUES = st.binary(max_size=40)


class KvAgainstDict(RuleBasedStateMachine):
    """Every read of the store equals the same read of a dict."""

    OPTIONS: ClassVar[dict[str, object]] = {"durability": "normal",
                                            "wal_segment_size": 1 << 20}

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="colibri-model-"))
        self.db = cm.connect(self.directory / "db", create=True, **self.OPTIONS)
        self.model: dict[bytes, bytes] = {}
        self.snapshot: cm.Snapshot | None = None
        self.snapshot_model: dict[bytes, bytes] = {}

    @rule(key=KEYS, value=VALUES)
    def put(self, key: bytes, value: bytes) -> None:
        self.db.kv.put(key, value)
        self.model[key] = value

    @rule(key=KEYS)
    def delete(self, key: bytes) -> None:
        assert self.db.kv.delete(key) == (key in self.model)
        self.model.pop(key, None)

    @rule(keys=st.lists(KEYS, max_size=20), value=VALUES)
    def put_many(self, keys: list[bytes], value: bytes) -> None:
        self.db.kv.put_many(keys, [value] * len(keys))
        self.model.update(dict.fromkeys(keys, value))

    @rule(puts=st.dictionaries(KEYS, VALUES, max_size=5), deletes=st.lists(KEYS, max_size=3),
          fail=st.booleans())
    def transaction(self, puts: dict[bytes, bytes], deletes: list[bytes], fail: bool) -> None:
        try:
            with self.db.transaction() as tx:
                for k, v in puts.items():
                    tx.kv.put(k, v)
                for k in deletes:
                    tx.kv.delete(k)
                if fail:
                    raise KeyError("abort")
        except KeyError:
            return
        self.model.update(puts)
        for k in deletes:
            self.model.pop(k, None)

    @rule(first=st.dictionaries(KEYS, VALUES, max_size=4),
          bulk=st.dictionaries(KEYS, VALUES, max_size=12),
          deletes=st.lists(KEYS, max_size=3), last=st.dictionaries(KEYS, VALUES, max_size=3),
          probes=st.lists(KEYS, max_size=4))
    def mixed_transaction(self, first: dict[bytes, bytes], bulk: dict[bytes, bytes],
                          deletes: list[bytes], last: dict[bytes, bytes],
                          probes: list[bytes]) -> None:
        """Single writes, a put_many and deletes in one transaction, read back inside it."""
        expected = dict(self.model)
        with self.db.transaction() as tx:
            for k, v in first.items():
                tx.kv.put(k, v)
            tx.kv.put_many(list(bulk), list(bulk.values()))
            for k in deletes:
                tx.kv.delete(k)
            for k, v in last.items():
                tx.kv.put(k, v)
            expected.update(first)
            expected.update(bulk)
            for k in deletes:
                expected.pop(k, None)
            expected.update(last)
            for k in [*probes, *bulk, *deletes]:
                assert tx.kv.get(k) == expected.get(k)
            assert list(tx.kv.scan()) == sorted(expected.items())
        self.model = expected

    @rule()
    def checkpoint(self) -> None:
        self.db.checkpoint()

    @rule(key=KEYS)
    def get(self, key: bytes) -> None:
        assert self.db.kv.get(key) == self.model.get(key)

    @rule(start=st.none() | KEYS, end=st.none() | KEYS, prefix=st.none() | KEYS)
    def scan(self, start: bytes | None, end: bytes | None, prefix: bytes | None) -> None:
        expected = sorted(
            (k, v) for k, v in self.model.items()
            if (start is None or k >= start) and (end is None or k < end)
            and (prefix is None or k.startswith(prefix)))
        assert list(self.db.kv.scan(start=start, end=end, prefix=prefix)) == expected

    @precondition(lambda self: self.snapshot is None)
    @rule()
    def take_snapshot(self) -> None:
        self.snapshot = self.db.snapshot()
        self.snapshot_model = dict(self.model)

    @precondition(lambda self: self.snapshot is not None)
    @rule()
    def check_and_release_snapshot(self) -> None:
        assert self.snapshot is not None
        assert dict(self.snapshot.kv.scan()) == self.snapshot_model
        self.snapshot.close()
        self.snapshot = None

    @rule()
    def reopen(self) -> None:
        if self.snapshot is not None:
            self.snapshot.close()
            self.snapshot = None
        self.db.close()
        self.db = cm.connect(self.directory / "db", **self.OPTIONS)

    @invariant()
    def sizes_agree(self) -> None:
        assert sum(1 for _ in self.db.kv.scan()) == len(self.model)

    def teardown(self) -> None:
        self.db.close()
        shutil.rmtree(self.directory, ignore_errors=True)


class KvAgainstDictBulk(KvAgainstDict):
    """The same, with every transaction of 3 or more changes committed and replayed
    as a sorted array layer, and reopens that replay the WAL (no checkpoint at close)."""

    OPTIONS: ClassVar[dict[str, object]] = {**KvAgainstDict.OPTIONS, "bulk_changes": 3,
                                            "checkpoint_on_close": False}


TestKvAgainstDict = KvAgainstDict.TestCase
TestKvAgainstDict.settings = settings(max_examples=40, stateful_step_count=40,
                                      deadline=None)
TestKvAgainstDictBulk = KvAgainstDictBulk.TestCase
TestKvAgainstDictBulk.settings = settings(max_examples=40, stateful_step_count=40,
                                          deadline=None)


def workload(db: cm.Database, acknowledged: dict[bytes, bytes | None]) -> None:
    """A short workload; records what each acknowledged commit did."""
    for i in range(6):
        db.kv.put(f"k{i}", f"v{i}")
        acknowledged[f"k{i}".encode()] = f"v{i}".encode()
    db.kv.put_many([b"m%d" % i for i in range(300)], [b"x" * 50] * 300)
    acknowledged.update({b"m%d" % i: b"x" * 50 for i in range(300)})
    db.kv.delete("k2")
    acknowledged[b"k2"] = None
    with db.transaction() as tx:
        tx.kv.put("t1", "a")
        tx.kv.put("t2", "b")
    acknowledged.update({b"t1": b"a", b"t2": b"b"})


def count_operations(directory: Path) -> tuple[int, int]:
    """File operations of the workload, and how many changes it acknowledges."""
    fs = FaultyFileSystem()
    acknowledged: dict[bytes, bytes | None] = {}
    db = cm.connect(directory, create=True, file_system=fs)
    workload(db, acknowledged)
    db.close()
    return fs.operations, len(acknowledged)


@pytest.mark.parametrize("kind", ["eio", "enospc", "power"])
def test_failing_every_nth_operation_loses_nothing_acknowledged(tmp_path: Path,
                                                                kind: str) -> None:
    total, changes = count_operations(tmp_path / "count")
    assert total > 10
    cut_short = 0
    for n in range(1, total + 1):
        directory = tmp_path / f"db{n}"
        fs = FaultyFileSystem()
        fs.fail_at(n, fail_with=errno.ENOSPC if kind == "enospc" else errno.EIO,
                   persistent=kind == "power")
        acknowledged: dict[bytes, bytes | None] = {}
        db = None
        try:
            db = cm.connect(directory, create=True, file_system=fs)
            workload(db, acknowledged)
        except (OSError, cm.Error):
            pass
        finally:
            if db is not None:
                with contextlib.suppress(OSError, cm.Error):
                    db.close()
        if kind == "power":
            fs.drop_unsynced()
        if not (directory / "colibri.meta").exists():
            assert not acknowledged
            continue
        try:
            reopened = cm.connect(directory)
        except cm.CorruptionError:
            # Only acceptable before the database's creation was complete.
            assert not acknowledged, f"operation {n}: acknowledged data unreadable"
            continue
        cut_short += 0 < len(acknowledged) < changes
        with reopened:
            for key, value in acknowledged.items():
                assert reopened.kv.get(key) == value, (n, key)
    assert cut_short > 3, "the injected faults never interrupted the workload"
