"""Point reads and one-row updates take shortcuts: ``get`` reads Python values
straight from a cached chunk's buffers, an update of a table without secondary
indexes copies the old row's stored bytes into its new tail row, and a table
handle skips the catalog lookup while no commit happened. Each must give exactly
what the general way gives (Arrow scalars; a new row made as an Arrow table, which
a table with a secondary index still takes)."""

import datetime
import decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from table_types import EVERY_TYPE

import colibri_mm as cm
from colibri_mm.errors import CorruptionError, SchemaError, TableNotFoundError
from colibri_mm.tables import registry, tail

SCHEMA = pa.schema([pa.field("id", pa.int64(), nullable=False), *EVERY_TYPE],
                   metadata=EVERY_TYPE.metadata)
TAIL_ROWS = 16


def value(name: str, i: int) -> Any:
    """A value of column ``name`` (differing with ``i``)."""
    return {"i8": -i % 128, "i16": -i, "i32": i, "i64": 2**40 + i, "u8": i % 256,
            "u16": i, "u32": i, "u64": 2**64 - 1 - i, "f32": i / 2, "f64": i / 3,
            "flag": i % 2 == 0,
            "ts_s": datetime.datetime(2020, 1, 1) + datetime.timedelta(seconds=i),
            "ts_ms_utc": datetime.datetime(2021, 5, 1, tzinfo=datetime.UTC),
            "ts_us_paris": datetime.datetime(2022, 1, 1, 12, i % 60, tzinfo=datetime.UTC),
            "ts_ns": 1_000_000_000 * i, "day": datetime.date(2000, 1, 1 + i % 28),
            "t_us": datetime.time(1, 2, 3, i), "t_ns": 5_000 * i,
            "money": decimal.Decimal(i) / 4, "s": "é" * (i % 5), "ls": "x" * i,
            "b": bytes(range(i % 7)), "lb": b"\x00" * i, "fsb": bytes([i % 256]) * 16,
            "cat": ["red", "green", "blue"][i % 3]}[name]


def row(i: int, nulls: bool = False) -> dict[str, Any]:
    return {"id": i, **{name: None if nulls else value(name, i) for name in EVERY_TYPE.names}}


@pytest.fixture
def db(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Tables "plain" (updates in the stored row form) and "indexed" (a secondary
    index: updates as Arrow tables), with the same rows in chunks and in the tail."""
    database = cm.connect(tmp_path / "db", create=True, tail_rows=TAIL_ROWS,
                          row_group_rows=8)
    for name in ("plain", "indexed"):
        database.create_table(name, SCHEMA, primary_key="id")
        with database.transaction() as tx:  # chunks: too many rows for the tail
            tx.insert(name, [row(i, nulls=i % 3 == 0) for i in range(20)])
        for i in range(20, 24):
            with database.transaction() as tx:
                tx.insert(name, [row(i, nulls=i % 2 == 0)])
    database.table("indexed").create_index("i32")
    yield database
    database.close()


def rows_of(db: cm.Database, name: str) -> list[dict[str, Any]]:
    return db.table(name).scan().to_arrow_table().sort_by("id").to_pylist()


def test_get_gives_what_arrow_gives_for_every_type(db: cm.Database) -> None:
    for name in ("plain", "indexed"):
        expected = rows_of(db, name)
        assert [db.table(name).get(i) for i in range(24)] == expected
    with db.snapshot() as snap:
        assert [snap.table("plain").get(i) for i in range(24)] == rows_of(db, "plain")


def test_updates_of_every_column_match_the_arrow_way(db: cm.Database) -> None:
    step = 0
    for column in EVERY_TYPE.names:
        for target in (0, 5, 21, 22):  # chunk rows with and without nulls, tail rows
            step += 1
            new = None if step % 4 == 0 else value(column, 40 + step)
            for name in ("plain", "indexed"):
                with db.transaction() as tx:
                    assert tx.update(name, target, {column: new})
    assert rows_of(db, "plain") == rows_of(db, "indexed")
    plain = db.table("plain")
    assert [plain.get(i) for i in range(24)] == rows_of(db, "plain")
    assert plain.verify() == []
    assert plain.count() == 24


def test_updates_of_several_columns_and_the_same_row_again(db: cm.Database) -> None:
    for i in range(3 * TAIL_ROWS):  # the row moves from tail row to tail row, folds
        for name in ("plain", "indexed"):
            with db.transaction() as tx:
                assert tx.update(name, 7, {"s": f"v{i}", "i32": i, "f64": None,
                                           "cat": "blue"})
    assert db.table("plain").get(7) == db.table("indexed").get(7)
    assert db.table("plain").get(7)["i32"] == 3 * TAIL_ROWS - 1  # type: ignore[index]
    assert rows_of(db, "plain") == rows_of(db, "indexed")


@pytest.mark.parametrize("column, new", [
    ("i8", 127), ("i8", -128), ("i8", 128), ("u8", -1), ("u64", 2**64 - 1), ("u64", 2**64),
    ("i32", True), ("i64", 2.0), ("i64", "1"), ("f64", float("nan")), ("f64", -0.0),
    ("f64", 3), ("f32", 1e300), ("s", b"bytes"), ("b", "text"), ("cat", "new"),
    ("ts_s", 17), ("fsb", b"short"),
])
def test_a_value_fits_or_is_refused_as_the_arrow_way_decides(db: cm.Database, column: str,
                                                              new: Any) -> None:
    outcomes = []
    for name in ("plain", "indexed"):
        try:
            with db.transaction() as tx:
                tx.update(name, 5, {column: new})
            outcomes.append(repr(db.table(name).get(5)[column]))  # type: ignore[index]
        except SchemaError as e:
            outcomes.append(str(e).replace(name, "?"))
    assert outcomes[0] == outcomes[1]


def test_update_errors_and_missing_keys(db: cm.Database) -> None:
    before = rows_of(db, "plain")
    with pytest.raises(SchemaError, match="has no column 'nope'"), db.transaction() as tx:
        tx.update("plain", 1, {"nope": 1})
    with pytest.raises(SchemaError, match="column 'id' is not nullable"), \
            db.transaction() as tx:
        tx.update("plain", 1, {"id": None})
    with pytest.raises(SchemaError, match="column 'i8' does not fit"), \
            db.transaction() as tx:
        tx.update("plain", 1, {"i16": 2**20, "i8": 1000})  # the first in schema order
    with db.transaction() as tx:
        assert not tx.update("plain", 99, {"i8": 1000})
    assert rows_of(db, "plain") == before


def test_an_update_reading_a_damaged_tail_row_is_refused(db: cm.Database) -> None:
    with db.transaction() as tx:
        definition = registry.lookup(tx.kv, "plain")
        (seq,) = tail.read(tx.kv, definition)[0][:1].tolist()
        key = tail.TAIL + definition.table_id.to_bytes(4, "big") + seq.to_bytes(4, "big")
        stored = tx.kv.get_raw(key)
        assert stored is not None
        tx.kv.put_raw(key, stored + b"!")
    with pytest.raises(CorruptionError, match="length does not match"), \
            db.transaction() as tx:
        tx.update("plain", 20 + seq, {"i8": 1})


def test_a_table_handle_follows_catalog_changes(db: cm.Database) -> None:
    plain = db.table("plain")
    first = rows_of(db, "plain")[1]
    assert plain.get(1) == first
    plain.add_column(pa.field("extra", pa.int32()), default=7)
    assert plain.get(1) == {**first, "extra": 7}
    with db.transaction() as tx:  # a row of a chunk written before the column
        assert tx.update("plain", 1, {"i8": 3})
    assert plain.get(1) == {**first, "i8": 3, "extra": 7}
    db.drop_table("plain")
    with pytest.raises(TableNotFoundError):
        plain.get(1)
    db.create_table("plain", pa.schema([("id", pa.int64()), ("v", pa.string())]),
                    primary_key="id")
    with db.transaction() as tx:
        tx.insert("plain", [{"id": 1, "v": "new"}])
    assert plain.get(1) == {"id": 1, "v": "new"}


READ_IN_PYTHON = ["i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "f32", "f64",
                  "flag", "ts_s", "s", "ls", "b", "lb", "fsb", "cat"]
"""The columns of types whose tail rows ``get`` reads without Arrow."""


def test_get_of_a_tail_row_read_in_python_gives_what_arrow_gives(tmp_path: Path) -> None:
    schema = pa.schema([SCHEMA.field("id"), *(SCHEMA.field(n) for n in READ_IN_PYTHON)])
    with cm.connect(tmp_path / "db", create=True, tail_rows=TAIL_ROWS) as db:
        db.create_table("t", schema, primary_key="id")
        for i in range(TAIL_ROWS // 2):  # one row per commit: each stays in the tail
            with db.transaction() as tx:
                tx.insert("t", [{name: value for name, value in row(i, nulls=i % 3 == 0).items()
                                 if name in schema.names}])
        with db.snapshot() as snap:
            definition = registry.lookup(snap.kv, "t")
            assert definition.row_layout.readers is not None  # read in Python
            assert tail.next_seq(snap.kv, definition) == TAIL_ROWS // 2  # all in the tail
        expected = rows_of(db, "t")
        got = [db.table("t").get(i) for i in range(TAIL_ROWS // 2)]
        assert got == expected
        assert [{k: type(v) for k, v in r.items()} for r in got] == \
            [{k: type(v) for k, v in r.items()} for r in expected]
        assert db.table("t").get(TAIL_ROWS) is None
