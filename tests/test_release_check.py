"""``make release-check``: the verdicts of its gates and its table, with a real gate
run (the API reference build)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from release_check import judge_results  # noqa: E402


def test_perf_gate_reads_the_summary_line() -> None:
    assert judge_results("## Summary\n\n27 of 27 targets met.\n") == \
        (True, "27 of 27 targets met")
    go, reason = judge_results("## Summary\n\n18 of 27 targets met. Missed: `kv.get vs "
                               "lmdb` (ratio 0.25, target 0.5).\n")
    assert not go and "18 of 27" in reason and "kv.get vs lmdb" in reason
    assert judge_results("no summary here") == (False,
                                                "perf/RESULTS.md has no summary line")
    # The committed file is in the form the gate reads.
    assert "targets met" in judge_results((ROOT / "perf" / "RESULTS.md").read_text())[1]


def test_only_one_gate_is_never_a_go() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "release_check.py"),
                           "--only", "docs"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 1, done.stdout + done.stderr
    rows = {line.split()[0]: line.split()[1] for line in done.stdout.splitlines()
            if line.split() and line.split()[0] in
            ("tests", "audit", "docs", "deploy", "soak", "perf")}
    assert rows == {"tests": "NO-GO", "audit": "NO-GO", "docs": "GO", "deploy": "NO-GO",
                    "soak": "NO-GO", "perf": "NO-GO"}
    assert "not run (--only)" in done.stdout
    assert "NO-GO: 1 of 6 gates GO" in done.stdout


def test_unknown_gate_is_a_usage_error() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "release_check.py"),
                           "--only", "vibes"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "unknown gate(s) vibes" in done.stderr
