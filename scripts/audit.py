"""``make audit``: the release's security and licence gate, in three checks.

1. **Vulnerabilities**: ``pip-audit`` of the environment this interpreter runs in (the
   project's ``.venv``: colibri-mm's dependencies and the dev tools), against PyPI's
   vulnerability service. Any known vulnerability fails, unless ``audit/allowlist.txt``
   names it with a reason (the service gives no severity, so none is waved through as
   "low"). A dependency the service could not answer for was *not* audited: when it
   is unreachable (no network, or an index mirror without the per-release JSON API)
   the check says so and fails; ``AUDIT_ALLOW_UNREACHABLE=1`` (what ``make test``
   sets) turns that into a loud "NOT CHECKED" that does not fail, and it never
   reports an unaudited package as clean.
2. **Code**: ``bandit`` over ``colibri_mm`` and ``kernels`` (the installed
   ``colibri_mm.kernels``): no high-severity finding; every ``# nosec`` must name the
   test it silences and give a reason (``# nosec B603: argv is fixed``).
3. **Licences**: ``pip-licenses`` over every installed package: each licence must be
   in ``audit/allowed-licences.txt`` (compatible with shipping colibri-mm under MIT)
   or the package named in ``audit/allowlist.txt`` with a reason.

Prints a summary table; exit status 0 when every check passed, 1 otherwise.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ALLOWLIST = ROOT / "audit" / "allowlist.txt"
ALLOWED_LICENCES = ROOT / "audit" / "allowed-licences.txt"
CODE_DIRS = ("colibri_mm", "kernels")
OWN_PACKAGE = "colibri-mm"
NOSEC = re.compile(r"#\s*nosec\b(?P<rest>.*)")
DOCUMENTED_NOSEC = re.compile(r"\s+B\d{3}(,\s*B\d{3})*\s*:\s*\S")
TOOL_TIMEOUT = 300
"""Seconds one tool may run: pip-audit asks PyPI once per package, and a network that
drops packets rather than refusing them would otherwise hold CI for long."""


@dataclass
class Outcome:
    """The result of one check: ``PASS``, ``FAIL`` or ``NOT CHECKED``, and why."""

    check: str
    status: str
    summary: str
    details: list[str] = field(default_factory=list)


@dataclass
class Allowlist:
    """The documented exceptions: vulnerability ids and packages, each with its reason."""

    vulnerabilities: dict[str, str]
    licences: dict[str, str]

    @classmethod
    def read(cls, path: Path) -> Allowlist:
        """Parse ``path``; a line without a reason or of an unknown kind is an error."""
        entries: dict[str, dict[str, str]] = {"vulnerability": {}, "licence": {}}
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            match = re.fullmatch(r"(\w+)\s+(\S+?)\s*:\s*(\S.*)", line.strip())
            if match is None or match[1] not in entries:
                raise SystemExit(f"{path}:{number}: expected 'vulnerability ID: reason' or "
                                 f"'licence PACKAGE: reason', got {line!r}")
            entries[match[1]][normalized(match[2])] = match[3]
        return cls(entries["vulnerability"], entries["licence"])


def normalized(name: str) -> str:
    """A package name or vulnerability id compared case- and separator-insensitively."""
    return re.sub(r"[-_.]+", "-", name).lower()


def run_json(args: list[str]) -> object:
    """Run a tool (``python -m ...``) and parse its standard output as JSON; raise
    ``ValueError`` with its output when that is not JSON (the tool failed) or when it
    takes longer than :data:`TOOL_TIMEOUT` (a network that drops packets)."""
    try:
        result = subprocess.run([sys.executable, "-m", *args], capture_output=True,
                                text=True, check=False, timeout=TOOL_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise ValueError(f"{args[0]} did not finish within {TOOL_TIMEOUT} s") from None
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise ValueError(" / ".join(tail) or f"exit status {result.returncode}") from None


def check_vulnerabilities(allowlist: Allowlist, allow_unreachable: bool) -> Outcome:
    """pip-audit of this environment; unaudited packages are never counted as clean."""
    check = "vulnerabilities (pip-audit)"
    not_checked = "NOT CHECKED" if allow_unreachable else "FAIL"
    try:
        report = run_json(["pip_audit", "--format", "json", "--progress-spinner", "off",
                           "--skip-editable", "--timeout", "10"])
    except ValueError as e:
        return Outcome(check, not_checked, "pip-audit could not reach its vulnerability "
                       "service: NOTHING WAS AUDITED", [str(e)])
    assert isinstance(report, dict)
    dependencies = report["dependencies"]
    skipped = [d for d in dependencies if "skip_reason" in d]
    found = [(d["name"], d["version"], v) for d in dependencies for v in d.get("vulns", [])]
    details = []
    failed = False
    for name, version, vuln in found:
        ids = [vuln["id"], *vuln.get("aliases", [])]
        reason = next((allowlist.vulnerabilities[normalized(i)] for i in ids
                       if normalized(i) in allowlist.vulnerabilities), None)
        fixes = ", ".join(vuln.get("fix_versions", [])) or "none yet"
        if reason is None:
            failed = True
            details.append(f"{name} {version}: {' / '.join(ids)} (fixed in {fixes})")
        else:
            details.append(f"{name} {version}: {vuln['id']} accepted: {reason}")
    audited = len(dependencies) - len(skipped)
    if skipped:
        details.append(f"not audited ({len(skipped)}): "
                       + ", ".join(d["name"] for d in skipped[:8])
                       + (", ..." if len(skipped) > 8 else "")
                       + f" -- {skipped[0]['skip_reason']}")
    if failed:
        return Outcome(check, "FAIL", f"known vulnerabilities not in {ALLOWLIST.name}", details)
    if skipped:
        why = ("the vulnerability service could not be reached" if audited == 0
               else "the vulnerability service did not answer for every package")
        return Outcome(check, not_checked, f"{why}: {len(skipped)} of {len(dependencies)} "
                       "packages NOT AUDITED", details)
    return Outcome(check, "PASS", f"{audited} packages audited, no known vulnerability"
                   + (f" beyond {len(found)} documented" if found else ""), details)


def undocumented_nosec() -> Iterator[str]:
    """``file:line: comment`` of every ``# nosec`` in the scanned code that does not
    name the tests it silences and a reason."""
    for directory in CODE_DIRS:
        for path in sorted((ROOT / directory).rglob("*.py")):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                match = NOSEC.search(line)
                if match and not DOCUMENTED_NOSEC.match(match["rest"]):
                    yield (f"{path.relative_to(ROOT)}:{number}: {match[0]!r} needs the test "
                           "id and a reason ('# nosec B603: why')")


def check_code() -> Outcome:
    """bandit: no high-severity finding, and every ``# nosec`` documented."""
    check = "code (bandit)"
    try:
        report = run_json(["bandit", "-r", *CODE_DIRS, "-q", "-f", "json"])
    except ValueError as e:
        return Outcome(check, "FAIL", "bandit did not run", [str(e)])
    assert isinstance(report, dict)
    results = report["results"]
    high = [r for r in results if r["issue_severity"] == "HIGH"]
    details = [f"{r['filename']}:{r['line_number']}: {r['test_id']} {r['issue_text']}"
               for r in high]
    undocumented = list(undocumented_nosec())
    details += undocumented + [f"bandit error: {e}" for e in report["errors"]]
    counts = {s: sum(r["issue_severity"] == s for r in results) for s in ("MEDIUM", "LOW")}
    summary = (f"{len(high)} high-severity findings, {len(undocumented)} undocumented "
               f"# nosec ({counts['MEDIUM']} medium and {counts['LOW']} low findings "
               "do not gate)")
    return Outcome(check, "FAIL" if details else "PASS", summary, details)


def licence_terms(licence: str) -> list[list[str]]:
    """The ways a licence string can be satisfied: alternatives (``OR``), each a list
    of licences that must all be allowed (``AND``; several classifiers, ``;``).
    An SPDX expression with parentheses is read conservatively: every licence in it."""
    if ";" in licence:
        return [[part.strip() for part in licence.split(";")]]
    if not re.search(r"\s(AND|OR)\s", licence):
        return [[licence.strip()]]
    if "(" in licence:
        return [[t.strip() for t in re.split(r"\s+(?:AND|OR)\s+|[()]", licence) if t.strip()]]
    return [[t.strip() for t in alternative.split(" AND ")]
            for alternative in licence.split(" OR ")]


def check_licences(allowlist: Allowlist) -> Outcome:
    """pip-licenses of every installed package against the allowed list."""
    check = "licences (pip-licenses)"
    allowed = {line.strip() for line in ALLOWED_LICENCES.read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    try:
        packages = run_json(["piplicenses", "--from=mixed", "--with-system", "--format=json"])
    except ValueError as e:
        return Outcome(check, "FAIL", "pip-licenses did not run", [str(e)])
    assert isinstance(packages, list)
    details = []
    refused = accepted = 0
    seen = set()
    for package in packages:
        name, licence = normalized(package["Name"]), package["License"]
        if name == OWN_PACKAGE or name in seen:
            continue
        seen.add(name)
        if any(all(t in allowed for t in terms) for terms in licence_terms(licence)):
            continue
        if name in allowlist.licences:
            accepted += 1
            details.append(f"{name}: {licence}: accepted: {allowlist.licences[name]}")
        else:
            refused += 1
            details.append(f"{name} {package['Version']}: {licence!r} is not allowed "
                           f"({ALLOWED_LICENCES.relative_to(ROOT)})")
    stale = sorted(set(allowlist.licences) - seen)
    details += [f"stale entry in {ALLOWLIST.name}: licence {name} (not installed)"
                for name in stale]
    summary = (f"{len(seen)} packages, {refused} with a licence incompatible with MIT, "
               f"{accepted} documented exceptions")
    return Outcome(check, "FAIL" if refused else "PASS", summary, details)


def main() -> int:
    """Run the three checks, print each one's details and a summary table."""
    allowlist = Allowlist.read(ALLOWLIST)
    allow_unreachable = os.environ.get("AUDIT_ALLOW_UNREACHABLE") == "1"
    outcomes = [check_vulnerabilities(allowlist, allow_unreachable), check_code(),
                check_licences(allowlist)]
    for outcome in outcomes:
        print(f"{outcome.check}: {outcome.status}: {outcome.summary}")
        for line in outcome.details:
            print(f"    {line}")
    print("\naudit summary")
    for outcome in outcomes:
        print(f"  {outcome.check:<28} {outcome.status:<12} {outcome.summary}")
    if any(o.status == "NOT CHECKED" for o in outcomes):
        print("\n!!! WARNING: the vulnerability scan was NOT done (AUDIT_ALLOW_UNREACHABLE=1); "
              "run `make audit` where PyPI's vulnerability service is reachable before a "
              "release !!!", file=sys.stderr)
    return 1 if any(o.status == "FAIL" for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
