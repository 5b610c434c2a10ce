"""ServerMetrics: the families the registry exports and that they follow the engine,
rates and percentiles of snapshots over a fake clock, the label bound, percentile
estimation from buckets, and page cache residency through mincore."""

import math
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

import colibri_mm as cm
from colibri_mm.database import Database
from colibri_mm.server.metrics import (
    LATENCY_BUCKETS,
    MAX_LABEL_VALUES,
    ServerMetrics,
    quantile_from_buckets,
    resident_bytes,
)


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    with cm.connect(tmp_path / "db", create=True) as database:
        yield database


def exported(metrics: ServerMetrics) -> dict[str, float]:
    """Every sample of the text exposition, by name and labels."""
    text = generate_latest(metrics.registry).decode()
    return {sample.name + str(sorted(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_engine_figures_follow_the_database(db: Database) -> None:
    metrics = ServerMetrics(db, open_connections=lambda: 7)
    before = exported(metrics)
    for i in range(5):
        db.kv.put(f"k{i}", "v")
    db.checkpoint()
    after = exported(metrics)
    assert after["colibri_commits_total[]"] == before["colibri_commits_total[]"] + 5
    assert after["colibri_wal_written_bytes_total[]"] > before["colibri_wal_written_bytes_total[]"]
    assert after["colibri_wal_syncs_total[]"] >= before["colibri_wal_syncs_total[]"] + 5
    assert after["colibri_published_csn[]"] == db.stats()["published_csn"]
    assert after["colibri_checkpoints_total[]"] == 1
    assert after["colibri_checkpoint_id[]"] == db.stats()["checkpoint_id"]
    assert after["colibri_last_checkpoint_duration_seconds[]"] >= 0
    assert after["colibri_last_checkpoint_failed[]"] == 0
    assert after["colibri_data_used_bytes[]"] == \
        db.stats()["data_pages_used"] * db.stats()["page_size"]
    assert 0 < after["colibri_data_resident_bytes[]"] <= after["colibri_data_used_bytes[]"]
    assert after["colibri_connections[]"] == 7
    assert after["colibri_process_resident_memory_bytes[]"] > 0
    for name in ("colibri_process_major_page_faults_total[]",
                 "colibri_recovery_duration_seconds[]", "colibri_live_snapshots[]",
                 "colibri_memory_dirty_bytes[]"):
        assert name in after


def test_chunk_cache_counters_and_hit_ratio(db: Database) -> None:
    db.import_arrow("t", pa.table({"id": list(range(1000))}), primary_key="id")
    metrics = ServerMetrics(db, clock=FakeClock())
    table = db.table("t")
    table.get(1)  # a miss, copied in
    table.get(2)  # a hit
    values = exported(metrics)
    assert values["colibri_chunk_cache_misses_total[]"] == 1
    assert values["colibri_chunk_cache_hits_total[]"] == 1
    assert metrics.snapshot()["chunk_cache_hit_ratio"] == 0.5


def test_snapshot_rates_are_over_the_interval_since_the_previous_one(db: Database) -> None:
    clock = FakeClock()
    metrics = ServerMetrics(db, clock=clock)
    db.kv.put("a", "1")
    clock.now += 2
    first = metrics.snapshot()
    assert first["interval_seconds"] == 2
    assert first["rates"]["colibri_commits_total"] == 0.5
    assert first["group_size"] == 1
    for key in ("b", "c", "d", "e"):
        db.kv.put(key, "1")
    clock.now += 4
    second = metrics.snapshot()
    assert second["rates"]["colibri_commits_total"] == 1.0
    assert second["rates"]["colibri_wal_syncs_total"] > 0
    assert second["values"]["colibri_commits_total"] == first["values"]["colibri_commits_total"] + 4
    third = metrics.snapshot()  # no time passed
    assert third["rates"]["colibri_commits_total"] is None
    assert third["group_size"] is None


def test_latency_percentiles_cover_only_the_interval(db: Database) -> None:
    metrics = ServerMetrics(db, clock=FakeClock())
    for _ in range(100):
        metrics.observe_request("GET", 0.5, None)  # in the (0.25, 0.5] bucket
    metrics.observe_commit(0.003)
    first = metrics.snapshot()
    assert first["request_latency_seconds"]["count"] == 100
    assert 0.25 < first["request_latency_seconds"]["p50"] <= 0.5
    assert first["request_latency_seconds"]["by_command"]["get"]["p99"] <= 0.5
    assert 0.0025 < first["commit_latency_seconds"]["p50"] <= 0.005
    for _ in range(10):
        metrics.observe_request("set", 0.0002, None)
    second = metrics.snapshot()
    latency = second["request_latency_seconds"]
    assert latency["count"] == 10
    assert 0.0001 < latency["p99"] <= 0.00025
    assert latency["by_command"]["get"]["count"] == 0
    assert latency["by_command"]["get"]["p50"] is None
    assert second["commit_latency_seconds"] == {"count": 0, "p50": None, "p95": None,
                                                "p99": None}
    assert second["values"]["colibri_request_duration_seconds_count"] == 110


def test_errors_by_kind_and_bounded_labels(db: Database) -> None:
    metrics = ServerMetrics(db)
    metrics.observe_request("GET", 0.001, None)
    metrics.observe_request("INCR", 0.001, "WRONGTYPE")
    metrics.observe_request("incr", 0.001, "WRONGTYPE")
    metrics.observe_request("SET", 0.001, "ERR")
    values = exported(metrics)
    assert values["colibri_errors_total[('kind', 'WRONGTYPE')]"] == 2
    assert values["colibri_errors_total[('kind', 'ERR')]"] == 1
    assert values["colibri_request_duration_seconds_count[('command', 'incr')]"] == 2
    for i in range(MAX_LABEL_VALUES + 10):
        metrics.observe_request(f"made-up-{i}", 0.001, None)
    commands = {name.split("'command', ")[1] for name in exported(metrics)
                if name.startswith("colibri_request_duration_seconds_count")}
    assert len(commands) == MAX_LABEL_VALUES + 1  # and "other"
    assert "'other')]" in commands
    assert exported(metrics)["colibri_request_duration_seconds_count[('command', 'other')]"] \
        == 10 + 3  # get, incr and set came first


@pytest.mark.parametrize(("counts", "q", "expected"), [
    ([0, 10, 10, 10], 0.5, 1.5),     # all in (1, 2]: halfway
    ([10, 10, 10, 10], 0.5, 0.5),    # the first bucket's lower edge is 0
    ([0, 0, 0, 10], 0.99, 4.0),      # above every finite bound: the highest one
    ([5, 5, 10, 10], 0.5, 1.0),      # the rank is the edge of a bucket
    ([0, 0, 0, 0], 0.5, None),
])
def test_quantile_from_buckets(counts: list[float], q: float, expected: float | None) -> None:
    assert quantile_from_buckets([1.0, 2.0, 4.0, math.inf], counts, q) == expected


def test_buckets_cover_microseconds_to_seconds() -> None:
    assert list(LATENCY_BUCKETS) == sorted(LATENCY_BUCKETS)
    assert LATENCY_BUCKETS[0] <= 0.0001 and LATENCY_BUCKETS[-1] == math.inf


def test_resident_bytes_of_a_file_just_written(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * (1 << 16))  # dirty pages: in the page cache until written back
    assert 0 < resident_bytes(path, 1 << 16) <= 1 << 16  # type: ignore[operator]
    assert resident_bytes(path, 1 << 30) <= 1 << 16  # type: ignore[operator]
    assert resident_bytes(tmp_path / "missing", 100) is None
    (tmp_path / "empty").write_bytes(b"")
    assert resident_bytes(tmp_path / "empty", 100) == 0


def test_a_readonly_database_has_no_wal_figures(db: Database, tmp_path: Path) -> None:
    db.kv.put("a", "1")
    db.checkpoint()
    with cm.connect(tmp_path / "db", readonly=True) as reader:
        metrics = ServerMetrics(reader)
        values = exported(metrics)
        assert "colibri_commits_total[]" not in values
        assert "colibri_wal_syncs_total[]" not in values
        assert values["colibri_checkpoint_id[]"] == db.stats()["checkpoint_id"]
        assert metrics.snapshot()["group_size"] is None
