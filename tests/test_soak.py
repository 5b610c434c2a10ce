"""The staging burn-in (``perf/soak.py``): one minute of it against a real server (the
size CI runs; the release-size run is recorded in ``perf/SOAK.json`` and shown in
``perf/RESULTS.md``), its record and how ``perf/run.py --soak-only`` puts it in
RESULTS.md, and its verdicts on made-up figures: a steady RSS or descriptor growth is
a leak, warm-up is not, and an acknowledged value missing at the end is named."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from perf_modules import ROOT, perf_module

soak = perf_module("soak")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_a_one_minute_soak_passes_and_writes_its_csv_plot_and_record(tmp_path: Path) -> None:
    record = tmp_path / "record.json"
    done = subprocess.run([sys.executable, "-m", "perf.soak", "--minutes", "1", "--out",
                           str(tmp_path), "--record", str(record)],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "verdict: PASS"
    assert any(line.startswith("TPS (acknowledged operations/s): mean ") for line in lines)
    assert "errors 0," in done.stdout and "server exit status 0" in done.stdout
    [table] = tmp_path.glob("soak-*.csv")
    [plot] = tmp_path.glob("soak-*.png")
    assert f"csv: {table}" in lines and f"png: {plot}" in lines
    assert plot.read_bytes().startswith(PNG_MAGIC)
    with table.open() as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == [f.name for f in soak.fields(soak.Sample)]
    held = [row["snapshot_held"] for row in rows]
    assert held[0] == "1" and held[-1] == "0"  # held for the first half only
    assert all(float(row["rss_mb"]) > 0 and int(row["open_fds"]) > 0 for row in rows)
    assert rows[-1]["errors"] == "0"
    recorded = json.loads(record.read_text())
    assert recorded["verdict"] == "PASS" and recorded["reasons"] == []
    assert recorded["command"].endswith(f"perf.soak --minutes 1 --out {tmp_path} "
                                        f"--record {record}")
    figures = recorded["figures"]
    assert figures["samples"] == len(rows) and figures["errors"] == 0
    assert figures["fds_max"] == max(int(row["open_fds"]) for row in rows)
    assert figures["large_transactions"] >= 1 and figures["flight_imports"] >= 1


def test_the_soak_section_of_results_md_is_rewritten_from_the_record(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = perf_module("run")
    results, record = tmp_path / "RESULTS.md", tmp_path / "SOAK.json"
    monkeypatch.setattr(run, "RESULTS", results)
    monkeypatch.setattr(run, "SOAK", record)
    monkeypatch.setattr(run, "ROOT", tmp_path)
    monkeypatch.setattr(sys, "argv", ["perf.run", "--soak-only"])
    results.write_text("# Performance results\n\n## `perf.bench_kv`\n\n| a table |\n")
    run.main()
    assert results.read_text().endswith("`SOAK.json` is missing; run `make soak-release`.\n")
    figures = {"minutes": 30, "clients": 120, "tps_mean": 4869.2, "tps_min": 454.0,
               "commits_per_second_mean": 900.0, "p95_ms_median": 66.0, "p95_ms_max": 1734.0,
               "commit_p95_ms_median": 3.0, "rss_mb_start": 288.0, "rss_mb_end": 504.0,
               "rss_mb_max": 510.0, "rss_anon_mb_start": 131.0, "rss_anon_mb_end": 283.0,
               "rss_anon_mb_second_half_min": 243.0, "rss_anon_mb_second_half_max": 308.0,
               "rss_anon_mb_fitted_growth": 53.0, "fds_start": 152, "fds_end": 152,
               "fds_max": 154, "wal_mb_max": 620.0, "wal_mb_end": 1.0, "data_mb_end": 268.0,
               "large_transactions": 80, "large_seconds_mean": 3.0, "large_seconds_max": 8.2,
               "flight_imports": 179, "snapshot_held_seconds": 900.0, "snapshot_keys": 2480,
               "snapshot_rereads": 180, "errors": 0, "watch_retries": 406024,
               "exit_status": 0, "server_cpu_percent_mean": 63.0, "load_average_mean": 21.8,
               "cpus": 2}
    record.write_text(json.dumps({"started": "20261205T0000Z", "revision": "abc1234",
                                  "command": ".venv/bin/python -m perf.soak --minutes 30",
                                  "verdict": "PASS", "reasons": [], "figures": figures}))
    for _ in range(2):  # a second rewrite replaces the section instead of adding one
        run.main()
    text = results.read_text()
    assert text.startswith("# Performance results\n\n## `perf.bench_kv`\n\n| a table |\n")
    assert text.count("## Staging burn-in") == 1 and "is missing" not in text
    assert "`.venv/bin/python -m perf.soak --minutes 30` (run at `abc1234`" in text
    assert "| Verdict | **PASS** |" in text
    assert "| Acknowledged operations/s | mean 4,869, min 454 |" in text
    assert "| Open descriptors | 152 → 152 (max 154) |" in text
    assert "| Errors, WATCH retries, exit | 0, 406,024, exit status 0 |" in text


def samples(rss: list[float], fds: list[int], every: float = 10.0) -> list[object]:
    return [soak.Sample(seconds=i * every, ops_per_second=1000.0, p95_ms=5.0,
                        commits_per_second=100.0, commit_p95_ms=2.0, rss_mb=r + 150,
                        rss_anon_mb=r,
                        server_cpu_percent=50.0, load_average=2.0, open_fds=f,
                        wal_mb=1.0, data_mb=64.0, disk_free_gb=50.0, errors=0,
                        snapshot_held=0)
            for i, (r, f) in enumerate(zip(rss, fds, strict=True))]


def test_steady_growth_is_a_leak_and_warm_up_is_not() -> None:
    n, duration = 61, 600.0
    wobble = [(-1) ** i * 3.0 for i in range(n)]
    flat_fds = [150 + i % 2 for i in range(n)]
    # Warm-up: RSS climbs in the first half, then wobbles around a plateau.
    warm = [300 + min(i, 30) * 5 + w for i, w in enumerate(wobble)]
    assert soak.leaks(samples(warm, flat_fds), duration) == []
    growing = [300 + i * 2.5 + w for i, w in enumerate(wobble)]  # +150 MB over the run
    [reason] = soak.leaks(samples(growing, flat_fds), duration)
    assert reason.startswith("leak: anonymous RSS grew steadily: +15")
    leaking_fds = [150 + i // 2 for i in range(n)]  # one more every 20 s
    [reason] = soak.leaks(samples(warm, leaking_fds), duration)
    assert reason.startswith("leak: open descriptors grew steadily: +30")


def test_a_short_run_judges_descriptors_but_not_rss() -> None:
    n, duration = 31, 60.0  # every 2 s
    growing = [300.0 + i * 3 for i in range(n)]
    assert soak.leaks(samples(growing, [150] * n, every=2.0), duration) == []
    [reason] = soak.leaks(samples(growing, [150 + i for i in range(n)], every=2.0),
                          duration)
    assert reason.startswith("leak: open descriptors grew steadily: +30")


def test_too_few_samples_cannot_pass_the_leak_check() -> None:
    [reason] = soak.leaks(samples([300.0] * 6, [150] * 6, every=10.0), 60.0)
    assert "only 3 samples in the second half" in reason


def test_missing_acknowledged_data_is_named() -> None:
    balances = {key: soak.ACCOUNT_START for key in soak.ACCOUNT_KEYS}
    expected = soak.Expected(values={b"s0:k0": {b"v2"}, b"s0:k1": {b"v1", b"v3"}},
                             balances=dict(balances), big={1}, flight={1})
    stored: dict[bytes, bytes] = {b"s0:k0": b"v2", b"s0:k1": b"v3"}
    stored.update({key: b"%d" % value for key, value in balances.items()})
    stored.update({soak.big_key(i): v for i, v in enumerate(soak.big_values(1))})

    def get_many(keys: list[bytes]) -> list[bytes | None]:
        return [stored.get(key) for key in keys]

    assert expected.missing(get_many, "here") == []
    stored[b"s0:k0"] = b"v1"  # an older value: the last acknowledged one is lost
    stored[soak.account_key(7)] = b"999"
    stored[soak.big_key(5)] = b"0:5"
    problems = expected.missing(get_many, "here")
    assert len(problems) == 3
    assert problems[0] == "here: 1 client keys lack their last acknowledged value " \
                          "(first b's0:k0')"
    assert "1 account balances differ" in problems[1] and "199999" in problems[1]
    assert "large transaction" in problems[2]
