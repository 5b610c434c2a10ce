"""``make release-check``: every go-live gate, run for real, then one table saying GO
or NO-GO for each and why.

Gates, in order (a gate that fails does not stop the others, so the table is
complete):

- ``tests``: ``make test`` (lint, mypy, the offline audit, docs, the whole suite);
- ``audit``: ``make audit``, the strict one: any package the vulnerability scan
  could not audit (no service reachable, or an index that answers only for latest
  releases and an older one installed) is NO-GO;
- ``docs``: ``make docs`` (the API reference, warnings are errors);
- ``deploy``: ``scripts/deploy.sh staging`` (its own tests are skipped: the
  ``tests`` gate ran them), with its smoke test of the installed server;
- ``soak``: ``perf/soak.py`` for ``--soak-minutes`` (default 2);
- ``perf``: ``perf/run.py`` (rewrites ``perf/RESULTS.md``); NO-GO names every
  benchmark below its target ratio.

The exit status is 0 only when every gate is GO. ``--only`` runs some gates (the
others are reported as NOT RUN, which is NO-GO): for trying one gate, never for a
release.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = ROOT / ".venv" / "bin" / "python"
RESULTS = ROOT / "perf" / "RESULTS.md"
LOGS = ROOT / "build" / "release-check"
SUMMARY = re.compile(r"^(\d+) of (\d+) targets met\.(?: Missed: (.*)\.)?$", re.MULTILINE)


@dataclass
class Verdict:
    """The outcome of one gate."""

    gate: str
    go: bool
    reason: str
    seconds: float


@dataclass(frozen=True)
class Gate:
    """A command, and how its outcome is judged (``judge(exit_status, output)``
    returns GO and the reason)."""

    name: str
    command: list[str]
    judge: Callable[[int, str], tuple[bool, str]]
    env: tuple[tuple[str, str], ...] = ()


def exit_status_only(status: int, output: str) -> tuple[bool, str]:
    """GO when the command exits 0; else its last lines say why."""
    if status == 0:
        return True, "passed"
    tail = [line for line in output.splitlines() if line.strip()][-3:]
    return False, f"exit status {status}: " + " / ".join(tail)


def perf_targets(status: int, output: str) -> tuple[bool, str]:
    """GO when the benchmarks ran and every targeted ratio was met
    (``perf/RESULTS.md``'s summary line)."""
    if status != 0:
        return exit_status_only(status, output)
    return judge_results(RESULTS.read_text())


def judge_results(text: str) -> tuple[bool, str]:
    """The perf gate's verdict from the text of a ``RESULTS.md``."""
    found = SUMMARY.search(text)
    if found is None:
        return False, "perf/RESULTS.md has no summary line"
    met, targeted, missed = int(found.group(1)), int(found.group(2)), found.group(3)
    if met == targeted:
        return True, f"{met} of {targeted} targets met"
    return False, f"{met} of {targeted} targets met; missed: {missed}"


def gates(soak_minutes: float) -> list[Gate]:
    """Every gate, in the order they run."""
    return [
        Gate("tests", ["make", "test"], exit_status_only),
        Gate("audit", ["make", "audit"], exit_status_only),
        Gate("docs", ["make", "docs"], exit_status_only),
        Gate("deploy", ["bash", "scripts/deploy.sh", "staging"], exit_status_only,
             (("DEPLOY_SKIP_TESTS", "1"),)),
        Gate("soak", [str(PYTHON), "-m", "perf.soak", "--minutes", f"{soak_minutes:g}",
                      "--out", str(LOGS / "soak")], exit_status_only),
        Gate("perf", [str(PYTHON), "-m", "perf.run"], perf_targets),
    ]


def run_gate(gate: Gate) -> Verdict:
    """Run ``gate``, its output teed to ``build/release-check/<gate>.log``."""
    LOGS.mkdir(parents=True, exist_ok=True)
    log_path = LOGS / f"{gate.name}.log"
    print(f"release-check: {gate.name}: {' '.join(gate.command)} (log: "
          f"{log_path.relative_to(ROOT)})", flush=True)
    started = time.monotonic()
    with log_path.open("w") as log:
        completed = subprocess.run(gate.command, cwd=ROOT, stdout=log,
                                   stderr=subprocess.STDOUT,
                                   env={**os.environ, **dict(gate.env)})
    go, reason = gate.judge(completed.returncode, log_path.read_text(errors="replace"))
    return Verdict(gate.name, go, reason, time.monotonic() - started)


def table(verdicts: Sequence[Verdict]) -> str:
    """The GO / NO-GO table."""
    width = max(len(v.gate) for v in verdicts)
    lines = [f"{'gate':<{width}}  {'verdict':<7}  {'seconds':>7}  reason",
             f"{'-' * width}  -------  -------  ------"]
    for v in verdicts:
        lines.append(f"{v.gate:<{width}}  {'GO' if v.go else 'NO-GO':<7}  "
                     f"{v.seconds:>7.0f}  {v.reason}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the gates; print the table; exit 0 only if every gate is GO."""
    parser = argparse.ArgumentParser(prog="release-check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--soak-minutes", type=float, default=2.0)
    parser.add_argument("--only", nargs="+", metavar="GATE",
                        help="run only these gates (the others are NO-GO: not run)")
    args = parser.parse_args(argv)
    every = gates(args.soak_minutes)
    names = [g.name for g in every]
    unknown = set(args.only or ()) - set(names)
    if unknown:
        parser.error(f"unknown gate(s) {', '.join(sorted(unknown))}; gates: "
                     f"{', '.join(names)}")
    verdicts = [run_gate(g) if args.only is None or g.name in args.only
                else Verdict(g.name, False, "not run (--only)", 0.0) for g in every]
    print()
    print(table(verdicts))
    go = all(v.go for v in verdicts)
    print(f"\n{'GO' if go else 'NO-GO'}: {sum(v.go for v in verdicts)} of "
          f"{len(verdicts)} gates GO")
    return 0 if go else 1


if __name__ == "__main__":
    sys.exit(main())
