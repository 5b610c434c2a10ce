"""The fault-injecting file system: counting, failing, power loss."""

import errno
import os
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from colibri_mm.storage.faults import OPERATION_KINDS, FaultyFileSystem

SEEDS = range(200)


def pattern(n: int, seed: int) -> bytes:
    """``n`` bytes, different for each seed, never zero (so holes are visible)."""
    return bytes(1 + (seed * 37 + i * 11) % 255 for i in range(n))


def make_durable(path: Path, data: bytes) -> None:
    """A file that exists and is durable before the fault layer sees it."""
    path.write_bytes(data)


# -- counting and failing --------------------------------------------------------------


def test_counts_every_mutating_operation_by_kind(tmp_path: Path) -> None:
    fs = FaultyFileSystem()
    f = fs.open(tmp_path / "a", create=True)
    f.pwrite(b"hello", 0)
    f.pwrite(b"world", 5)
    f.datasync()
    f.truncate(3)
    f.sync()
    assert f.pread(10, 0) == b"hel"
    assert f.size() == 3
    f.close()
    fs.rename(tmp_path / "a", tmp_path / "b")
    fs.sync_dir(tmp_path)
    g = fs.open(tmp_path / "b")  # no create: not counted
    g.close()
    fs.remove(tmp_path / "b")
    fs.mkdir(tmp_path / "d")
    assert fs.listdir(tmp_path) == ["d"]
    assert fs.operations == 9
    assert fs.operations_by_kind == {
        "open": 1, "pwrite": 2, "datasync": 1, "truncate": 1, "sync": 1,
        "rename": 1, "sync_dir": 1, "remove": 1,
    }
    assert set(fs.operations_by_kind) == OPERATION_KINDS


def test_fail_at_nth_pwrite_raises_and_writes_nothing(tmp_path: Path) -> None:
    fs = FaultyFileSystem()
    path = tmp_path / "data"
    f = fs.open(path, create=True)
    fs.fail_at(2, {"pwrite"})
    f.pwrite(b"aaaa", 0)
    with pytest.raises(OSError) as caught:
        f.pwrite(b"bbbb", 4)
    assert caught.value.errno == errno.EIO
    message = str(caught.value)
    assert "pwrite" in message and str(path) in message and "injected" in message
    assert path.read_bytes() == b"aaaa"
    f.pwrite(b"cccc", 4)  # the fault fired once and is gone
    assert path.read_bytes() == b"aaaacccc"
    assert fs.faults_injected == 1
    f.close()


def test_fail_at_counts_from_the_call_and_only_chosen_kinds(tmp_path: Path) -> None:
    fs = FaultyFileSystem()
    f = fs.open(tmp_path / "data", create=True)
    f.pwrite(b"x", 0)
    f.pwrite(b"x", 1)
    fs.fail_at(2, {"sync", "datasync"})
    f.pwrite(b"x", 2)
    f.datasync()  # first matching operation
    f.pwrite(b"x", 3)
    with pytest.raises(OSError, match="sync"):
        f.sync()  # second
    assert fs.operations == 7
    f.close()


def test_failed_sync_leaves_the_data_unsynced(tmp_path: Path) -> None:
    fs = FaultyFileSystem()
    path = tmp_path / "data"
    make_durable(path, b"old!")
    f = fs.open(path)
    f.pwrite(b"new!", 0)
    fs.fail_at(1, {"datasync"})
    with pytest.raises(OSError):
        f.datasync()
    f.close()
    fs.drop_unsynced()
    assert path.read_bytes() == b"old!"


def test_failed_pwrite_can_tear(tmp_path: Path) -> None:
    fs = FaultyFileSystem()
    path = tmp_path / "data"
    make_durable(path, b"." * 10)
    f = fs.open(path)
    fs.fail_at(1, {"pwrite"}, torn_bytes=3)
    with pytest.raises(OSError):
        f.pwrite(b"ABCDEF", 2)
    assert path.read_bytes() == b"..ABC....."
    f.close()
    fs.drop_unsynced()  # the torn prefix was never synced
    assert path.read_bytes() == b"." * 10


def test_persistent_failure_and_fail_with(tmp_path: Path) -> None:
    fs = FaultyFileSystem()
    path = tmp_path / "data"
    f = fs.open(path, create=True)
    fs.fail_at(2, persistent=True, fail_with=errno.ENOSPC)
    f.pwrite(b"a", 0)
    operations: list[Callable[[], None]] = [
        lambda: f.pwrite(b"b", 1), f.sync, lambda: f.truncate(0),
        lambda: fs.sync_dir(tmp_path)]
    for operation in operations:
        with pytest.raises(OSError) as caught:
            operation()
        assert caught.value.errno == errno.ENOSPC
        assert "No space left" in str(caught.value)
    assert fs.faults_injected == 4
    assert path.read_bytes() == b"a"
    fs.clear_faults()
    f.pwrite(b"b", 1)
    assert path.read_bytes() == b"ab"
    f.close()


def test_failed_entry_operations_do_nothing(tmp_path: Path) -> None:
    fs = FaultyFileSystem()
    make_durable(tmp_path / "a", b"A")
    make_durable(tmp_path / "b", b"B")
    fs.fail_at(1, {"rename"})
    with pytest.raises(OSError) as caught:
        fs.rename(tmp_path / "a", tmp_path / "b")
    assert "rename" in str(caught.value)
    assert str(tmp_path / "a") in str(caught.value)
    assert str(tmp_path / "b") in str(caught.value)
    fs.fail_at(1, {"remove"})
    with pytest.raises(OSError, match="remove"):
        fs.remove(tmp_path / "a")
    fs.fail_at(1, {"open"})
    with pytest.raises(OSError, match="open"):
        fs.open(tmp_path / "c", create=True)
    assert fs.listdir(tmp_path) == ["a", "b"]
    assert (tmp_path / "a").read_bytes() == b"A"
    assert (tmp_path / "b").read_bytes() == b"B"


def test_fail_at_rejects_bad_arguments() -> None:
    fs = FaultyFileSystem()
    with pytest.raises(ValueError, match="fsync"):
        fs.fail_at(1, {"fsync"})
    with pytest.raises(ValueError, match="at least 1"):
        fs.fail_at(0)
    with pytest.raises(ValueError, match="torn_bytes"):
        fs.fail_at(1, torn_bytes=-1)
    with pytest.raises(ValueError, match="model"):
        fs.power_loss(random.Random(0), model="sometimes")  # type: ignore[arg-type]


def small_workload(fs: FaultyFileSystem, directory: Path) -> None:
    """Write a file through a temporary name, the usual atomic-replace dance."""
    f = fs.open(directory / "tmp", create=True, exclusive=True)
    try:
        f.pwrite(b"header", 0)
        f.pwrite(b"body" * 100, 6)
        f.datasync()
    finally:
        f.close()
    fs.rename(directory / "tmp", directory / "final")
    fs.sync_dir(directory)


def test_the_sqlite_loop_fails_each_operation_in_turn(tmp_path: Path) -> None:
    counting = FaultyFileSystem()
    (tmp_path / "count").mkdir()
    small_workload(counting, tmp_path / "count")
    count = counting.operations
    assert count == 6
    for n in range(1, count + 1):
        directory = tmp_path / f"run{n}"
        directory.mkdir()
        fs = FaultyFileSystem()
        fs.fail_at(n)
        with pytest.raises(OSError, match="injected"):
            small_workload(fs, directory)
        assert fs.operations == n
        # Nothing after the failure happened: "final" exists only if the rename ran.
        renamed = (directory / "final").exists()
        assert renamed == (n == count)


# -- power loss: file data -------------------------------------------------------------


def outcome(got: bytes, new: bytes, old: bytes) -> str:
    """Classify a region after power loss: the new bytes whole, none, or a prefix."""
    for cut in range(len(new) + 1):
        if got == new[:cut] + old[cut:]:
            return "kept" if cut == len(new) else "dropped" if cut == 0 else "torn"
    raise AssertionError(f"region holds bytes that were never written there: {got!r}")


def overwrite_three(tmp_path: Path, seed: int) -> tuple[FaultyFileSystem, Path, bytes]:
    """A durable 3000-byte file, then three unsynced overwrites of its thirds."""
    fs = FaultyFileSystem()
    path = tmp_path / f"data{seed}"
    f = fs.open(path, create=True)
    old = pattern(3000, 1)
    f.pwrite(old, 0)
    f.sync()
    fs.sync_dir(tmp_path)
    for i in range(3):
        f.pwrite(pattern(1000, 100 + i), i * 1000)
    f.close()
    return fs, path, old


def test_power_loss_keeps_drops_and_tears_writes_in_prefix_order(tmp_path: Path) -> None:
    seen = set()
    for seed in SEEDS:
        fs, path, old = overwrite_three(tmp_path, seed)
        fs.power_loss(random.Random(seed))
        got = path.read_bytes()
        assert len(got) == 3000
        outcomes = [outcome(got[i * 1000:(i + 1) * 1000], pattern(1000, 100 + i),
                            old[i * 1000:(i + 1) * 1000]) for i in range(3)]
        # A prefix survives: after the first write not kept whole, nothing survives.
        first_loss = next((i for i, o in enumerate(outcomes) if o != "kept"), 3)
        assert all(o == "dropped" for o in outcomes[first_loss + 1:]), outcomes
        seen.update(outcomes)
        path.unlink()
    assert seen == {"kept", "dropped", "torn"}


def test_independent_model_lets_a_later_write_outlive_an_earlier_one(
        tmp_path: Path) -> None:
    seen = set()
    reordered = False
    for seed in SEEDS:
        fs, path, old = overwrite_three(tmp_path, seed)
        report = fs.power_loss(random.Random(seed), model="independent")
        got = path.read_bytes()
        outcomes = [outcome(got[i * 1000:(i + 1) * 1000], pattern(1000, 100 + i),
                            old[i * 1000:(i + 1) * 1000]) for i in range(3)]
        assert report.writes_kept == outcomes.count("kept")
        assert report.writes_torn == outcomes.count("torn")
        assert report.writes_dropped == outcomes.count("dropped")
        seen.update(outcomes)
        reordered |= outcomes[0] == "dropped" and outcomes[2] == "kept"
        path.unlink()
    assert seen == {"kept", "dropped", "torn"}
    assert reordered


def random_workload(fs: FaultyFileSystem, path: Path, rng: random.Random,
                    ) -> tuple[bytes, list[tuple[int, bytes]], int]:
    """Appends and overwrites with syncs between; returns the durable image at the
    last sync, the unsynced writes after it and the final size."""
    f = fs.open(path, create=True)
    fs.sync_dir(path.parent)
    size = 0
    durable = b""
    unsynced: list[tuple[int, bytes]] = []
    for step in range(rng.randint(1, 12)):
        # An overwrite or an append: never a hole.
        offset = rng.randrange(size) if size and rng.random() < 0.5 else size
        data = pattern(rng.randint(1, 700), step + 7 * rng.randrange(1000))
        f.pwrite(data, offset)
        size = max(size, offset + len(data))
        unsynced.append((offset, data))
        if rng.random() < 0.3:
            f.sync()
            durable = path.read_bytes()
            unsynced = []
    f.close()
    return durable, unsynced, size


def test_power_loss_keeps_synced_bytes_and_invents_nothing(tmp_path: Path) -> None:
    for model in ("prefix", "independent"):
        for seed in SEEDS:
            rng = random.Random(seed)
            fs = FaultyFileSystem()
            path = tmp_path / f"{model}{seed}"
            durable, unsynced, size = random_workload(fs, path, rng)
            fs.power_loss(rng, model=model)
            got = path.read_bytes()
            assert len(durable) <= len(got) <= size  # synced bytes are all there
            allowed: list[set[int]] = [set() for _ in range(max(len(got), size))]
            for i, byte in enumerate(durable):
                allowed[i].add(byte)
            for offset, data in unsynced:
                for i, byte in enumerate(data):
                    allowed[offset + i].add(byte)
            for i, byte in enumerate(got):
                if model == "independent" and i >= len(durable):
                    allowed[i].add(0)  # a hole left by a lost earlier append
                assert byte in allowed[i], (model, seed, i)


def test_power_loss_reverts_sizes(tmp_path: Path) -> None:
    sizes = set()
    for seed in SEEDS:
        fs = FaultyFileSystem()
        path = tmp_path / "grown"
        make_durable(path, pattern(100, 0))
        f = fs.open(path)
        f.pwrite(pattern(50, 1), 100)
        f.truncate(120)
        f.close()
        fs.power_loss(random.Random(seed))
        got = path.read_bytes()
        assert got[:100] == pattern(100, 0)
        assert got[100:] == pattern(50, 1)[:len(got) - 100]
        sizes.add(len(got))
    assert 100 in sizes and 150 in sizes and 120 in sizes
    assert any(100 < s < 150 and s != 120 for s in sizes)  # a torn append


def test_power_loss_undoes_an_unsynced_shrink(tmp_path: Path) -> None:
    results = set()
    for seed in range(40):
        fs = FaultyFileSystem()
        path = tmp_path / "shrunk"
        make_durable(path, pattern(100, 3))
        f = fs.open(path)
        f.truncate(40)
        f.close()
        fs.power_loss(random.Random(seed))
        results.add(path.read_bytes())
    assert results == {pattern(100, 3), pattern(40, 3)}


def test_writes_follow_a_file_through_a_rename(tmp_path: Path) -> None:
    fs = FaultyFileSystem()
    f = fs.open(tmp_path / "a", create=True)
    f.pwrite(b"synced", 0)
    f.sync()
    fs.rename(tmp_path / "a", tmp_path / "b")
    fs.sync_dir(tmp_path)
    f.pwrite(b" and not", 6)
    f.close()
    fs.drop_unsynced()
    assert fs.listdir(tmp_path) == ["b"]
    assert (tmp_path / "b").read_bytes() == b"synced"


# -- power loss: directory entries -----------------------------------------------------


def test_created_files_vanish_unless_their_directory_was_synced(tmp_path: Path) -> None:
    vanished = survived = 0
    for seed in SEEDS:
        directory = tmp_path / str(seed)
        fs = FaultyFileSystem()
        fs.mkdir(directory)
        kept = fs.open(directory / "kept", create=True)
        kept.pwrite(b"durable", 0)
        kept.sync()
        kept.close()
        fs.sync_dir(directory)
        loose = fs.open(directory / "loose", create=True)
        loose.pwrite(b"synced data, unsynced name", 0)
        loose.sync()
        loose.close()
        fs.power_loss(random.Random(seed))
        assert (directory / "kept").read_bytes() == b"durable"
        if (directory / "loose").exists():
            assert (directory / "loose").read_bytes() == b"synced data, unsynced name"
            survived += 1
        else:
            vanished += 1
    assert vanished and survived


def test_unsynced_rename_is_atomic_and_can_be_undone(tmp_path: Path) -> None:
    states = set()
    for seed in SEEDS:
        directory = tmp_path / str(seed)
        directory.mkdir()
        make_durable(directory / "final", b"old")
        fs = FaultyFileSystem()
        f = fs.open(directory / "tmp", create=True)
        f.pwrite(b"new", 0)
        f.sync()
        f.close()
        fs.rename(directory / "tmp", directory / "final")
        fs.power_loss(random.Random(seed))
        names = tuple(fs.listdir(directory))
        contents = tuple((directory / name).read_bytes() for name in names)
        states.add((names, contents))
    assert states == {
        (("final",), (b"old",)),  # creation and rename undone
        (("final", "tmp"), (b"old", b"new")),  # rename undone
        (("final",), (b"new",)),  # both kept
    }


def test_synced_rename_always_survives(tmp_path: Path) -> None:
    for seed in range(50):
        directory = tmp_path / str(seed)
        directory.mkdir()
        make_durable(directory / "final", b"old")
        fs = FaultyFileSystem()
        small_workload(fs, directory)
        fs.power_loss(random.Random(seed))
        assert fs.listdir(directory) == ["final"]
        assert (directory / "final").read_bytes() == b"header" + b"body" * 100


def test_unsynced_remove_can_be_undone(tmp_path: Path) -> None:
    back = gone = 0
    for seed in range(60):
        directory = tmp_path / str(seed)
        directory.mkdir()
        make_durable(directory / "victim", b"content")
        make_durable(directory / "synced-victim", b"content")
        fs = FaultyFileSystem()
        fs.remove(directory / "synced-victim")
        fs.sync_dir(directory)
        fs.remove(directory / "victim")
        fs.power_loss(random.Random(seed))
        assert not (directory / "synced-victim").exists()
        if (directory / "victim").exists():
            assert (directory / "victim").read_bytes() == b"content"
            back += 1
        else:
            gone += 1
    assert back and gone


def test_a_sync_dir_elsewhere_does_not_make_entries_durable(tmp_path: Path) -> None:
    fs = FaultyFileSystem()
    fs.mkdir(tmp_path / "one")
    fs.mkdir(tmp_path / "two")
    fs.open(tmp_path / "one" / "x", create=True).close()
    fs.sync_dir(tmp_path / "two")
    fs.drop_unsynced()
    assert fs.listdir(tmp_path / "one") == []


# -- deterministic power loss ----------------------------------------------------------


def test_drop_unsynced_gives_exactly_the_durable_image(tmp_path: Path) -> None:
    make_durable(tmp_path / "old", b"0123456789")
    make_durable(tmp_path / "doomed", b"still here")
    fs = FaultyFileSystem()
    old = fs.open(tmp_path / "old")
    old.pwrite(b"ab", 2)
    old.sync()
    old.pwrite(b"XYZ", 8)  # overwrites and grows, unsynced
    old.truncate(4)
    old.pwrite(b"tail", 20)
    synced = fs.open(tmp_path / "synced", create=True)
    synced.pwrite(b"kept", 0)
    synced.datasync()
    fs.sync_dir(tmp_path)
    synced.pwrite(b"lost", 4)
    fresh = fs.open(tmp_path / "fresh", create=True)
    fresh.pwrite(b"never made durable", 0)
    fresh.sync()
    fs.remove(tmp_path / "doomed")
    for f in (old, synced, fresh):
        f.close()
    report = fs.drop_unsynced()
    assert fs.listdir(tmp_path) == ["doomed", "old", "synced"]
    assert (tmp_path / "old").read_bytes() == b"01ab456789"
    assert (tmp_path / "synced").read_bytes() == b"kept"
    assert (tmp_path / "doomed").read_bytes() == b"still here"
    assert report.writes_kept == report.writes_torn == report.entries_kept == 0
    assert report.writes_dropped == 4
    assert report.entries_undone == 2


def test_same_seed_same_result(tmp_path: Path) -> None:
    def run(directory: Path) -> dict[str, bytes]:
        directory.mkdir()
        fs = FaultyFileSystem()
        durable_rng = random.Random(5)
        for name in ("a", "b", "c"):
            random_workload(fs, directory / name, durable_rng)
        fs.power_loss(random.Random(11))
        return {name: (directory / name).read_bytes() for name in fs.listdir(directory)}

    assert run(tmp_path / "one") == run(tmp_path / "two")


def test_handles_fail_after_power_loss_and_tracking_restarts(tmp_path: Path) -> None:
    fs = FaultyFileSystem()
    path = tmp_path / "data"
    f = fs.open(path, create=True)
    fs.sync_dir(tmp_path)
    f.pwrite(b"abc", 0)
    fs.drop_unsynced()
    stale_calls: list[Callable[[], None]] = [lambda: f.pwrite(b"zzz", 0), f.sync,
                                             lambda: f.truncate(0)]
    for call in stale_calls:
        with pytest.raises(OSError, match="power loss"):
            call()
    f.close()
    assert path.read_bytes() == b""
    g = fs.open(path)
    g.pwrite(b"after", 0)
    g.close()
    fs.drop_unsynced()
    assert path.read_bytes() == b""
    assert os.listdir(tmp_path) == ["data"]


def test_writes_of_any_buffer_are_recorded(tmp_path: Path) -> None:
    fs = FaultyFileSystem()
    path = tmp_path / "data"
    make_durable(path, b"\x00" * 16)
    f = fs.open(path)
    f.pwrite(np.arange(2, dtype=np.uint32), 0)
    f.pwrite(bytearray(b"ab"), 8)
    f.pwrite(memoryview(b"cd"), 10)
    assert path.read_bytes() == (np.arange(2, dtype=np.uint32).tobytes() + b"ab" + b"cd"
                                 + b"\x00" * 4)
    f.close()
    fs.drop_unsynced()
    assert path.read_bytes() == b"\x00" * 16
