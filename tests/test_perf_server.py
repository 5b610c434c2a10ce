"""``perf.bench_server`` at a tiny size (every line, its checks, its servers and its
clean-up), and its report when redis-server is missing (no ratio, never a stand-in)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from perf_modules import ROOT, perf_module

bench_server = perf_module("bench_server")

REQUESTS = 2000
LINES = [
    "server.SET vs redis", "server.SET vs redis aof", "server.SET floor", "server.SET p95",
    "server.GET vs redis", "server.GET vs redis aof", "server.GET floor", "server.GET p95",
    "server.SET -P 16 vs redis", "server.SET -P 16 vs redis aof", "server.SET -P 16 p95",
    "server.GET -P 16 vs redis", "server.GET -P 16 vs redis aof", "server.GET -P 16 p95",
    "server.RSS under load", "server.RSS after",
]
REDIS_LINES = {name for name in LINES if " vs redis" in name or "-P 16 p95" in name}


def test_bench_server_reports_every_line(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "perf.bench_server"], cwd=ROOT,
                         env={**os.environ, "TMPDIR": str(tmp_path),
                              "COLIBRI_BENCH_SERVER_REQUESTS": str(REQUESTS),
                              "COLIBRI_BENCH_SERVER_ROUNDS": "1"},
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    assert [line["benchmark"] for line in lines] == LINES
    have_redis = shutil.which("redis-server") is not None
    for line in lines:
        assert isinstance(line["ours"], float) and line["ours"] > 0
        assert line["repeat"] == 1
        if line["unit"] == "requests/s":
            assert f"-n {REQUESTS} " in line["measures"]
        if line["benchmark"] in REDIS_LINES:
            assert (line["anchor_value"] is not None) is have_redis
            assert line["anchor"].startswith("redis-server ")
        if line["benchmark"].endswith(" floor"):
            assert (line["anchor_value"], line["target_ratio"]) == (50_000.0, 1.0)
    assert list(tmp_path.iterdir()) == []  # the servers' directories are gone


def test_without_redis_server_no_ratio_is_made_up(capsys: pytest.CaptureFixture[str]) -> None:
    figures = bench_server.Figures(rss_start_mb=100.0, rss_load_mb=120.0, rss_after_mb=110.0)
    for pipeline in bench_server.PIPELINES:
        figures.add(pipeline, [{"test": test, "rps": "1000.0", "p95_latency_ms": "2.5"}
                               for test in bench_server.TESTS])
    bench_server.report_all({bench_server.OURS: figures}, "redis-server not installed")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["benchmark"] for line in lines] == LINES
    for line in lines:
        if line["benchmark"] in REDIS_LINES:
            assert line["anchor"] == "redis-server not installed: no anchor figure"
            assert (line["anchor_value"], line["ratio"], line["met"]) == (None, None, None)
    assert lines[-1]["anchor"] == "redis-server not installed: not measured"
