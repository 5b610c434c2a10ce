"""Upsert, update, delete and delete_where: the new state for new reads, the old one
for older snapshots, nothing applied when a change is refused, and all of it durable."""

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import colibri_mm as cm

SCHEMA = pa.schema([("id", pa.int32()), ("name", pa.string()), ("n", pa.int64())])


def rows(ids: range, n: int = 0) -> list[dict[str, object]]:
    return [{"id": i, "name": f"r{i}", "n": n} for i in ids]


@pytest.fixture
def db(tmp_path: Path):  # type: ignore[no-untyped-def]
    database = cm.connect(tmp_path / "db", create=True, row_group_rows=4, tail_rows=0)
    database.create_table("t", SCHEMA, primary_key="id")
    with database.transaction() as tx:
        tx.insert("t", rows(range(10)))
    yield database
    database.close()


def content(db: cm.Database) -> dict[int, tuple[str, int]]:
    return {r["id"]: (r["name"], r["n"]) for r in db.table("t").scan().to_arrow_table().to_pylist()}


def test_update_delete_and_what_older_snapshots_see(db: cm.Database) -> None:
    table = db.table("t")
    with db.snapshot() as before:
        with db.transaction() as tx:
            assert tx.update("t", 3, {"n": 30})
            assert tx.update("t", 4, {"name": "four", "n": 40})
            assert not tx.update("t", 99, {"n": 1})
            assert tx.delete("t", 5)
            assert not tx.delete("t", 5)
        assert table.get(3) == {"id": 3, "name": "r3", "n": 30}
        assert table.get(4) == {"id": 4, "name": "four", "n": 40}
        assert table.get(5) is None
        assert table.count() == 9
        old = before.table("t")
        assert old.get(3) == {"id": 3, "name": "r3", "n": 0}
        assert old.get(5) == {"id": 5, "name": "r5", "n": 0}
        assert old.count() == 10


def test_update_can_move_a_row_to_a_free_key_only(db: cm.Database) -> None:
    with db.transaction() as tx:
        assert tx.update("t", 1, {"id": 100})
    assert db.table("t").get(1) is None
    assert db.table("t").get(100) == {"id": 100, "name": "r1", "n": 0}
    with pytest.raises(cm.ConstraintError, match="duplicate primary key id=2"), \
            db.transaction() as tx:
        tx.update("t", 100, {"id": 2})
    with pytest.raises(cm.SchemaError, match="has no column 'nope'"), db.transaction() as tx:
        tx.update("t", 2, {"nope": 1})
    with pytest.raises(cm.SchemaError, match=r"column 'n' does not fit|does not convert"), \
            db.transaction() as tx:
        tx.update("t", 2, {"n": "many"})
    assert len(content(db)) == 10
    assert db.table("t").get(100) is not None


def test_upsert_replaces_and_inserts_and_the_last_repeat_wins(db: cm.Database) -> None:
    with db.transaction() as tx:
        written = tx.upsert("t", [*rows(range(8, 12), n=1), {"id": 11, "name": "last", "n": 2}])
    assert written == 4
    state = content(db)
    assert len(state) == 12
    assert state[8] == ("r8", 1)
    assert state[11] == ("last", 2)
    assert state[7] == ("r7", 0)
    db.create_table("log", pa.schema([("line", pa.string())]))
    with pytest.raises(cm.SchemaError, match="no primary key to upsert by"), \
            db.transaction() as tx:
        tx.upsert("log", [{"line": "x"}])


EVEN = pc.is_in(pc.field("id"), pa.array([0, 2, 4, 6, 8], pa.int32()))


def test_delete_where(db: cm.Database) -> None:
    with db.transaction() as tx:
        assert tx.delete_where("t", EVEN) == 5
        assert tx.delete_where("t", EVEN) == 0
    assert sorted(content(db)) == [1, 3, 5, 7, 9]
    assert db.table("t").get(4) is None
    with db.transaction() as tx:
        tx.insert("t", rows(range(4, 5)))  # the key is free again
    assert db.table("t").get(4) == {"id": 4, "name": "r4", "n": 0}
    db.create_table("log", pa.schema([("line", pa.string())]))
    with db.transaction() as tx:
        tx.insert("log", {"line": ["a", "b", "a"]})
        assert tx.delete_where("log", pc.field("line") == "a") == 2
    assert db.table("log").count() == 1
    with pytest.raises(TypeError, match=r"pyarrow\.compute expression"), db.transaction() as tx:
        tx.delete_where("t", "id > 3")
    with pytest.raises(cm.SchemaError, match="cannot be evaluated"), db.transaction() as tx:
        tx.delete_where("t", pc.field("missing") == 1)
    with pytest.raises(cm.SchemaError, match="has no primary key"), db.transaction() as tx:
        tx.delete("log", "b")


def test_a_transaction_sees_its_own_changes(db: cm.Database) -> None:
    with db.transaction() as tx:
        tx.delete("t", 0)
        tx.insert("t", rows(range(0, 1), n=7))  # the key is free inside the transaction
        tx.update("t", 0, {"n": 8})
        assert tx.delete_where("t", pc.field("n") == 8) == 1
        tx.upsert("t", rows(range(0, 1), n=9))
    assert db.table("t").get(0) == {"id": 0, "name": "r0", "n": 9}
    assert db.table("t").count() == 10


def test_changes_survive_reopen_and_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with cm.connect(path, create=True, checkpoint_on_close=False) as db:
        db.create_table("t", SCHEMA, primary_key="id")
        with db.transaction() as tx:
            tx.insert("t", rows(range(2000)))
            tx.delete_where("t", pc.field("id") >= 1000)
            tx.update("t", 7, {"n": 70})
    with cm.connect(path) as db:
        assert db.table("t").count() == 1000
        assert db.table("t").get(7)["n"] == 70  # type: ignore[index]
        db.checkpoint()
        with db.transaction() as tx:
            tx.upsert("t", rows(range(990, 1010), n=5))
    with cm.connect(path) as db:
        assert db.table("t").count() == 1010
        assert db.table("t").get(1005) == {"id": 1005, "name": "r1005", "n": 5}
        assert db.table("t").get(2) == {"id": 2, "name": "r2", "n": 0}


def chunk_sizes(db: cm.Database) -> list[tuple[int, int]]:
    """(live rows, deleted rows) of each chunk of table t."""
    from colibri_mm.tables import registry
    from colibri_mm.tables import rows as table_rows
    with db.snapshot() as snap:
        definition = registry.lookup(snap.kv, "t")
        return [(live.num_rows, len(table_rows.deleted_rows(snap.kv, definition, chunk)))
                for chunk, _, live in table_rows.live_chunks(snap.kv, definition)]


def test_compact_rewrites_dead_and_small_chunks(db: cm.Database) -> None:
    with db.transaction() as tx:
        tx.delete("t", 1)  # one row of four: below the automatic threshold
        tx.delete("t", 5)
        tx.insert("t", rows(range(20, 21)))
    assert chunk_sizes(db) == [(3, 1), (3, 1), (2, 0), (1, 0)]
    with db.snapshot() as before:
        result = db.table("t").compact()
        assert result == {"chunks_rewritten": 3, "rows_moved": 7, "deleted_rows_dropped": 2}
        assert before.table("t").count() == 9
        assert before.table("t").get(1) is None
        assert before.table("t").get(3) == {"id": 3, "name": "r3", "n": 0}
    assert chunk_sizes(db) == [(2, 0), (4, 0), (3, 0)]  # the half-full chunk stays
    assert sorted(content(db)) == [0, 2, 3, 4, 6, 7, 8, 9, 20]
    assert db.table("t").get(9) == {"id": 9, "name": "r9", "n": 0}
    assert db.table("t").compact()["chunks_rewritten"] == 0


def test_a_chunk_half_deleted_is_rewritten_by_the_deleting_transaction(
        db: cm.Database) -> None:
    with db.snapshot() as before:
        with db.transaction() as tx:
            assert tx.delete_where("t", EVEN) == 5  # half of chunks 0 and 1, 1 of 2 of chunk 2
            assert tx.upsert("t", rows(range(1, 2), n=5)) == 1
        assert before.table("t").count() == 10
    # chunks 0-2 were rewritten as [1, 3, 5, 7] and [9]; the upsert then marked one
    # row of four (below the threshold) and wrote the new version of 1
    assert chunk_sizes(db) == [(3, 1), (1, 0), (1, 0)]
    assert sorted(content(db)) == [1, 3, 5, 7, 9]
    assert db.table("t").get(1) == {"id": 1, "name": "r1", "n": 5}


def test_update_keeps_values_python_cannot_hold(tmp_path: Path) -> None:
    """Found by review: update went through Python objects, which cannot hold a
    nanosecond timestamp (without pandas) and so failed or changed the row."""
    schema = pa.schema([("id", pa.int8()), ("at", pa.timestamp("ns")), ("n", pa.int8())])
    with cm.connect(tmp_path / "db", create=True) as db:
        db.create_table("e", schema, primary_key="id")
        with db.transaction() as tx:
            tx.insert("e", pa.table({"id": pa.array([1], pa.int8()),
                                     "at": pa.array([1_000_000_001], pa.timestamp("ns")),
                                     "n": pa.array([0], pa.int8())}))
            assert tx.update("e", 1, {"n": 5})
        row = db.table("e").get_many([1])
        assert row.column("at").cast(pa.int64()).to_pylist() == [1_000_000_001]
        assert row.column("n").to_pylist() == [5]


def test_row_by_row_writes_do_not_pile_up_small_chunks(db: cm.Database) -> None:
    from colibri_mm.tables.writes import SMALL_CHUNKS

    db.table("t").create_index("name")
    with db.snapshot() as before:
        for i in range(60):
            with db.transaction() as tx:
                tx.update("t", i % 10, {"n": i})
                tx.insert("t", rows(range(100 + i, 101 + i)))
        assert before.table("t").count() == 10
    sizes = chunk_sizes(db)  # chunks of 4 rows: under 2 live rows is "small"
    assert sum(1 for live, _ in sizes if live < 2) < SMALL_CHUNKS, sizes
    assert len(sizes) <= 70 // 2 + SMALL_CHUNKS, sizes
    assert sum(1 for live, _ in sizes if live == 1) <= SMALL_CHUNKS < 70  # 70 without it
    state = content(db)
    assert len(state) == 70
    assert state[3] == ("r3", 53)
    assert db.table("t").verify() == []
    assert db.table("t").find({"name": "r150"}).column("id").to_pylist() == [150]
