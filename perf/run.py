"""Run every ``perf/bench_*.py`` module and write ``perf/RESULTS.md`` from their output.

Each bench module runs as its own subprocess (``python -m perf.<module>``) and prints
one JSON line per measurement (see :func:`perf.harness.report`). Nothing is written
unless every module succeeds, so the file never mixes runs. ``make perf`` runs this.
"""

import ast
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from perf.harness import TIME_UNITS, log

PERF = Path(__file__).resolve().parent
ROOT = PERF.parent
RESULTS = PERF / "RESULTS.md"
SOAK = PERF / "SOAK.json"
"""The release-size staging burn-in, written by ``perf/soak.py --record``."""
SOAK_HEADING = "\n## Staging burn-in"
"""Where the soak section of RESULTS.md starts (``--soak-only`` rewrites from there)."""
MAKE_COMMAND = "make perf"
COLUMNS = ("Benchmark", "What is measured", "Unit", "Ours", "Anchor", "Anchor figure",
           "Ratio", "Target", "Met", "Best of")

Result = dict[str, Any]

INTRO = """\
# Performance results

Written by `make perf` (`perf/run.py`); do not edit by hand, rerun it. Each benchmark
module times our code and an anchor (a well-known library, numpy, or a fixed target)
side by side in one process, on the same inputs, after checking that both give the
same answers. The machines we run on are shared and noisy: absolute figures move
between runs, sometimes by tens of percent, and only say what this machine did at
that moment. The ratios are what count, because ours and the anchor ran interleaved
under the same conditions. **Ratio** is how many times better ours is than the anchor
(ours / anchor for throughputs, anchor / ours for times); a line marked
*informational* has no target and is there for context.

The crash and power-loss campaigns are not benchmarks; their release-size runs are
recorded by hand, with their commands, in [`CAMPAIGNS.md`](CAMPAIGNS.md). The
staging burn-in (`perf/soak.py`) takes too long for `make perf`: its last
release-size run is recorded in `perf/SOAK.json` by `perf/soak.py --record` (`make
soak-release`), and its figures are copied into the last section here.
"""


def bench_modules() -> list[str]:
    """Names of the bench modules, in a stable order."""
    return sorted(path.stem for path in PERF.glob("bench_*.py"))


def run_module(name: str) -> list[Result]:
    """Run ``perf.<name>`` in a subprocess and parse its JSON lines."""
    log(f"perf.run: running perf.{name}")
    out = subprocess.run([sys.executable, "-m", f"perf.{name}"], cwd=ROOT, check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def summary_line(name: str) -> str:
    """First line of a bench module's docstring, read without importing it."""
    doc = ast.get_docstring(ast.parse((PERF / f"{name}.py").read_text()))
    return doc.splitlines()[0] if doc else ""


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo, or what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_revision() -> str:
    """``git describe --always --dirty`` of the repository, or "unknown"."""
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT,
                              check=True, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def this_command() -> str:
    """The command that is producing this run, as typed from the repository root."""
    if os.environ.get("MAKELEVEL"):
        return MAKE_COMMAND
    python = os.path.relpath(sys.executable, ROOT)
    return shlex.join([python if not python.startswith("..") else sys.executable,
                       "-m", "perf.run"])


def machine() -> list[tuple[str, str]]:
    """Where and with what the figures were measured."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return [
        ("Date", datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")),
        ("CPU", cpu_model()),
        ("Cores", f"{os.cpu_count()} logical" + (f", {usable} usable" if usable else "")),
        ("OS", platform.platform()),
        ("Python", platform.python_version()),
        ("numpy", version("numpy")),
        ("numba", version("numba")),
        ("Revision", git_revision()),
    ]


def number(value: float | None, unit: str) -> str:
    """A figure as shown in the tables."""
    if value is None:
        return "—"
    return f"{value:,.0f}" if unit == "keys/s" else f"{value:,.2f}"


def row(result: Result) -> list[str]:
    """One table row for one measurement."""
    unit = result["unit"]
    ratio = result["ratio"]
    target = result["target_ratio"]
    met = {None: "—", True: "yes", False: "**no**"}[result["met"]]
    return [
        f"`{result['benchmark']}`", result["measures"], unit, number(result["ours"], unit),
        result["anchor"] or "—", number(result["anchor_value"], unit),
        "—" if ratio is None else f"{ratio:.2f}",
        "—" if target is None else f"≥ {target:g}", met, str(result["repeat"] or "—"),
    ]


def table(rows: list[list[str]]) -> list[str]:
    """A markdown table with the standard columns."""
    lines = [COLUMNS, ("---",) * len(COLUMNS), *rows]
    return ["| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |"
            for line in lines]


def render(results: dict[str, list[Result]], seconds: float) -> str:
    """The whole of RESULTS.md."""
    targeted = [r for rs in results.values() for r in rs if r["met"] is not None]
    missed = [r for r in targeted if not r["met"]]
    lines = [
        INTRO,
        "## How these were made",
        "",
        f"Command: `{MAKE_COMMAND}` from the repository root, which runs "
        f"`.venv/bin/python -m perf.run`. This file was produced by `{this_command()}`; "
        f"the run took {seconds:.0f} s.",
        "",
        *(f"- {key}: {value}" for key, value in machine()),
        "",
        "Method: each callable is called once first (Numba compilation and page faults "
        "are not timed), then ours and the anchor run the number of interleaved rounds "
        "in the *Best of* column and the best time of each is kept "
        "(`time.perf_counter`). GB is 10^9 bytes."
        f" Lower is better only for {', '.join(sorted(TIME_UNITS))}.",
        "",
        "## Summary",
        "",
        f"{len(targeted) - len(missed)} of {len(targeted)} targets met."
        + ("" if not missed else " Missed: "
           + ", ".join(f"`{r['benchmark']}` (ratio {r['ratio']:.2f}, target "
                       f"{r['target_ratio']:g})" for r in missed) + "."),
    ]
    for name, module_results in results.items():
        lines += ["", f"## `perf.{name}`", "", summary_line(name), "",
                  *table([row(r) for r in module_results])]
    lines += soak_section()
    return "\n".join(lines) + "\n"


def soak_section() -> list[str]:
    """The last section: the release-size soak recorded in :data:`SOAK`."""
    lines = ["", SOAK_HEADING.strip() + " (`perf.soak`)", ""]
    if not SOAK.exists():
        return [*lines, f"No release-size soak recorded: `{SOAK.relative_to(ROOT)}` "
                        "is missing; run `make soak-release`."]
    soak = json.loads(SOAK.read_text())
    f = soak["figures"]
    large = f"{f['large_transactions']}"
    if f["large_transactions"]:
        large += f" ({f['large_seconds_mean']:.1f} s mean, {f['large_seconds_max']:.1f} s max)"
    growth = f["rss_anon_mb_fitted_growth"]
    figures = [
        ("Verdict", f"**{soak['verdict']}**" + "".join(f"; {r}" for r in soak["reasons"])),
        ("Length and load", f"{f['minutes']:g} min; {f['clients']} RESP clients, a "
                            "client EXECing a 100,000-command MULTI every 20 s, a Flight "
                            "client, a reader holding a snapshot for the first half"),
        ("Acknowledged operations/s", f"mean {f['tps_mean']:,.0f}, min {f['tps_min']:,.0f}"),
        ("Client p95 latency per window", f"median {f['p95_ms_median']:.1f} ms, max "
                                          f"{f['p95_ms_max']:.1f} ms"),
        ("Server commits/s, commit p95", f"mean {f['commits_per_second_mean']:,.0f}, "
                                         f"median p95 {f['commit_p95_ms_median']:.1f} ms"),
        ("RSS (all; anonymous)", f"{f['rss_mb_start']:.0f} → {f['rss_mb_end']:.0f} MB, max "
                                 f"{f['rss_mb_max']:.0f}; {f['rss_anon_mb_start']:.0f} → "
                                 f"{f['rss_anon_mb_end']:.0f} MB"),
        ("Anonymous RSS, second half", f"{f['rss_anon_mb_second_half_min']:.0f}-"
                                       f"{f['rss_anon_mb_second_half_max']:.0f} MB, fitted "
                                       + ("—" if growth is None else f"{growth:+.0f} MB")
                                       + " over the run"),
        ("Open descriptors", f"{f['fds_start']} → {f['fds_end']} (max {f['fds_max']})"),
        ("WAL, data file", f"WAL max {f['wal_mb_max']:.0f} MB, end {f['wal_mb_end']:.0f} MB; "
                           f"data file end {f['data_mb_end']:.0f} MB"),
        ("Large MULTI/EXECs acknowledged", large),
        ("Flight imports acknowledged", f"{f['flight_imports']}"),
        ("Snapshot held", f"{f['snapshot_held_seconds']:.0f} s, {f['snapshot_rereads']} "
                          f"re-reads of {f['snapshot_keys']} keys unchanged"),
        ("Errors, WATCH retries, exit", f"{f['errors']}, {f['watch_retries']:,}, exit status "
                                        f"{f['exit_status']}"),
        ("Machine", f"server CPU mean {f['server_cpu_percent_mean']:.0f}% of one core; "
                    f"load average mean {f['load_average_mean']:.1f} on {f['cpus']} CPUs"),
    ]
    return [*lines, f"Command: `{soak['command']}` (run at `{soak['revision']}`, started "
                    f"{soak['started']}). What each figure means, and the earlier runs: "
                    "`perf/soak.py` and [`CAMPAIGNS.md`](CAMPAIGNS.md).", "",
            "| Figure | Value |", "| --- | --- |",
            *(f"| {name} | {value.replace('|', chr(92) + '|')} |" for name, value in figures)]


def main() -> None:
    """Run all bench modules, then write RESULTS.md; with ``--soak-only``, rewrite
    only its last section from :data:`SOAK` and keep the benchmark sections."""
    if sys.argv[1:] == ["--soak-only"]:
        benchmarks = RESULTS.read_text().partition(SOAK_HEADING)[0].rstrip("\n")
        RESULTS.write_text(benchmarks + "\n" + "\n".join(soak_section()) + "\n")
        log(f"perf.run: rewrote the soak section of {RESULTS.relative_to(ROOT)}")
        return
    if sys.argv[1:]:
        sys.exit("usage: python -m perf.run [--soak-only]")
    start = time.perf_counter()
    results = {name: run_module(name) for name in bench_modules()}
    RESULTS.write_text(render(results, time.perf_counter() - start))
    log(f"perf.run: wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
