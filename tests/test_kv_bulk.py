"""Bulk commits: large transactions committed, replayed and followed as sorted arrays."""

from pathlib import Path

import pyarrow as pa
import pytest

import colibri_mm as cm
from colibri_mm.database import MAX_FROZEN_LAYERS

N = 3000


def pairs(n: int = N, tag: bytes = b"v") -> tuple[list[bytes], list[bytes]]:
    keys = [b"key%07d" % ((i * 7919) % n) for i in range(n)]
    return keys, [tag + k for k in keys]


def test_put_many_is_one_sorted_layer_and_reads_back(tmp_path: Path) -> None:
    with cm.connect(tmp_path / "db", create=True, durability="normal") as db:
        keys, values = pairs()
        assert db.kv.put_many(keys, values) == N
        stats = db.stats()
        assert stats["kv_layers_in_memory"] == 2  # the batch and an empty active memtable
        assert stats["kv_keys_in_memory"] == N
        assert db.kv.get(keys[17]) == values[17]
        assert list(db.kv.scan()) == sorted(zip(keys, values, strict=True))
        assert list(db.kv.scan(prefix=b"key000012")) == [
            (b"key%07d" % i, b"vkey%07d" % i) for i in range(120, 130)]


def test_later_writes_win_inside_one_transaction(tmp_path: Path) -> None:
    keys, values = pairs()
    with cm.connect(tmp_path / "db", create=True) as db:
        with db.transaction() as tx:
            tx.kv.put(keys[0], b"before")
            tx.kv.put_many(keys, values)
            tx.kv.put_many(keys[:N // 2], [b"again"] * (N // 2))
            tx.kv.delete(keys[1])
            tx.kv.put(keys[2], b"after")
            assert tx.kv.get(keys[0]) == b"again"
            assert tx.kv.get(keys[1]) is None
            assert tx.kv.get(keys[2]) == b"after"
            assert tx.kv.get(keys[-1]) == values[-1]
            seen = dict(tx.kv.scan())
        assert dict(db.kv.scan()) == seen
        assert len(seen) == N - 1


def test_a_snapshot_does_not_see_a_later_bulk_commit(tmp_path: Path) -> None:
    keys, values = pairs()
    with cm.connect(tmp_path / "db", create=True, durability="normal") as db:
        db.kv.put(keys[0], b"old")
        with db.snapshot() as before:
            db.kv.put_many(keys, values)
            assert before.kv.get(keys[0]) == b"old"
            assert before.kv.get(keys[1]) is None
            assert list(before.kv.scan()) == [(keys[0], b"old")]
        with db.snapshot() as after:
            assert after.kv.get(keys[0]) == values[0]


def test_bulk_commits_replay_as_a_batch_after_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "db"
    keys, values = pairs()
    with cm.connect(path, create=True) as db:
        db.kv.put_many(keys, values)  # checkpointed at close: in a sorted run
    with cm.connect(path, checkpoint_on_close=False) as db:
        with db.transaction() as tx:  # a bulk transaction of deletes and puts
            for k in keys[: N // 2]:
                tx.kv.delete(k)
            tx.kv.put_many(keys[N // 2 :], [b"new"] * (N - N // 2))
        db.kv.put("small", "1")
    with cm.connect(path) as db:
        stats = db.stats()
        assert stats["recovery_transactions"] == 2
        assert stats["kv_layers_in_memory"] >= 2
        assert db.kv.get(keys[0]) is None
        assert db.kv.get(keys[-1]) == b"new"
        assert db.kv.get("small") == b"1"
        assert sum(1 for _ in db.kv.scan()) == N - N // 2 + 1


@pytest.mark.parametrize("arrow_type", [pa.binary(), pa.string(), pa.large_binary()])
def test_put_many_takes_arrow_arrays_without_conversion(tmp_path: Path,
                                                        arrow_type: pa.DataType) -> None:
    keys, values = pairs()
    as_text = pa.types.is_string(arrow_type)
    key_array = pa.array([k.decode() if as_text else k for k in keys], arrow_type)
    value_array = pa.chunked_array([pa.array([v.decode() if as_text else v
                                              for v in values], arrow_type)])
    with cm.connect(tmp_path / "db", create=True) as db:
        assert db.kv.put_many(key_array.slice(1), value_array.slice(1)) == N - 1
        assert db.kv.get(keys[0]) is None
        assert db.kv.get(keys[5]) == values[5]
        assert sum(1 for _ in db.kv.scan()) == N - 1


def test_bad_arrow_input_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    keys, values = pairs()
    with cm.connect(tmp_path / "db", create=True, max_value_size=100) as db:
        with_null = pa.array([*values[:9], None, *values[10:]], pa.binary())
        with pytest.raises(ValueError, match=r"values contains nulls \(first at index 9\)"):
            db.kv.put_many(pa.array(keys, pa.binary()), with_null)
        too_big = pa.array([*values[:4], b"x" * 101, *values[5:]], pa.binary())
        with pytest.raises(cm.LimitError, match=r"values\[4\] of 101 bytes exceeds"):
            db.kv.put_many(pa.array(keys, pa.binary()), too_big)
        with pytest.raises(TypeError, match="binary or string"):
            db.kv.put_many(pa.array(keys, pa.binary()), pa.array(range(N)))
        with pytest.raises(ValueError, match=f"{N} keys and {N - 1} values"):
            db.kv.put_many(pa.array(keys, pa.binary()), pa.array(values[1:], pa.binary()))
        assert list(db.kv.scan()) == []
        assert db.stats()["wal_commits"] == 0


def test_many_bulk_commits_keep_the_layers_bounded(tmp_path: Path) -> None:
    with cm.connect(tmp_path / "db", create=True, durability="off") as db:
        for round_ in range(3 * MAX_FROZEN_LAYERS):
            keys, values = pairs(1100, b"r%d" % round_)
            db.kv.put_many(keys, values)
            assert db.stats()["kv_layers_in_memory"] <= 2 * MAX_FROZEN_LAYERS + 1
        assert db.kv.get(keys[3]) == values[3]
        assert db.stats()["checkpoint_id"] >= 1
