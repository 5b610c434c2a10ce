"""Flipped bits and truncation in every file of a small database: the result is a
typed CorruptionError naming the file, or a database holding exactly the first k
committed transactions for some k (a torn WAL tail); never wrong data, never a crash."""

import os
from pathlib import Path

import pytest
from damage import damaged_copy

import colibri_mm as cm

from kernel_inputs import JIT_DISABLED

TRANSACTIONS = 20


def build(directory: Path) -> list[dict[bytes, bytes]]:
    """A database of TRANSACTIONS commits; returns the state after each prefix."""
    states = [{}]
    state: dict[bytes, bytes] = {}
    with cm.connect(directory, create=True, checkpoint_on_close=False) as db:
        for i in range(TRANSACTIONS):
            with db.transaction() as tx:
                tx.kv.put(f"k{i}", f"value {i}" * (1 + i % 3))
                tx.kv.put("counter", str(i))
            state = {**state, f"k{i}".encode(): (f"value {i}" * (1 + i % 3)).encode(),
                     b"counter": str(i).encode()}
            states.append(state)
    return states


def outcome(directory: Path, mode: str = "point_in_time") -> dict[bytes, bytes] | str:
    try:
        with cm.connect(directory, recovery=mode, checkpoint_on_close=False) as db:
            return dict(db.kv.scan())
    except cm.CorruptionError as e:
        return f"corruption: {e}"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[bytes, bytes]]]:
    directory = tmp_path_factory.mktemp("pristine") / "db"
    return directory, build(directory)


def files_of(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*")
                  if p.is_file() and p.name not in ("LOCK", "data.pages"))


@pytest.mark.parametrize("truncate", [False, True], ids=["flip", "truncate"])
def test_every_region_of_every_file(pristine: tuple[Path, list[dict[bytes, bytes]]],
                                    tmp_path: Path, truncate: bool) -> None:
    directory, states = pristine
    stride = 97 if JIT_DISABLED else 13
    seen_prefixes = set()
    seen_errors = 0
    for file in files_of(directory):
        size = file.stat().st_size
        offsets = sorted(set(range(0, min(size, 600), 3)) | set(range(0, size, stride)))
        for offset in offsets:
            damaged_copy(directory, tmp_path / "db", file, offset, truncate)
            result = outcome(tmp_path / "db")
            if isinstance(result, str):
                assert str(file.name) in result or "meta" in result, result
                seen_errors += 1
                continue
            assert result in states, f"{file.name}@{offset}: not a prefix of the commits"
            seen_prefixes.add(states.index(result))
    assert seen_errors > 0
    assert len(seen_prefixes) > 3, "damage never cut the WAL at different places"


def test_absolute_mode_refuses_a_torn_tail(pristine: tuple[Path, list[dict[bytes, bytes]]],
                                           tmp_path: Path) -> None:
    directory, states = pristine
    segment = next(p for p in files_of(directory) if p.suffix == ".wal")
    damaged_copy(directory, tmp_path / "db", segment, segment.stat().st_size - 5, True)
    result = outcome(tmp_path / "db", "absolute")
    assert isinstance(result, str) and segment.name in result and "truncated" in result
    # The default mode recovers every transaction but the torn last one, and says so.
    with cm.connect(tmp_path / "db") as db:
        assert dict(db.kv.scan()) == states[-2]
        assert any("truncated" in line for line in db.stats()["recovery_dropped"])


def test_skip_corrupted_salvages_past_damage(tmp_path: Path) -> None:
    directory = tmp_path / "blocks"
    with cm.connect(directory, create=True, wal_block_size=4096,
                    checkpoint_on_close=False) as db:
        for i in range(40):
            db.kv.put(f"k{i:02}", bytes([i]) * 500)
    segment = next(p for p in files_of(directory) if p.suffix == ".wal")
    damaged_copy(directory, tmp_path / "db", segment, 600, False)
    point = outcome(tmp_path / "db")
    assert isinstance(point, dict)
    damaged_copy(directory, tmp_path / "db", segment, 600, False)
    with cm.connect(tmp_path / "db", recovery="skip_corrupted", wal_block_size=4096) as db:
        salvaged = dict(db.kv.scan())
        dropped = db.stats()["recovery_dropped"]
    assert any("skipped" in line for line in dropped), dropped
    assert set(point.items()) < set(salvaged.items())
    # Everything salvaged is what was written: nothing invented, nothing altered.
    assert all(v == bytes([int(k[1:])]) * 500 for k, v in salvaged.items())
    assert len(salvaged) > 30


def test_damage_in_checkpointed_pages_is_detected(tmp_path: Path) -> None:
    """Every used page of the data file (runs and catalog) and the meta: a flipped
    byte gives CorruptionError naming the file, or (unused bytes) the right data."""
    directory = tmp_path / "checkpointed"
    expected = {}
    with cm.connect(directory, create=True, page_size=4096) as db:
        for i in range(3):
            batch = {f"key{i}-{j:03}".encode(): bytes([i]) * 30 for j in range(150)}
            db.kv.put_many(list(batch), list(batch.values()))
            expected.update(batch)
            db.checkpoint()
        used_pages = db.stats()["data_pages_used"]
    data = directory / "data.pages"
    meta = directory / "colibri.meta"
    os.truncate(data, used_pages * 4096)  # drop the sparse tail: copies stay small
    targets = [(data, page * 4096 + at) for page in range(1, used_pages)
               for at in (0, 9, 17, 22, 64, 700, 2049, 4095)]
    targets += [(meta, slot + at) for slot in (0, 4096) for at in range(0, 88, 5)]
    errors = 0
    for file, offset in targets:
        damaged_copy(directory, tmp_path / "db", file, offset, False)
        result = outcome(tmp_path / "db")
        if isinstance(result, str):
            assert file.name in result or (file == meta and "meta slot" in result), result
            errors += 1
        else:
            assert result == expected, f"{file.name}@{offset}: wrong data returned"
    assert errors > 10
