"""``make audit``: the release's security and licence gate, in three checks.

1. **Vulnerabilities**: ``pip-audit`` of the environment this interpreter runs in (the
   project's ``.venv``: colibri-mm's dependencies and the dev tools), against PyPI's
   vulnerability service. Any known vulnerability fails, unless ``audit/allowlist.txt``
   names it with a reason (the service gives no severity, so none is waved through as
   "low"). pip-audit asks PyPI's per-release JSON API (``/pypi/<project>/<version>/
   json``); where an index or proxy answers only the per-project one
   (``/pypi/<project>/json``), a package whose installed version is the project's
   latest release is audited from that document's ``vulnerabilities``, which PyPI
   defines as those of the latest release (``AUDIT_PYPI_JSON_URL`` points this at a
   mirror). A dependency nobody could answer for was *not* audited: the check names
   it and fails; ``AUDIT_ALLOW_UNREACHABLE=1`` (what ``make test`` sets) turns that
   into a loud "NOT CHECKED" that does not fail, and it never reports an unaudited
   package as clean. colibri-mm itself (installed editable) is not a dependency.
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
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parent.parent
ALLOWLIST = ROOT / "audit" / "allowlist.txt"
ALLOWED_LICENCES = ROOT / "audit" / "allowed-licences.txt"
CODE_DIRS = ("colibri_mm", "kernels")
OWN_PACKAGE = "colibri-mm"
NOSEC = re.compile(r"#\s*nosec\b(?P<rest>.*)")
DOCUMENTED_NOSEC = re.compile(r"\s+B\d{3}(,\s*B\d{3})*\s*:\s*\S")
PYPI_JSON_URL = os.environ.get("AUDIT_PYPI_JSON_URL", "https://pypi.org/pypi")
"""PyPI's JSON API: ``PYPI_JSON_URL/<project>/json`` is the per-project document."""
PYPI_TIMEOUT = 10
"""Seconds one per-project request may take (pip-audit's own is the same)."""
PYPI_REQUESTS = 8
"""Per-project documents fetched at once."""
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
    return judge_vulnerabilities(report, allowlist, not_checked)


def judge_vulnerabilities(report: dict[str, Any], allowlist: Allowlist,
                          not_checked: str) -> Outcome:
    """The outcome of pip-audit's JSON ``report``, completed by
    :func:`audit_latest_releases`; ``not_checked`` is the status of a report that
    leaves packages unaudited (``FAIL`` or ``NOT CHECKED``)."""
    check = "vulnerabilities (pip-audit)"
    dependencies = [d for d in report["dependencies"] if normalized(d["name"]) != OWN_PACKAGE]
    answered_by_pip_audit = sum("skip_reason" not in d for d in dependencies)
    dependencies = audit_latest_releases(dependencies)
    skipped = [d for d in dependencies if "skip_reason" in d]
    from_latest = len(dependencies) - len(skipped) - answered_by_pip_audit
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
    if from_latest:
        details.append(f"{from_latest} of the {audited} audited from PyPI's per-project "
                       "document (installed version = latest release): the index did "
                       "not answer pip-audit's per-release query")
    details += [f"not audited: {d['skip_reason']}" for d in skipped]
    if failed:
        return Outcome(check, "FAIL", f"known vulnerabilities not in {ALLOWLIST.name}", details)
    if skipped:
        why = ("the vulnerability service could not be reached" if audited == 0
               else "the vulnerability service did not answer for every package")
        return Outcome(check, not_checked, f"{why}: {len(skipped)} of {len(dependencies)} "
                       "packages NOT AUDITED", details)
    return Outcome(check, "PASS", f"{audited} packages audited, no known vulnerability"
                   + (f" beyond {len(found)} documented" if found else ""), details)


def audit_latest_releases(dependencies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``dependencies`` (pip-audit's report), where each one pip-audit could not audit
    is audited from PyPI's per-project document if its installed version is the
    latest release, or keeps a ``skip_reason`` that says why not."""
    unreachable = threading.Event()
    with ThreadPoolExecutor(PYPI_REQUESTS) as pool:
        return list(pool.map(lambda d: audit_latest_release(d, unreachable), dependencies))


def audit_latest_release(dependency: dict[str, Any],
                         unreachable: threading.Event) -> dict[str, Any]:
    """One dependency of :func:`audit_latest_releases`. Once one request finds the
    index unreachable (no answer at all, rather than an HTTP error), ``unreachable``
    is set and no more are sent: a network that drops packets costs one timeout."""
    if "skip_reason" not in dependency or unreachable.is_set():
        return dependency
    name = dependency["name"]
    try:
        installed = dependency.get("version") or metadata.version(name)
    except metadata.PackageNotFoundError:
        return dependency
    url = f"{PYPI_JSON_URL}/{urllib.parse.quote(name)}/json"
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise SystemExit(f"AUDIT_PYPI_JSON_URL must be an http(s) URL, got {PYPI_JSON_URL!r}")
    try:
        with urllib.request.urlopen(url, timeout=PYPI_TIMEOUT) as response:
            project = json.load(response)
        latest = project["info"]["version"]
        vulnerabilities = project["vulnerabilities"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        if isinstance(e, OSError) and not isinstance(e, urllib.error.HTTPError):
            unreachable.set()
        return {"name": name, "version": installed,
                "skip_reason": f"{name} {installed}: pip-audit: {dependency['skip_reason']}; "
                               f"{url}: {type(e).__name__}: {e}"}
    if not same_version(installed, latest):
        return {"name": name, "version": installed,
                "skip_reason": f"{name} {installed}: the index answers only for the latest "
                               f"release ({latest}), not per release"}
    return {"name": name, "version": installed,
            "vulns": [{"id": v["id"], "aliases": v.get("aliases") or [],
                       "fix_versions": v.get("fixed_in") or []}
                      for v in vulnerabilities if not v.get("withdrawn")]}


def same_version(a: str, b: str) -> bool:
    """Whether two version strings name the same release (``1.0`` is ``1.0.0``)."""
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


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
        print("\n!!! WARNING: the vulnerability scan is NOT complete (AUDIT_ALLOW_UNREACHABLE=1): "
              "packages named above were not audited; run `make audit` where PyPI's "
              "vulnerability service is reachable before a release !!!", file=sys.stderr)
    return 1 if any(o.status == "FAIL" for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
