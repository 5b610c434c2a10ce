"""Rows of tables: insert in transactions, get by primary key, scan with projection
and filter, count; constraints and schema checks that apply nothing on failure;
durability through reopen, checkpoint and SIGKILL; snapshots."""

import datetime
import decimal
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from table_types import EVERY_TYPE

import colibri_mm as cm

PEOPLE = pa.schema([("id", pa.int64()), ("name", pa.string()), ("score", pa.float64())])


class Stream:
    """Any object exposing the Arrow PyCapsule stream (not a pyarrow type)."""

    def __init__(self, table: pa.Table) -> None:
        self._table = table

    def __arrow_c_stream__(self, requested_schema: object = None) -> object:
        return self._table.__arrow_c_stream__(requested_schema)


def people(ids: range) -> pa.Table:
    return pa.table({"id": pa.array(ids, pa.int64()),
                     "name": [f"p{i}" for i in ids],
                     "score": [i / 10 for i in ids]}, schema=PEOPLE)


def insert(db: cm.Database, table: str, *batches: object) -> None:
    """Insert ``batches`` into ``table`` in one transaction."""
    with db.transaction() as tx:
        for rows in batches:
            tx.insert(table, rows)


@pytest.fixture
def db(tmp_path: Path):  # type: ignore[no-untyped-def]
    database = cm.connect(tmp_path / "db", create=True, row_group_rows=4, bulk_changes=64)
    database.create_table("people", PEOPLE, primary_key="id")
    yield database
    database.close()


def test_every_input_form_inserts_the_same_rows(db: cm.Database) -> None:
    with db.transaction() as tx:
        assert tx.insert("people", people(range(0, 3))) == 3
        assert tx.insert("people", people(range(3, 5)).to_batches()[0]) == 2
        assert tx.insert("people", Stream(people(range(5, 9)))) == 4
        assert tx.insert("people", people(range(9, 12)).to_pydict()) == 3
        assert tx.insert("people", people(range(12, 14)).to_pylist()) == 2
        assert tx.insert("people", []) == 0
    table = db.table("people")
    assert table.scan().to_arrow_table().sort_by("id").equals(people(range(14)))
    assert table.count() == 14
    assert table.get(7) == {"id": 7, "name": "p7", "score": 0.7}
    assert table.get(99) is None


def test_projection_filter_and_the_forms_of_a_scan(db: cm.Database) -> None:
    with db.transaction() as tx:
        tx.insert("people", people(range(20)))
    scan = db.table("people").scan(columns=["name"], filter=pc.field("score") >= 1.5)
    assert scan.num_rows == len(scan) == 5
    assert scan.schema.names == ["name"]
    assert sorted(scan.to_arrow_table().column("name").to_pylist()) == \
        [f"p{i}" for i in range(15, 20)]
    sizes = [b.num_rows for b in scan.to_arrow_reader(batch_size=2)]
    assert sum(sizes) == 5 and max(sizes) <= 2
    assert sorted(pa.table(scan).column("name").to_pylist()) == [f"p{i}" for i in range(15, 20)]
    arrays = db.table("people").scan(columns=["id", "score"]).to_numpy()
    assert np.array_equal(np.sort(arrays["id"]), np.arange(20))
    assert db.table("people").count(pc.field("id") < 3) == 3
    with pytest.raises(cm.SchemaError, match="has no column 'nope'"):
        db.table("people").scan(columns=["nope"])
    with pytest.raises(cm.SchemaError, match="cannot be evaluated"):
        db.table("people").scan(filter=pc.field("missing") > 1)


def test_composite_keys_and_keyless_tables(db: cm.Database) -> None:
    schema = pa.schema([("region", pa.string()), ("day", pa.date32()), ("n", pa.int32())])
    db.create_table("visits", schema, primary_key=["region", "day"])
    db.create_table("log", pa.schema([("line", pa.string())]))
    day = datetime.date(2026, 12, 4)
    with db.transaction() as tx:
        tx.insert("visits", [{"region": "eu", "day": day, "n": 1},
                             {"region": "eu\x00x", "day": day, "n": 2},
                             {"region": "us", "day": day, "n": 3}])
        tx.insert("log", {"line": ["a", "a", "b"]})
    assert db.table("visits").get(("eu", day)) == {"region": "eu", "day": day, "n": 1}
    assert db.table("visits").get(["eu\x00x", day])["n"] == 2  # type: ignore[index]
    assert db.table("visits").get(("eu", datetime.date(2026, 12, 5))) is None
    assert db.table("log").count() == 3
    with pytest.raises(cm.SchemaError, match="has no primary key"):
        db.table("log").get("a")


def test_duplicate_keys_apply_nothing(db: cm.Database) -> None:
    with db.transaction() as tx:
        tx.insert("people", people(range(5)))
    with pytest.raises(cm.ConstraintError, match="duplicate primary key id=3: table "
                                                 "'people' already has it"):
        insert(db, "people", people(range(10, 12)), people(range(3, 4)))
    with pytest.raises(cm.ConstraintError, match="duplicate primary key id=8 in the rows"):
        insert(db, "people", pa.concat_tables([people(range(7, 9)), people(range(8, 9))]))
    with pytest.raises(cm.ConstraintError, match="column 'id' is null in row 1"):
        insert(db, "people", [{"id": 20}, {"id": None}])
    assert db.table("people").count() == 5
    assert db.table("people").get(10) is None


@pytest.mark.parametrize(("rows", "message"), [
    ([{"id": 1, "nickname": "x"}], "table 'people' has no column 'nickname'"),
    ({"id": [1], "score": ["high"]}, "column 'score' does not fit type double"),
    (pa.table({"id": ["one"]}), "column 'id' of type string does not convert to int64"),
    ("not rows", "rows must be a pyarrow Table"),
])
def test_rows_that_do_not_fit_the_schema_are_refused(db: cm.Database, rows: object,
                                                     message: str) -> None:
    with pytest.raises((cm.SchemaError, TypeError), match=message):
        insert(db, "people", rows)
    assert db.table("people").count() == 0


def test_not_nullable_columns_must_be_given(db: cm.Database) -> None:
    db.create_table("strict", pa.schema([pa.field("id", pa.int8(), nullable=False),
                                         pa.field("v", pa.int8(), nullable=False)]))
    with pytest.raises(cm.SchemaError, match="column 'v' is missing and not nullable"):
        insert(db, "strict", pa.table({"id": pa.array([1], pa.int8())}))
    with pytest.raises(cm.SchemaError, match="column 'v' is not nullable but holds 1 nulls"):
        insert(db, "strict", [{"id": 1}])
    with pytest.raises(cm.SchemaError, match="column 'v' is not nullable but holds 1 nulls"):
        insert(db, "strict", {"id": [1], "v": [None]})


def test_a_snapshot_sees_the_rows_of_its_moment(db: cm.Database) -> None:
    with db.transaction() as tx:
        tx.insert("people", people(range(3)))
    with db.snapshot() as snap:
        with db.transaction() as tx:
            tx.insert("people", people(range(3, 10)))
        old = snap.table("people")
        assert old.count() == 3
        assert old.get(5) is None
        assert snap.tables() == ["people"]
        with pytest.raises(cm.ReadOnlyError):
            old.add_column(pa.field("x", pa.int8()))
    assert db.table("people").count() == 10


def test_large_inserts_survive_reopen_and_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with cm.connect(path, create=True, row_group_rows=1000, checkpoint_on_close=False) as db:
        db.create_table("people", PEOPLE, primary_key="id")
        with db.transaction() as tx:
            tx.insert("people", people(range(0, 5000)))  # the index goes the bulk way
        with db.transaction() as tx:
            tx.insert("people", people(range(5000, 5010)))
        assert db.table("people").get(4321) == {"id": 4321, "name": "p4321", "score": 432.1}
    with cm.connect(path) as db:  # replayed from the WAL, then checkpointed at close
        assert db.table("people").count() == 5010
        assert db.table("people").get(5009)["name"] == "p5009"  # type: ignore[index]
    with cm.connect(path) as db:  # read from the sorted runs
        assert db.stats()["recovery_transactions"] == 0
        assert db.table("people").get(0)["name"] == "p0"  # type: ignore[index]
        assert db.table("people").count(pc.field("id") >= 4990) == 20


def test_inserted_rows_survive_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "db"
    code = textwrap.dedent(f"""
        import os, signal, pyarrow as pa, colibri_mm as cm
        db = cm.connect({str(path)!r}, create=True, durability="full")
        db.create_table("t", pa.schema([("id", pa.int64()), ("v", pa.string())]),
                        primary_key="id")
        with db.transaction() as tx:
            tx.insert("t", {{"id": list(range(3000)), "v": ["x"] * 3000}})
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    result = subprocess.run([sys.executable, "-c", code], timeout=120, check=False)
    assert result.returncode == -signal.SIGKILL
    with cm.connect(path) as db:
        assert db.table("t").count() == 3000
        assert db.table("t").get(2999) == {"id": 2999, "v": "x"}


def test_rows_written_before_add_column_read_its_default(db: cm.Database) -> None:
    with db.transaction() as tx:
        tx.insert("people", people(range(2)))
    db.table("people").add_column(pa.field("joined", pa.date32()),
                                  default=datetime.date(2020, 1, 1))
    db.table("people").add_column(pa.field("balance", pa.decimal128(9, 2)))
    with db.transaction() as tx:
        tx.insert("people", [{"id": 5, "joined": datetime.date(2026, 1, 1),
                              "balance": decimal.Decimal("2.50")}])
    assert db.table("people").get(1) == {"id": 1, "name": "p1", "score": 0.1,
                                         "joined": datetime.date(2020, 1, 1), "balance": None}
    assert db.table("people").get(5)["balance"] == decimal.Decimal("2.50")  # type: ignore[index]
    assert db.table("people").scan().num_rows == 3


def test_every_supported_type_round_trips_with_nulls(tmp_path: Path) -> None:
    values = {
        "i8": [-128, None], "i16": [-32768, 7], "i32": [2**31 - 1, None],
        "i64": [-(2**63), 3], "u8": [255, None], "u16": [65535, 0], "u32": [2**32 - 1, None],
        "u64": [2**64 - 1, 1], "f32": [1.5, None], "f64": [-0.0, float("inf")],
        "flag": [True, None], "ts_s": [datetime.datetime(1900, 1, 1), None],
        "ts_ms_utc": [datetime.datetime(2026, 12, 4, 23, 59, tzinfo=datetime.UTC),
                      None],
        "ts_us_paris": [datetime.datetime(2000, 2, 29, 12, tzinfo=datetime.UTC),
                        None],
        "ts_ns": [datetime.datetime(2262, 4, 11), None], "day": [datetime.date(1, 1, 1), None],
        "t_us": [datetime.time(23, 59, 59, 999999), None], "t_ns": [datetime.time(0), None],
        "money": [decimal.Decimal("-99999999999999.9999"), None], "s": ["ünïcödé", None],
        "ls": ["x" * 1000, ""], "b": [b"\x00\xff", None], "lb": [b"", None],
        "fsb": [bytes(range(16)), None], "cat": ["a", None],
    }
    table = pa.table({name: pa.array(v, EVERY_TYPE.field(name).type)
                      for name, v in values.items()}, schema=EVERY_TYPE)
    path = tmp_path / "db"
    with cm.connect(path, create=True) as db:
        db.create_table("all", EVERY_TYPE, primary_key=["i64", "ls"])
        with db.transaction() as tx:
            tx.insert("all", table)
        assert db.table("all").scan().to_arrow_table().sort_by("i64").equals(table)
    with cm.connect(path) as db:
        back = db.table("all").scan().to_arrow_table().sort_by("i64")
        assert back.equals(table)
        assert back.schema.equals(EVERY_TYPE, check_metadata=True)
        assert db.table("all").get((3, ""))["fsb"] is None  # type: ignore[index]


def test_get_many_returns_existing_rows_in_the_order_asked(db: cm.Database) -> None:
    insert(db, "people", people(range(12)))
    got = db.table("people").get_many([9, 100, 2, 5, 2])
    assert got.column("id").to_pylist() == [9, 2, 5, 2]
    assert got.schema.equals(PEOPLE)
    assert db.table("people").get_many([]).num_rows == 0
    assert db.table("people").get_many([77]).schema.equals(PEOPLE)
    assert db.table("people").get_many([None, 3]).column("id").to_pylist() == [3]
    with pytest.raises(cm.SchemaError, match="column 'id' does not fit"):
        db.table("people").get_many(["three"])


def test_get_many_over_chunks_the_tail_and_a_composite_key(tmp_path: Path) -> None:
    """Rows spread over chunks, the tail and the memtable (after a checkpoint too),
    with a two-column key, agree with point reads, in the order asked."""
    schema = pa.schema([("a", pa.string()), ("b", pa.int32()), ("v", pa.float64())])
    with cm.connect(tmp_path / "db", create=True, row_group_rows=50, tail_rows=8) as db:
        db.create_table("t", schema, primary_key=["a", "b"])
        with db.transaction() as tx:
            tx.insert("t", {"a": [f"k{i % 7}" for i in range(300)], "b": list(range(300)),
                            "v": [i / 2 for i in range(300)]})
        db.checkpoint()
        for i in range(300, 310):
            with db.transaction() as tx:
                tx.insert("t", [{"a": "tail", "b": i, "v": 0.0}])
                tx.delete("t", (f"k{(i - 300) % 7}", i - 300))
        keys = [(f"k{i % 7}", i) for i in range(0, 300, 7)] + \
            [("tail", i) for i in range(299, 311)] + [("k0", 0), ("nope", 1)]
        got = db.table("t").get_many(keys)
        expected = [row for k in keys if (row := db.table("t").get(k)) is not None]
        assert got.to_pylist() == expected
        # absent: ("k0", 0) twice and ("k0", 7) deleted, ("tail", 299 and 310), "nope"
        assert len(expected) == len(keys) - 6
        with pytest.raises(cm.SchemaError, match="tuple of 2 values"):
            db.table("t").get_many([("k1",)])


def test_the_chunk_cache_is_bounded_and_never_stale(tmp_path: Path) -> None:
    from colibri_mm.tables.chunk_cache import ChunkCache

    cache = ChunkCache(max_bytes=3000)
    small = pa.table({"x": pa.array(range(100), pa.int64())})  # 800 bytes
    for chunk in range(5):
        cache.put(1, chunk, small)
    assert cache.nbytes <= 3000
    assert cache.get(1, 0) is None and cache.get(1, 4) is not None
    cache.put(1, 9, pa.table({"x": pa.array(range(1000), pa.int64())}))  # too big: skipped
    assert cache.get(1, 9) is None
    # Full: a miss is copied in once in ADMIT_EVERY (the others read in place).
    from colibri_mm.tables.chunk_cache import ADMIT_EVERY
    assert [cache.admit(800) for _ in range(2 * ADMIT_EVERY)].count(True) == 2
    assert not cache.admit(5000)

    with cm.connect(tmp_path / "db", create=True, row_group_rows=4) as db:
        db.create_table("people", PEOPLE, primary_key="id")
        insert(db, "people", people(range(10)))
        table = db.table("people")
        assert table.get(1)["name"] == "p1"  # type: ignore[index]  # chunk 0 now cached
        table.add_column(pa.field("tag", pa.string()), default="old")
        assert table.get(1) == {"id": 1, "name": "p1", "score": 0.1, "tag": "old"}
        with db.transaction() as tx:
            tx.update("people", 1, {"name": "one"})
            tx.delete_where("people", pc.field("id") < 4)  # chunk 0 half deleted: rewritten
            tx.insert("people", [{"id": 2, "name": "again", "tag": "new"}])
        db.checkpoint()
        assert table.get(1) is None
        assert table.get(2) == {"id": 2, "name": "again", "score": None, "tag": "new"}
        assert table.get(5)["tag"] == "old"  # type: ignore[index]
        assert db.chunk_cache.hits > 0


def test_point_reads_of_a_table_bigger_than_the_cache(tmp_path: Path) -> None:
    """Chunks that the cache does not admit are read where they lie: every read is
    right, the cache stays within its bound and still serves hits."""
    with cm.connect(tmp_path / "db", create=True, row_group_rows=1000,
                    chunk_cache_bytes=60_000) as db:
        db.create_table("people", PEOPLE, primary_key="id")
        insert(db, "people", people(range(20_000)))
        db.checkpoint()
        table = db.table("people")
        keys = list(range(0, 20_000, 37)) * 2
        assert [table.get(k)["name"] for k in keys] == [f"p{k}" for k in keys]  # type: ignore[index]
        assert table.get_many(keys).column("id").to_pylist() == keys
        assert db.chunk_cache.nbytes <= 60_000 and db.chunk_cache.hits > 0
