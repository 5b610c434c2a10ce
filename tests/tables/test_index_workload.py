"""Randomized workloads on both index kinds against a plain reference, uniform and
skewed. CI runs a small size; set ``COLIBRI_INDEX_OPS`` (for example 1000000) for a
release check."""

import os
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

import colibri_mm as cm
from colibri_mm.tables import registry
from colibri_mm.tables.indexes import open_index

OPS = int(os.environ.get("COLIBRI_INDEX_OPS", "1500"))
SCHEMA_FIELDS = [("id", "int64"), ("city", "string"), ("age", "int16")]


@pytest.mark.parametrize("kind", ["ordered", "hash"])
@pytest.mark.parametrize("skew", ["uniform", "skewed"])
def test_random_workload_matches_the_reference(tmp_path: Path, kind: str, skew: str) -> None:
    import pyarrow as pa

    rng = np.random.default_rng(11 if skew == "uniform" else 12)
    cities = [f"c{i}" for i in range(50)]

    def pick_city() -> str:
        if skew == "uniform":
            return cities[int(rng.integers(0, len(cities)))]
        return cities[min(int(rng.zipf(1.5)) - 1, len(cities) - 1)]

    reference: dict[int, tuple[str, int]] = {}
    next_id = 0
    schema = pa.schema([(name, getattr(pa, kind_)()) for name, kind_ in SCHEMA_FIELDS])
    with cm.connect(tmp_path / "db", create=True, durability="off", row_group_rows=64,
                    bulk_changes=32) as db:
        db.create_table("t", schema, primary_key="id")
        db.table("t").create_index(["city"], kind=kind)
        for op in range(OPS):
            choice = rng.random()
            with db.transaction() as tx:
                if choice < 0.5 or not reference:
                    count = int(rng.integers(1, 40))
                    batch = {"id": list(range(next_id, next_id + count)),
                             "city": [pick_city() for _ in range(count)],
                             "age": [int(a) for a in rng.integers(0, 90, count)]}
                    tx.insert("t", batch)
                    for i, c, a in zip(batch["id"], batch["city"], batch["age"], strict=True):
                        reference[i] = (c, a)
                    next_id += count
                elif choice < 0.75:
                    key = int(rng.choice(list(reference)))
                    city = pick_city()
                    tx.update("t", key, {"city": city})
                    reference[key] = (city, reference[key][1])
                elif choice < 0.95:
                    key = int(rng.choice(list(reference)))
                    tx.delete("t", key)
                    del reference[key]
                else:
                    city = pick_city()
                    tx.delete_where("t", pc.field("city") == city)
                    reference = {k: v for k, v in reference.items() if v[0] != city}
            if op % max(OPS // 10, 1) == 0 or op == OPS - 1:
                with db.snapshot() as snap:
                    definition = registry.lookup(snap.kv, "t")
                    index = open_index(definition, definition.indexes[0])
                    for city in cities[:10]:
                        expected = sorted(k for k, v in reference.items() if v[0] == city)
                        found = index.lookup(snap.kv, [city])
                        ids = sorted(
                            r["id"] for r in
                            db.table("t").find({"city": city}).to_pylist()) if found.size \
                            else []
                        assert ids == expected, (op, city)
                    assert index.len(snap.kv) == len(reference)
        assert db.table("t").verify() == []
