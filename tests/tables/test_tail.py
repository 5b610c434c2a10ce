"""A table's tail: small writes kept one stored value per row, folded into chunks;
and the row form they are stored in (``tables/row_format.py``)."""

import datetime
import decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from table_types import EVERY_TYPE

import colibri_mm as cm
from colibri_mm.errors import CorruptionError
from colibri_mm.kernels.search import pack_varlen
from colibri_mm.tables import registry, row_format, tail
from colibri_mm.tables import rows as table_rows
from colibri_mm.tables.row_format import decode_rows, encode_rows

SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string()), ("n", pa.int32())])
TAIL_ROWS = 16


def every_type_row(i: int) -> dict[str, object]:
    return {"i8": -i % 128, "i16": -i, "i32": i, "i64": 2**40 + i, "u8": i % 256, "u16": i,
            "u32": i, "u64": 2**64 - 1 - i, "f32": i / 2, "f64": i / 3, "flag": i % 2 == 0,
            "ts_s": datetime.datetime(2020, 1, 1) + datetime.timedelta(seconds=i),
            "ts_ms_utc": datetime.datetime(2021, 5, 1, tzinfo=datetime.UTC),
            "ts_us_paris": datetime.datetime(2022, 1, 1, 12, tzinfo=datetime.UTC),
            "ts_ns": 1_000_000_007 * i, "day": datetime.date(2000, 1, 1 + i % 28),
            "t_us": datetime.time(1, 2, 3, i), "t_ns": 5_000 * i,
            "money": decimal.Decimal(i) / 4, "s": "é" * (i % 5), "ls": "x" * i,
            "b": bytes(range(i % 7)), "lb": b"\x00" * i, "fsb": bytes([i % 256]) * 16,
            "cat": ["red", "green", "blue"][i % 3]}


def null_row() -> dict[str, object]:
    return dict.fromkeys(EVERY_TYPE.names)


# -- the row form -------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.integers(0, 50), st.none()), max_size=12),
       st.integers(0, 3))
def test_rows_of_every_type_read_back_as_written(picks: list[int | None], offset: int) -> None:
    rows = [null_row() if p is None else every_type_row(p) for p in picks]
    padding = [every_type_row(99)] * offset
    table = pa.Table.from_pylist(padding + rows, schema=EVERY_TYPE).slice(offset)
    back = decode_rows(EVERY_TYPE, pack_varlen(encode_rows(table)), "test")
    assert back.schema == EVERY_TYPE
    for name in EVERY_TYPE.names:
        assert logical(back.column(name)).equals(logical(table.column(name))), name


def logical(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A column with dictionaries decoded (they are stored by value)."""
    if pa.types.is_dictionary(column.type):
        return column.cast(column.type.value_type)
    return column


def test_damaged_rows_are_named_corruption() -> None:
    table = pa.Table.from_pylist([every_type_row(3)], schema=EVERY_TYPE)  # "s": "ééé"
    (value,) = encode_rows(table)
    layout = row_format._layout(EVERY_TYPE)
    s_at = layout.columns[EVERY_TYPE.names.index("s")].offset
    too_long = value[:s_at] + (10_000).to_bytes(4, "little") + value[s_at + 4 :]
    s_value = value[value.index("é".encode()) :]
    bad_utf8 = value[: len(value) - len(s_value)] + b"\xff" + s_value[1:]
    for damaged, what in [(value[:20], "shorter than its fixed part"),
                          (b"\x07\x00" + value[2:], "number of columns"),
                          (value + b"!", "length does not match"),
                          (too_long, "length does not match"),
                          (bad_utf8, "column 's' holds a damaged value")]:
        with pytest.raises(CorruptionError, match=what):
            decode_rows(EVERY_TYPE, pack_varlen([damaged]), "table 't', tail rows")


# -- tails of tables ----------------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path):  # type: ignore[no-untyped-def]
    database = cm.connect(tmp_path / "db", create=True, tail_rows=TAIL_ROWS,
                          row_group_rows=64)
    database.create_table("t", SCHEMA, primary_key="id")
    database.table("t").create_index("name")
    yield database
    database.close()


def layout(db: cm.Database) -> tuple[list[int], list[int]]:
    """(live rows of each chunk, tail seqs) of table t."""
    with db.snapshot() as snap:
        definition = registry.lookup(snap.kv, "t")
        chunks = [(c, len(live)) for c, _, live in table_rows.live_chunks(snap.kv, definition)]
        seqs, _ = tail.read(snap.kv, definition)
    return [n for c, n in chunks if c != tail.TAIL_CHUNK], seqs.tolist()


def row(i: int, n: int = 0) -> dict[str, object]:
    return {"id": i, "name": f"r{i % 5}", "n": n}


def test_small_writes_go_to_the_tail_and_fold_into_a_chunk(db: cm.Database) -> None:
    for i in range(TAIL_ROWS):
        with db.transaction() as tx:
            tx.insert("t", [row(i)])
    assert layout(db) == ([], list(range(TAIL_ROWS)))
    with db.transaction() as tx:
        tx.insert("t", [row(TAIL_ROWS)])
    assert layout(db) == ([TAIL_ROWS], [0])
    table = db.table("t")
    assert table.count() == TAIL_ROWS + 1
    assert table.get(3) == row(3)
    assert table.get(TAIL_ROWS) == row(TAIL_ROWS)
    assert table.verify() == []


def test_a_write_of_more_than_a_quarter_of_the_tail_makes_a_chunk(db: cm.Database) -> None:
    with db.transaction() as tx:
        tx.insert("t", [row(i) for i in range(TAIL_ROWS // 4 + 1)])
    assert layout(db) == ([TAIL_ROWS // 4 + 1], [])


def test_tail_rows_update_delete_and_upsert(db: cm.Database) -> None:
    with db.transaction() as tx:
        tx.insert("t", [row(1), row(2), row(3)])
    with db.transaction() as tx:
        assert tx.update("t", 1, {"n": 10})
        assert tx.delete("t", 2)
        tx.upsert("t", [row(3, 30), row(4, 40)])
    table = db.table("t")
    assert table.scan().to_arrow_table().sort_by("id").to_pylist() == \
        [row(1, 10), row(3, 30), row(4, 40)]
    assert table.find({"name": "r1"}).to_pylist() == [row(1, 10)]
    assert table.find({"name": "r2"}).num_rows == 0
    assert table.get_many([4, 2, 1]).to_pylist() == [row(4, 40), row(1, 10)]
    assert table.verify() == []
    with db.transaction() as tx:
        assert tx.delete_where("t", pc.field("n") >= 30) == 2
    assert table.scan().to_arrow_table().to_pylist() == [row(1, 10)]
    assert table.verify() == []


def test_snapshots_keep_their_tail_rows_across_a_fold(db: cm.Database) -> None:
    with db.transaction() as tx:
        tx.insert("t", [row(0)])
    with db.snapshot() as old:
        for i in range(1, 2 * TAIL_ROWS):
            with db.transaction() as tx:
                tx.update("t", 0, {"n": i})
                tx.insert("t", [row(100 + i)])
        assert old.table("t").get(0) == row(0)
        assert old.table("t").count() == 1
    assert db.table("t").get(0) == row(0, 2 * TAIL_ROWS - 1)
    assert db.table("t").count() == 2 * TAIL_ROWS
    assert db.table("t").verify() == []


def test_the_tail_survives_reopen_and_replay(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with cm.connect(path, create=True, tail_rows=TAIL_ROWS, checkpoint_on_close=False) as db:
        db.create_table("t", SCHEMA, primary_key="id")
        for i in range(TAIL_ROWS + 5):
            with db.transaction() as tx:
                tx.insert("t", [row(i)])
    with cm.connect(path, tail_rows=TAIL_ROWS) as db:
        assert db.table("t").count() == TAIL_ROWS + 5
        assert db.table("t").get(TAIL_ROWS + 4) == row(TAIL_ROWS + 4)
        db.checkpoint()
    with cm.connect(path) as db:
        assert db.table("t").get(TAIL_ROWS + 4) == row(TAIL_ROWS + 4)
        assert db.table("t").verify() == []


def test_add_column_folds_the_tail(db: cm.Database) -> None:
    with db.transaction() as tx:
        tx.insert("t", [row(1), row(2)])
    db.table("t").add_column(pa.field("extra", pa.string()), default="none")
    assert layout(db) == ([2], [])
    with db.transaction() as tx:
        tx.insert("t", [{**row(3), "extra": "yes"}])
    assert db.table("t").scan().to_arrow_table().sort_by("id").column("extra").to_pylist() \
        == ["none", "none", "yes"]


def test_compact_folds_the_tail_with_small_chunks(db: cm.Database) -> None:
    with db.transaction() as tx:
        tx.insert("t", [row(i) for i in range(10)])  # a chunk of 10
    with db.transaction() as tx:
        tx.insert("t", [row(10)])
    assert layout(db) == ([10], [0])
    assert db.table("t").compact()["rows_moved"] == 11
    assert layout(db) == ([11], [])
    assert db.table("t").verify() == []


def test_tail_rows_option_is_checked(tmp_path: Path) -> None:
    with pytest.raises(cm.ConfigError, match="tail_rows"):
        cm.connect(tmp_path / "db", create=True, tail_rows=-1)


def test_columns_read_back_are_aligned_for_arrow() -> None:
    """A single row's fixed-width columns sit at odd offsets of the row: reading
    them back copies them, so Arrow gets aligned buffers."""
    table = pa.Table.from_pylist([every_type_row(5)], schema=EVERY_TYPE)
    back = decode_rows(EVERY_TYPE, pack_varlen(encode_rows(table)), "test")
    for name in ("i16", "i32", "i64", "u64", "f64", "ts_ns", "money"):
        assert back.column(name).chunk(0).buffers()[1].address % 8 == 0, name


def test_a_null_in_a_non_nullable_column_is_damage() -> None:
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False), ("v", pa.string())])
    (value,) = encode_rows(pa.table({"id": [1], "v": ["a"]}, schema=schema))
    damaged = value[:2] + bytes([value[2] & ~1]) + value[3:]  # clear the bit of "id"
    with pytest.raises(CorruptionError, match="not nullable"):
        decode_rows(schema, pack_varlen([damaged]), "t")


def test_scan_columns_keep_the_order_asked_with_chunks_and_tail(db: cm.Database) -> None:
    with db.transaction() as tx:
        tx.insert("t", [row(i) for i in range(10)])  # a chunk
    with db.transaction() as tx:
        tx.insert("t", [row(10)])  # the tail
    table = db.table("t")
    for columns in (["n", "id"], ["id", "id"], ["name"], []):
        got = table.scan(columns=columns).to_arrow_table()
        assert got.column_names == columns and got.num_rows == 11, columns
    assert table.scan(columns=["n", "id"], filter=pc.field("id") > 8) \
        .to_arrow_table().to_pylist() == [{"n": 0, "id": 9}, {"n": 0, "id": 10}]
