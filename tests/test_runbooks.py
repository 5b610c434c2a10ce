"""Every command block of ``runbooks/RUNBOOK-*.md`` is executed, in order, and its
output checked, so a runbook that drifts from the product fails CI.

How a runbook is written for this (``runbooks/README.md`` says it for authors):

- Blocks fenced as ``console`` are executed; other blocks are prose.
- A line ``$ command`` is run by one bash session per runbook (so ``cd``, variables
  and background jobs carry over), in an empty temporary directory that holds the
  runbook's files; ``\\`` at the end continues a command on the next line.
- The lines after a command, up to the next command, are its expected output
  (standard output and error together). ``...`` alone matches any number of lines;
  inside a line it matches any text. No lines means no output is checked.
- The exit status must be 0, unless the expected output ends with ``[exit N]``.

The session runs in a network namespace of its own where the machine allows one
(``unshare --net``), so the default ports of the runbooks (7379-7381) never meet
another server; elsewhere those ports must be free.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNBOOKS = sorted((ROOT / "runbooks").glob("RUNBOOK-*.md"))
COMMAND_TIMEOUT = 300.0
"""Seconds one command may take (a server start on a loaded machine)."""


@dataclass
class Step:
    """One ``$`` command of a runbook and the output it must print."""

    line: int
    command: str
    expected: list[str] = field(default_factory=list)

    @property
    def exit_status(self) -> int:
        if self.expected and (m := re.fullmatch(r"\[exit (\d+)\]", self.expected[-1])):
            return int(m.group(1))
        return 0

    @property
    def output(self) -> list[str]:
        return self.expected[:-1] if self.exit_status or (
            self.expected and self.expected[-1] == "[exit 0]") else self.expected


FIXTURES = Path(__file__).resolve().parent / "fixtures"
SETUP: dict[str, Callable[[Path], None]] = {
    # The upgrade drill starts from a real database of format 0.9.
    "RUNBOOK-UPGRADE.md": lambda directory: shutil.copytree(
        FIXTURES / "format-0.9", directory / "colibri-data"),
}
"""What a runbook's directory holds before its first command (its text says so)."""


def steps_of(path: Path) -> list[Step]:
    """The commands of the ``console`` blocks of a runbook, in order."""
    steps: list[Step] = []
    in_block = False
    continuing = False
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith("```"):
            in_block = line.strip() == "```console" and not in_block
            continuing = False
            continue
        if not in_block:
            continue
        if continuing:
            steps[-1].command += "\n" + line
            continuing = line.endswith("\\")
        elif line.startswith("$ "):
            steps.append(Step(number, line[2:]))
            continuing = line.endswith("\\")
        elif steps:
            steps[-1].expected.append(line)
    return steps


def matches(expected: list[str], actual: list[str]) -> bool:
    """Whether ``actual`` lines fit ``expected`` (``...`` lines and ``...`` inside
    lines match anything)."""
    if not expected:
        return not actual
    head, rest = expected[0], expected[1:]
    if head == "...":
        return any(matches(rest, actual[i:]) for i in range(len(actual) + 1))
    if not actual:
        return False
    pattern = ".*".join(re.escape(part) for part in head.split("..."))
    return re.fullmatch(pattern, actual[0]) is not None and matches(rest, actual[1:])


class Shell:
    """One bash session; :meth:`run` returns a command's output and exit status."""

    def __init__(self, directory: Path) -> None:
        bin_dir = Path(sys.executable).parent
        env = {"PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
               "HOME": str(directory), "LANG": "C.UTF-8", "TERM": "dumb",
               "COLUMNS": "100"}
        command = ["bash", "--noprofile", "--norc"]
        if _own_network_namespace():
            command = ["unshare", "--net", "bash", "-c",
                       "ip link set lo up && exec bash --noprofile --norc"]
        self.process = subprocess.Popen(command, cwd=directory, env=env, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, bufsize=1)

    def run(self, command: str) -> tuple[list[str], int]:
        assert self.process.stdin is not None and self.process.stdout is not None
        marker = f"__runbook_{uuid.uuid4().hex}__"
        self.process.stdin.write(f"{command}\n__status=$?; echo; echo {marker} $__status\n")
        self.process.stdin.flush()
        lines: list[str] = []
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise AssertionError(f"the shell ended during {command!r}: {lines}")
            if line.startswith(marker):
                status = int(line.split()[1])
                break
            lines.append(line.rstrip("\n"))
        if lines and lines[-1] == "":  # the echo that ends a last line without newline
            lines.pop()
        return lines, status

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()


def _own_network_namespace() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = subprocess.run(["unshare", "--net", "ip", "link", "set", "lo", "up"],
                           capture_output=True)
    return probe.returncode == 0


def test_there_are_runbooks() -> None:
    names = {path.name for path in RUNBOOKS}
    assert {"RUNBOOK-START.md", "RUNBOOK-RECOVERY.md", "RUNBOOK-BACKUP.md",
            "RUNBOOK-UPGRADE.md"} <= names
    for path in RUNBOOKS:
        assert steps_of(path), f"{path.name} has no console block"


def test_matching_rules() -> None:
    assert matches(["a", "...", "d"], ["a", "b", "c", "d"])
    assert matches(["PONG ... ms"], ["PONG 0.31 ms"])
    assert not matches(["a"], ["a", "b"])
    assert not matches(["PONG ... ms"], ["PING 1 ms"])
    assert not matches([], ["anything"]) and matches(["..."], [])


@pytest.mark.parametrize("path", RUNBOOKS, ids=[p.stem for p in RUNBOOKS])
def test_runbook(path: Path, tmp_path: Path) -> None:
    if path.name in SETUP:
        SETUP[path.name](tmp_path)
    shell = Shell(tmp_path)
    try:
        for step in steps_of(path):
            output, status = shell.run(step.command)
            where = f"{path.name}:{step.line}: $ {step.command}"
            assert status == step.exit_status, \
                f"{where}\nexit status {status}, expected {step.exit_status}\n" + \
                "\n".join(output)
            assert not step.output or matches(step.output, output), \
                f"{where}\nexpected:\n" + "\n".join(step.output) + "\ngot:\n" + \
                "\n".join(output)
    finally:
        # A runbook that failed half-way may leave its server running.
        with contextlib.suppress(AssertionError, OSError):
            shell.run("for p in *.pid; do [ -f \"$p\" ] && kill \"$(cat \"$p\")\"; done; true")
        shell.close()
