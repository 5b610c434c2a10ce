"""Per-chunk statistics and the chunks a filter skips because of them."""

import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import colibri_mm as cm
from colibri_mm.tables import registry, stats
from colibri_mm.tables import rows as table_rows

SCHEMA = pa.schema([("id", pa.int64()), ("x", pa.float64()), ("big", pa.int64()),
                    ("ts", pa.timestamp("us")), ("s", pa.string())])


@pytest.fixture
def db(tmp_path: Path):  # type: ignore[no-untyped-def]
    database = cm.connect(tmp_path / "db", create=True, row_group_rows=100, tail_rows=0)
    database.create_table("t", SCHEMA, primary_key="id")
    ids = np.arange(1000)
    with database.transaction() as tx:  # chunk k holds ids 100k .. 100k + 99
        tx.insert("t", {"id": ids, "x": ids / 10, "big": 2**60 + ids,
                        "ts": pa.array(ids, pa.timestamp("us")),
                        "s": [None if i % 7 == 0 else f"s{i}" for i in range(1000)]})
    yield database
    database.close()


def skipped(db: cm.Database, filter: pc.Expression) -> set[int]:
    with db.snapshot() as snap:
        return stats.skipped_chunks(snap.kv, registry.lookup(snap.kv, "t"), filter)


def test_comparisons_are_read_back_only_when_exact() -> None:
    x = pc.field("x")
    assert stats.comparisons(x > 0.5) == [("x", ">", 0.5)]
    assert stats.comparisons((x >= 3) & (pc.field("id") < 1e-05)) == \
        [("x", ">=", 3), ("id", "<", 1e-05)]
    for other in [(x > 1) | (x < 0), ~(x > 1), x > pa.scalar(1, pa.int32()),
                  pc.field("x") + 1 > 2, x.is_null(), x == pc.field("id"), x != 3]:
        assert stats.comparisons(other) is None, other


def test_filters_skip_the_chunks_their_statistics_exclude(db: cm.Database) -> None:
    assert skipped(db, pc.field("x") > 50) == {0, 1, 2, 3, 4}
    assert skipped(db, pc.field("x") > 49.9) == {0, 1, 2, 3, 4}  # chunk 4's maximum
    assert skipped(db, pc.field("x") >= 49.9) == {0, 1, 2, 3}
    assert skipped(db, pc.field("id") < 150) == set(range(2, 10))
    assert skipped(db, pc.field("id") == 777) == set(range(10)) - {7}
    assert skipped(db, (pc.field("id") >= 300) & (pc.field("x") < 45)) == \
        set(range(10)) - {3, 4}
    # Floats near 2**60 are 256 apart: the bounds are rounded outwards (chunk 7's
    # maximum 2**60 + 799 is kept as 2**60 + 1024) and the literal is compared exactly.
    assert skipped(db, pc.field("big") > 2**60 + 950) == set(range(7))
    assert db.table("t").count(pc.field("big") > 2**60 + 950) == 49
    assert skipped(db, (pc.field("id") > 500) | (pc.field("id") < 100)) == set()
    # The answers are those of a full evaluation.
    table = db.table("t")
    for filter in [pc.field("x") > 50, pc.field("id") == 777,
                   (pc.field("id") >= 300) & (pc.field("x") < 45)]:
        everything = table.scan().to_arrow_table().filter(filter)
        assert table.count(filter) == everything.num_rows
        assert table.scan(filter=filter).to_arrow_table().equals(everything)


def test_statistics_follow_compaction_and_stay_bounds_after_deletes(db: cm.Database) -> None:
    with db.transaction() as tx:
        tx.delete_where("t", pc.field("id") >= 980)  # under half: chunk 9 stays
    assert skipped(db, pc.field("id") > 990) == set(range(9))  # bounds of stored rows
    assert db.table("t").count(pc.field("id") > 990) == 0
    with db.transaction() as tx:
        tx.delete_where("t", pc.field("id") >= 950)  # half: chunk 9 is rewritten
    db.table("t").compact()
    with db.snapshot() as snap:
        definition = registry.lookup(snap.kv, "t")
        chunks = [c for c, _, _ in table_rows.live_chunks(snap.kv, definition)]
        assert len(list(snap.kv.scan_raw(b"\x01\x0b", b"\x01\x0c"))) == len(chunks)
    assert db.table("t").count(pc.field("id") > 960) == 0
    assert db.table("t").count(pc.field("id") > 900) == 49


def test_rows_with_nulls_nan_and_extreme_values(tmp_path: Path) -> None:
    schema = pa.schema([("id", pa.int64()), ("v", pa.float64()), ("flag", pa.bool_()),
                        ("day", pa.date32())])
    with cm.connect(tmp_path / "db", create=True, tail_rows=0) as db:
        db.create_table("t", schema, primary_key="id")
        with db.transaction() as tx:
            tx.insert("t", {"id": [1, 2, 3], "v": [None, float("nan"), None],
                            "flag": [True, None, True],
                            "day": [datetime.date(2020, 1, 1)] * 3})
            tx.insert("t", {"id": [4, 5], "v": [-np.inf, 2.0], "flag": [False, False],
                            "day": [None, None]})
        table = db.table("t")
        assert skipped(db, pc.field("v") > 1) == set()  # NaN: no bounds for chunk 0
        assert skipped(db, pc.field("v") > 3) == {1}
        assert table.count(pc.field("v") < 0) == 1
        with db.snapshot() as snap:
            values = [v for _, v in snap.kv.scan_raw(b"\x01\x0b", b"\x01\x0c")]
        assert len(values) == 2
        assert table.count(pc.field("v") > 1) == 1


def test_damaged_statistics_are_named(db: cm.Database) -> None:
    with db.snapshot() as snap:
        key = next(k for k, _ in snap.kv.scan_raw(b"\x01\x0b", b"\x01\x0c"))
    with db.transaction() as tx:
        tx.kv.put_raw(key, b"\x05\x00short")
    with pytest.raises(cm.CorruptionError, match="statistics are damaged"):
        db.table("t").count(pc.field("x") > 1)


def test_literals_that_print_alike_or_do_not_fit_int64(tmp_path: Path) -> None:
    schema = pa.schema([("id", pa.int64()), ("u", pa.uint64()), ("x", pa.float64())])
    with cm.connect(tmp_path / "db", create=True, row_group_rows=10, tail_rows=0) as db:
        db.create_table("t", schema, primary_key="id")
        with db.transaction() as tx:
            tx.insert("t", {"id": list(range(100)), "u": [2**63 + i for i in range(100)],
                            "x": [float(i) for i in range(100)]})
        assert stats.comparisons(pc.field("x") > 1.0) == [("x", ">", 1.0)]  # prints "1"
        assert skipped(db, pc.field("x") > 89.0) == set(range(9))
        big = pc.field("u") >= pa.scalar(2**63 + 50, pa.uint64())
        assert stats.comparisons(big) is None
        assert db.table("t").count(big) == 50
        assert db.table("t").find({"u": 2**63 + 7}).column("id").to_pylist() == [7]


def test_counts_by_comparisons_agree_with_arrow_filters(db: cm.Database) -> None:
    """count() evaluates a filter of comparisons with compute calls; the answers are
    Arrow's filter's, with nulls and mixed int/float literals; a comparison Arrow
    cannot make is a SchemaError naming the filter."""
    with db.transaction() as tx:
        tx.insert("t", [{"id": 5000 + i, "x": None if i % 2 else 3.5, "big": None}
                        for i in range(6)])  # tail rows with nulls
    table = db.table("t")
    everything = table.scan().to_arrow_table()
    for filter in [pc.field("x") > 3, pc.field("x") <= 3.5, (pc.field("x") >= 1) &
                   (pc.field("id") < 5003), pc.field("big") == 2**60 + 5, pc.field("id") > -1]:
        assert table.count(filter) == everything.filter(filter).num_rows, filter
    with pytest.raises(cm.SchemaError, match="cannot be evaluated"):
        table.count(pc.field("s") > 1)
