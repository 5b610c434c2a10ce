"""The table catalog: create, look up, list, rename, drop, add columns; every bad
argument refused with a message naming it, and catalog changes as durable as data."""

import decimal
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pytest
from table_types import EVERY_TYPE

import colibri_mm as cm
from colibri_mm.tables.catalog import TableDef


@pytest.fixture
def db(tmp_path: Path):  # type: ignore[no-untyped-def]
    database = cm.connect(tmp_path / "db", create=True)
    yield database
    database.close()


def test_create_with_every_supported_type_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with cm.connect(path, create=True) as db:
        table = db.create_table("events", EVERY_TYPE, primary_key=["i64", "s"])
        assert table.name == "events"
        assert table.schema.equals(EVERY_TYPE, check_metadata=True)
        assert table.primary_key == ("i64", "s")
        db.create_table("log", pa.schema([("line", pa.string())]))
        assert db.tables() == ["events", "log"]
    with cm.connect(path, checkpoint_on_close=False) as db:  # from the checkpoint
        assert db.table("events").schema.equals(EVERY_TYPE, check_metadata=True)
        assert db.table("log").primary_key is None
        db.drop_table("log")
    with cm.connect(path) as db:  # from the WAL
        assert db.tables() == ["events"]


def test_a_created_table_survives_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "db"
    code = textwrap.dedent(f"""
        import os, signal, pyarrow as pa, colibri_mm as cm
        db = cm.connect({str(path)!r}, create=True, durability="full")
        db.create_table("t", pa.schema([("id", pa.int64())]), primary_key="id")
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    result = subprocess.run([sys.executable, "-c", code], timeout=120, check=False)
    assert result.returncode == -signal.SIGKILL
    with cm.connect(path) as db:
        assert db.table("t").primary_key == ("id",)
        assert db.stats()["recovery_transactions"] == 1


@pytest.mark.parametrize(("kind", "shown"), [
    (pa.float16(), "halffloat"), (pa.list_(pa.int64()), "list<item: int64>"),
    (pa.struct([("a", pa.int8())]), "struct<a: int8>"), (pa.time32("s"), "time32[s]"),
    (pa.date64(), "date64[ms]"), (pa.null(), "null"),
    (pa.dictionary(pa.int8(), pa.int64()), "dictionary<values=int64"),
    (pa.map_(pa.string(), pa.int8()), "map<string, int8>"),
])
def test_unsupported_types_are_refused_naming_the_column(db: cm.Database, kind: pa.DataType,
                                                         shown: str) -> None:
    schema = pa.schema([("ok", pa.int64()), ("bad_col", kind)])
    with pytest.raises(cm.SchemaError, match=r"table 'x': column 'bad_col' has type") as e:
        db.create_table("x", schema)
    assert shown in str(e.value)
    assert db.tables() == []


@pytest.mark.parametrize("name", ["", "a-b", "x" * 129, "naïve", "a b", 5, None])
def test_bad_table_names_are_refused(db: cm.Database, name: object) -> None:
    with pytest.raises(cm.SchemaError, match=r"table name .* is invalid"):
        db.create_table(name, pa.schema([("x", pa.int8())]))  # type: ignore[arg-type]
    assert db.tables() == []


def test_names_up_to_128_letters_digits_and_underscores(db: cm.Database) -> None:
    for name in ["T_1", "x" * 128, "_", "0"]:
        db.create_table(name, pa.schema([("x", pa.int8())]))
    assert db.tables() == sorted(["T_1", "x" * 128, "_", "0"])


@pytest.mark.parametrize(("schema", "key", "message"), [
    (pa.schema([("a", pa.int8())]), "b", r"primary key column 'b' is not in the schema \(a\)"),
    (pa.schema([("a", pa.float64())]), "a", "'a' has type double, which cannot be part"),
    (pa.schema([("a", pa.int8())]), [], "the primary key names no column"),
    (pa.schema([("a", pa.int8())]), ["a", "a"], "repeats a column"),
    (pa.schema([("a", pa.int8()), ("a", pa.int16())]), None, "column 'a' appears twice"),
    (pa.schema([]), None, "the schema has no columns"),
    ("not a schema", None, "must be a pyarrow.Schema, not str"),
])
def test_bad_schemas_and_keys_are_refused(db: cm.Database, schema: object, key: object,
                                          message: str) -> None:
    with pytest.raises(cm.SchemaError, match=message):
        db.create_table("t", schema, primary_key=key)  # type: ignore[arg-type]
    assert db.tables() == []


def test_lookups_of_missing_tables_and_duplicate_names(db: cm.Database) -> None:
    db.create_table("t", pa.schema([("x", pa.int8())]))
    with pytest.raises(cm.TableExistsError, match="a table named 't' already exists"):
        db.create_table("t", pa.schema([("y", pa.int8())]))
    with pytest.raises(cm.TableNotFoundError, match="no table named 'nope'"):
        db.table("nope")
    with pytest.raises(KeyError):
        db.drop_table("nope")
    handle = db.table("t")
    db.drop_table("t")
    with pytest.raises(cm.TableNotFoundError):
        _ = handle.schema
    assert db.tables() == []


def test_rename_keeps_the_definition(db: cm.Database) -> None:
    db.create_table("old", EVERY_TYPE, primary_key="u32")
    db.create_table("other", pa.schema([("x", pa.int8())]))
    with pytest.raises(cm.TableExistsError, match="cannot rename 'old'"):
        db.rename_table("old", "other")
    with pytest.raises(cm.SchemaError):
        db.rename_table("old", "bad name")
    db.rename_table("old", "new")
    assert db.tables() == ["new", "other"]
    assert db.table("new").schema.equals(EVERY_TYPE)
    assert db.table("new").primary_key == ("u32",)
    with pytest.raises(cm.TableNotFoundError):
        db.rename_table("old", "again")


def test_add_column(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with cm.connect(path, create=True) as db:
        table = db.create_table("t", pa.schema([("id", pa.int64())]), primary_key="id")
        table.add_column(pa.field("price", pa.decimal128(10, 2)), default=decimal.Decimal("1.50"))
        table.add_column(pa.field("note", pa.string()))
        with pytest.raises(cm.SchemaError, match="already has a column 'note'"):
            table.add_column(pa.field("note", pa.string()))
        with pytest.raises(cm.SchemaError, match="'must' is not nullable, so it needs a default"):
            table.add_column(pa.field("must", pa.int8(), nullable=False))
        with pytest.raises(cm.SchemaError, match="default 'abc' does not fit column 'n'"):
            table.add_column(pa.field("n", pa.int32()), default="abc")
        with pytest.raises(cm.SchemaError, match="column 'l' has type list"):
            table.add_column(pa.field("l", pa.list_(pa.int8())))
        with pytest.raises(cm.SchemaError, match=r"takes a pyarrow\.Field"):
            table.add_column("x")  # type: ignore[arg-type]
    with cm.connect(path) as db:
        table = db.table("t")
        assert table.schema.names == ["id", "price", "note"]
        with db.snapshot() as snap:
            from colibri_mm.tables import registry
            defaults = registry.lookup(snap.kv, "t").defaults
        assert defaults is not None
        assert defaults.to_pylist() == [{"price": decimal.Decimal("1.50"), "note": None}]


def test_catalog_changes_are_refused_where_they_cannot_happen(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with cm.connect(path, create=True) as db:
        db.create_table("t", pa.schema([("x", pa.int8())]))
        with db.transaction(), pytest.raises(cm.TransactionError,
                                             match="write transaction open"):
            db.create_table("u", pa.schema([("x", pa.int8())]))
    with cm.connect(path, readonly=True) as reader:
        assert reader.tables() == ["t"]
        with pytest.raises(cm.ReadOnlyError):
            reader.create_table("u", pa.schema([("x", pa.int8())]))


def test_a_damaged_definition_is_a_corruption_error() -> None:
    good = TableDef(1, "t", pa.schema([("x", pa.int8())]), None).encode()
    assert TableDef.decode(good).schema.names == ["x"]
    for damaged in (good[:7], good[:-3], b"\x00" * 8, b"\x05\x00\x00\x00{bad}" + good[9:]):
        with pytest.raises(cm.CorruptionError, match="table definition in the catalog"):
            TableDef.decode(damaged)


def test_table_ids_are_never_reused(db: cm.Database) -> None:
    from colibri_mm.tables import registry
    db.create_table("a", pa.schema([("x", pa.int8())]))
    db.drop_table("a")
    db.create_table("a", pa.schema([("x", pa.int8())]))
    with db.snapshot() as snap:
        assert registry.lookup(snap.kv, "a").table_id == 2


def test_drop_table_deletes_its_rows_and_indexes_but_not_for_older_snapshots(
        tmp_path: Path) -> None:
    schema = pa.schema([("id", pa.int64()), ("v", pa.string())])
    with cm.connect(tmp_path / "db", create=True, row_group_rows=100, tail_rows=16) as db:
        for name in ("gone", "kept"):
            db.create_table(name, schema, primary_key="id")
            db.table(name).create_index("v", kind="hash")
            with db.transaction() as tx:
                tx.insert(name, {"id": list(range(500)), "v": [str(i % 9) for i in range(500)]})
                tx.delete(name, 3)
            with db.transaction() as tx:
                tx.insert(name, [{"id": 1000, "v": "tail"}])

        def engine_keys() -> int:
            with db.snapshot() as snap:
                return sum(1 for _ in snap.kv.scan_raw(b"\x01\x02", None))

        with_both = engine_keys()
        old = db.snapshot()
        db.drop_table("gone")
        assert engine_keys() == with_both // 2  # the two tables had the same keys
        assert old.table("gone").count() == 500 and old.table("gone").get(1000) is not None
        old.close()
        db.checkpoint()
        assert engine_keys() == with_both // 2
        assert db.table("kept").count() == 500 and db.table("kept").verify() == []
        db.create_table("gone", schema, primary_key="id")  # a new table, a new id
        assert db.table("gone").count() == 0
