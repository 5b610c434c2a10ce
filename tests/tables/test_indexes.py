"""Secondary indexes: one conformance suite run against every kind (ordered, hash),
on keyed and keyless tables, against a plain reference; and the API around them."""

import shutil
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import colibri_mm as cm
from colibri_mm.tables import registry
from colibri_mm.tables import rows as table_rows
from colibri_mm.tables.indexes import open_index

SCHEMA = pa.schema([("id", pa.int32()), ("city", pa.string()), ("age", pa.int16())])
CITIES = st.sampled_from(["", "oslo", "lima", "li", None])
AGES = st.one_of(st.none(), st.integers(-3, 3))


class IndexConformance(RuleBasedStateMachine):
    """Whatever rows the table holds, the index on (city, age) answers like a scan."""

    KIND: ClassVar[str] = "ordered"
    KEYED: ClassVar[bool] = True

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="colibri-index-"))
        self.db = cm.connect(self.directory / "db", create=True, row_group_rows=3,
                             bulk_changes=4, durability="off", checkpoint_on_close=False)
        self.db.create_table("t", SCHEMA, primary_key="id" if self.KEYED else None)
        self.db.table("t").create_index(["city", "age"], kind=self.KIND)
        self.next_id = 0

    def _rows(self, values: list[tuple[Any, Any]]) -> list[dict[str, Any]]:
        rows = []
        for city, age in values:
            rows.append({"id": self.next_id, "city": city, "age": age})
            self.next_id += 1
        return rows

    @rule(values=st.lists(st.tuples(CITIES, AGES), max_size=7))
    def insert(self, values: list[tuple[Any, Any]]) -> None:
        with self.db.transaction() as tx:
            tx.insert("t", self._rows(values))

    @rule(city=CITIES)
    def delete_where(self, city: Any) -> None:
        condition = pc.field("city").is_null() if city is None else pc.field("city") == city
        with self.db.transaction() as tx:
            tx.delete_where("t", condition)

    @rule(pick=st.integers(0, 50), age=AGES)
    def update(self, pick: int, age: Any) -> None:
        if self.KEYED:
            with self.db.transaction() as tx:
                tx.update("t", pick % max(self.next_id, 1), {"age": age})

    @rule(values=st.lists(st.tuples(CITIES, AGES), max_size=4), pick=st.integers(0, 50))
    def upsert(self, values: list[tuple[Any, Any]], pick: int) -> None:
        if self.KEYED and values:
            rows = self._rows(values)
            rows[0]["id"] = pick % max(self.next_id, 1)
            with self.db.transaction() as tx:
                tx.upsert("t", rows)

    @rule()
    def compact(self) -> None:
        self.db.table("t").compact()

    @rule()
    def reopen(self) -> None:
        self.db.close()
        self.db = cm.connect(self.directory / "db", row_group_rows=3, bulk_changes=4,
                             durability="off", checkpoint_on_close=False)

    @rule(city=CITIES, age=AGES)
    def lookup(self, city: Any, age: Any) -> None:
        expected = sorted(r["id"] for r in self.db.table("t").scan().to_arrow_table().to_pylist()
                          if r["city"] == city and r["age"] == age)
        found = self.db.table("t").find({"city": city, "age": age})
        assert sorted(found.column("id").to_pylist()) == expected

    @invariant()
    def index_matches_rows(self) -> None:
        assert self.db.table("t").verify() == []

    def teardown(self) -> None:
        self.db.close()
        shutil.rmtree(self.directory, ignore_errors=True)


class HashKeyed(IndexConformance):
    KIND = "hash"


class OrderedKeyless(IndexConformance):
    KEYED = False


class HashKeyless(IndexConformance):
    KIND = "hash"
    KEYED = False


SUITE = settings(max_examples=25, stateful_step_count=25, deadline=None)
TestOrderedKeyed = IndexConformance.TestCase
TestOrderedKeyed.settings = SUITE
TestHashKeyed = HashKeyed.TestCase
TestHashKeyed.settings = SUITE
TestOrderedKeyless = OrderedKeyless.TestCase
TestOrderedKeyless.settings = SUITE
TestHashKeyless = HashKeyless.TestCase
TestHashKeyless.settings = SUITE


@pytest.fixture
def db(tmp_path: Path):  # type: ignore[no-untyped-def]
    database = cm.connect(tmp_path / "db", create=True, row_group_rows=8, bulk_changes=16)
    database.create_table("t", SCHEMA, primary_key="id")
    with database.transaction() as tx:
        tx.insert("t", [{"id": i, "city": ["oslo", "lima", None][i % 3], "age": i % 5}
                        for i in range(40)])
    yield database
    database.close()


def test_ranges_lookups_and_counts(db: cm.Database) -> None:
    table = db.table("t")
    table.create_index("age")
    table.create_index("city", kind="hash")
    assert table.indexes == [{"columns": ("age",), "kind": "ordered"},
                             {"columns": ("city",), "kind": "hash"}]
    with db.snapshot() as snap:
        definition = registry.lookup(snap.kv, "t")
        by_age = open_index(definition, definition.indexes[0])
        by_city = open_index(definition, definition.indexes[1])
        in_range = table_rows.fetch(snap.kv, definition, by_age.range(snap.kv, [1], [3]))
        assert sorted(in_range.column("age").to_pylist()) == [1] * 8 + [2] * 8
        assert in_range.column("age").to_pylist() == sorted(in_range.column("age").to_pylist())
        assert len(by_age.lookup(snap.kv, [4])) == 8
        assert [len(ids) for ids in by_city.lookup_many(snap.kv, [["oslo"], [None], ["x"]])] \
            == [14, 13, 0]
        assert by_age.len(snap.kv) == by_city.len(snap.kv) == 40
        with pytest.raises(cm.SchemaError, match="answers equality only"):
            by_city.range(snap.kv, ["a"], ["z"])
        with pytest.raises(ValueError, match="takes 1 values, got 2"):
            by_age.lookup(snap.kv, [1, 2])
    assert table.find({"city": None}).num_rows == 13
    assert sorted(table.find({"city": "lima", "age": 1}).column("id").to_pylist()) == \
        [1, 16, 31]  # no index on both columns: a scan


def test_bad_index_requests(db: cm.Database) -> None:
    table = db.table("t")
    table.create_index("city")
    for columns, kind, message in [("nope", "ordered", "index column 'nope' is not in"),
                                   ("city", "bitmap", "index kind must be one of"),
                                   ("city", "ordered", "already has a ordered index on city"),
                                   ([], "ordered", "the index names no column")]:
        with pytest.raises(cm.SchemaError, match=message):
            table.create_index(columns, kind=kind)
    db.create_table("f", pa.schema([("x", pa.float64())]))
    with pytest.raises(cm.SchemaError, match="'x' has type double"):
        db.table("f").create_index("x")
    with pytest.raises(cm.SchemaError, match="has no column 'zz'"):
        table.find({"zz": 1})
    with db.snapshot() as snap, pytest.raises(cm.ReadOnlyError):
        snap.table("t").create_index("age")


def test_indexes_persist_and_verify_finds_damage(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with cm.connect(path, create=True, checkpoint_on_close=False) as db:
        db.create_table("t", SCHEMA, primary_key="id")
        db.table("t").create_index(["city"])
        with db.transaction() as tx:
            tx.insert("t", [{"id": i, "city": f"c{i % 7}", "age": 1} for i in range(3000)])
    with cm.connect(path) as db:  # replayed, then checkpointed at close
        assert db.table("t").indexes == [{"columns": ("city",), "kind": "ordered"}]
        assert db.table("t").find({"city": "c3"}).num_rows == 429
        assert db.table("t").verify() == []
    with cm.connect(path) as db:
        with db.snapshot() as snap:
            definition = registry.lookup(snap.kv, "t")
            index = open_index(definition, definition.indexes[0])
            some_entry = next(iter(snap.kv.scan_raw(index.base, None)))[0]
        with db.transaction() as tx:
            tx.kv.put_raw(some_entry, None)  # damage: an entry disappears
            tx.kv.put_raw(table_rows.index_prefix(definition) + b"\x80\x00\x00\x00\x00\x00",
                          np.uint64(5).astype(">u8").tobytes())
        problems = db.table("t").verify()
        assert any("1 rows have no entry" in p for p in problems)
        assert any("primary key index" in p for p in problems)
