"""The Arrow perf modules at a tiny size: ``perf.bench_arrow`` (every line, its checks
and its child processes) and ``perf.import_memory`` (dataset, child, figures)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from perf_modules import ROOT, perf_module

bench_arrow = perf_module("bench_arrow")
import_memory = perf_module("import_memory")

TIMED_LINES = {
    "arrow.import_arrow": 2.0,
    "arrow.import_arrow vs IPC file": 0.5,
    "arrow.import_arrow keyed": 2.0,
    "arrow.import_parquet": 1.5,
    "arrow.to_arrow_table": 3.0,
    "arrow.to_parquet": 1.0,
}
MEMORY_LINES = [f"arrow.peak RSS {line[0]}" for line in bench_arrow.MEMORY_LINES]


def run_module(module: str, args: list[str], tmp_path: Path,
               env: dict[str, str] | None = None) -> list[dict[str, object]]:
    out = subprocess.run([sys.executable, "-m", f"perf.{module}", *args], cwd=ROOT,
                         env={**os.environ, "TMPDIR": str(tmp_path), **(env or {})},
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def test_bench_arrow_reports_every_line(tmp_path: Path) -> None:
    # More rows than a chunk (65,536), so the imports take the bulk path.
    lines = run_module("bench_arrow", [], tmp_path, {"COLIBRI_BENCH_ARROW_ROWS": "140000"})
    assert [line["benchmark"] for line in lines] == [*TIMED_LINES, *MEMORY_LINES]
    for line in lines:
        assert isinstance(line["ours"], float) and line["ours"] > 0
        if line["benchmark"] in TIMED_LINES:
            assert line["unit"] == "rows/s"
            assert line["target_ratio"] == TIMED_LINES[line["benchmark"]]
            assert isinstance(line["ratio"], float) and line["ratio"] > 0
            assert line["met"] in (True, False)
            assert "140,000 rows" in line["measures"] or "140,000-row" in line["measures"]
        else:
            assert line["unit"] == "MB"
            assert line["ratio"] is None and line["met"] is None
            assert " MB (RSS before " in line["anchor"]
    assert list(tmp_path.iterdir()) == []  # the temporary directory is gone


def test_bench_arrow_rows_are_deterministic() -> None:
    first = bench_arrow.make_rows(np.random.default_rng(1), 1000)
    again = bench_arrow.make_rows(np.random.default_rng(1), 1000)
    assert first.equals(again)
    assert first.schema.names == ["id", "x", "y", "ts", "s"]
    assert sorted(first.column("id").to_pylist()) == list(range(1000))
    lengths = [len(s) for s in first.column("s").to_pylist()]
    assert min(lengths) >= 4 and max(lengths) <= 20
    answer = bench_arrow.answer_of(first)
    assert answer.rows == 1000 and answer.s_bytes == sum(lengths)


def test_bench_arrow_check_catches_a_wrong_answer() -> None:
    answer = bench_arrow.Answer(10, 5.0, 3, 40)
    bench_arrow.check_answer(answer._replace(sum_x=5.0 + 1e-9), answer, "close enough")
    for wrong in (answer._replace(rows=9), answer._replace(sum_x=5.1),
                  answer._replace(sum_y=4), answer._replace(s_bytes=41)):
        with pytest.raises(RuntimeError, match="bench_arrow check failed"):
            bench_arrow.check_answer(wrong, answer, "wrong")


def test_import_memory_prints_figures_and_cleans_up(tmp_path: Path) -> None:
    # 0.004 GB is one batch of 1,000,000 rows (44 MB): the smallest dataset it writes.
    lines = run_module("import_memory", [str(tmp_path / "work"), "--gb", "0.004",
                                         "--keyed"], tmp_path)
    assert [line["keyed"] for line in lines] == [False, True]
    for line in lines:
        assert line["rows"] == import_memory.BATCH_ROWS and line["files"] == 1
        assert line["peak_rss_mb"] >= line["rss_before_mb"] > 0
        assert line["wal_bytes_written"] > 0 and line["database_bytes"] > 0
        assert line["rows_per_s"] > 0 and line["mb_per_s"] > 0
    assert list((tmp_path / "work").iterdir()) == []


def test_import_memory_ids_are_unique_across_batches() -> None:
    rng = np.random.default_rng(1)
    ids = np.concatenate([import_memory.make_batch(rng, start, 1000).column("id").to_numpy()
                          for start in (0, 1000, 2000)])
    assert np.unique(ids).size == 3000
