"""The policy of ``make audit`` (``scripts/audit.py``): how a package's licence string
is read against ``audit/allowed-licences.txt``, that copyleft licences are refused,
that every documented exception carries a reason, and how pip-audit's report is
judged and completed from PyPI's per-project documents (served here by a local HTTP
server standing in for an index that answers only those). (``make test`` runs the
audit itself; these tests pin the rules it applies.)"""

from __future__ import annotations

import http.server
import importlib.util
import json
import sys
import threading
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_audit() -> ModuleType:
    spec = importlib.util.spec_from_file_location("audit_script", ROOT / "scripts" / "audit.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


audit = load_audit()
ALLOWED = {line.strip() for line in audit.ALLOWED_LICENCES.read_text().splitlines()
           if line.strip() and not line.startswith("#")}


def allowed(licence: str) -> bool:
    return any(all(t in ALLOWED for t in terms) for terms in audit.licence_terms(licence))


@pytest.mark.parametrize("licence", [
    "MIT", "MIT License", "BSD-3-Clause AND 0BSD AND MIT AND Zlib AND CC0-1.0",
    "Apache-2.0 OR BSD-2-Clause", "BSD-2-Clause AND Apache-2.0 WITH LLVM-exception",
    "Apache Software License; MIT License", "Mozilla Public License 2.0 (MPL 2.0)",
    "MIT OR GPL-3.0-only",
])
def test_permissive_licences_pass(licence: str) -> None:
    assert allowed(licence)


@pytest.mark.parametrize("licence", [
    "GPL-3.0-only", "AGPL-3.0-or-later", "GNU General Public License v3 (GPLv3)",
    "GNU Lesser General Public License v2 or later (LGPLv2+)", "MIT AND GPL-2.0-only",
    "MIT License; GNU General Public License v2 (GPLv2)", "(MIT OR GPL-3.0) AND BSD-3-Clause",
    "UNKNOWN", "SSPL-1.0", "CC-BY-NC-4.0",
])
def test_copyleft_and_unknown_licences_fail(licence: str) -> None:
    assert not allowed(licence)


def test_the_allowlist_needs_a_reason_for_each_entry(tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text("# comment\nlicence Some_Package: used unmodified\n"
                    "vulnerability PYSEC-2024-1: not reachable from colibri-mm\n")
    parsed = audit.Allowlist.read(good)
    assert parsed.licences == {"some-package": "used unmodified"}
    assert parsed.vulnerabilities == {"pysec-2024-1": "not reachable from colibri-mm"}
    for line in ("licence crc32c", "licence crc32c:", "waiver crc32c: why"):
        bad = tmp_path / "bad.txt"
        bad.write_text(line + "\n")
        with pytest.raises(SystemExit, match=r"bad\.txt:1"):
            audit.Allowlist.read(bad)


def test_the_project_allowlist_parses() -> None:
    assert "crc32c" in audit.Allowlist.read(audit.ALLOWLIST).licences


# -- vulnerabilities -------------------------------------------------------------------

NUMPY = metadata.version("numpy")
PYARROW = metadata.version("pyarrow")
VULNERABILITY = {"id": "PYSEC-2099-1", "aliases": ["CVE-2099-0001"], "fixed_in": ["99.0"],
                 "details": "...", "withdrawn": None}
WITHDRAWN = {"id": "GHSA-xxxx-yyyy-zzzz", "aliases": [], "fixed_in": [],
             "withdrawn": "2099-01-01T00:00:00Z"}


class Index(http.server.BaseHTTPRequestHandler):
    """``/pypi/<project>/json`` from :attr:`projects`; anything else is a 404."""

    projects: ClassVar[dict[str, dict[str, Any]]] = {}

    def do_GET(self) -> None:
        parts = self.path.strip("/").split("/")
        document = self.projects.get(parts[1]) if len(parts) == 3 else None
        if document is None:
            self.send_error(404)
            return
        body = json.dumps(document).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def index(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[Index]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Index)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(audit, "PYPI_JSON_URL", f"http://127.0.0.1:{server.server_port}/pypi")
    Index.projects = {}
    try:
        yield Index
    finally:
        server.shutdown()
        server.server_close()


def project(latest: str, *vulnerabilities: dict[str, Any]) -> dict[str, Any]:
    return {"info": {"version": latest}, "vulnerabilities": list(vulnerabilities)}


def unanswered(name: str) -> dict[str, str]:
    """A dependency as pip-audit reports one its per-release query found nothing for."""
    return {"name": name, "skip_reason": "Dependency not found on PyPI and could not be "
                                         f"audited: {name} ({metadata.version(name)})"}


def judge(dependencies: list[dict[str, Any]], allowlist: Any = None) -> Any:
    allowlist = allowlist or audit.Allowlist({}, {})
    return audit.judge_vulnerabilities({"dependencies": dependencies, "fixes": []},
                                       allowlist, "FAIL")


def test_a_clean_report_passes_and_colibri_mm_itself_is_not_a_dependency() -> None:
    outcome = judge([{"name": "colibri-mm", "skip_reason": "distribution marked as editable"},
                     {"name": "numpy", "version": NUMPY, "vulns": []}])
    assert (outcome.status, outcome.summary) == (
        "PASS", "1 packages audited, no known vulnerability")


def test_a_known_vulnerability_fails_unless_documented(index: type[Index]) -> None:
    found = {"name": "numpy", "version": NUMPY,
             "vulns": [{"id": "PYSEC-2099-1", "aliases": ["CVE-2099-0001"],
                        "fix_versions": ["99.0"]}]}
    outcome = judge([found])
    assert outcome.status == "FAIL"
    assert outcome.details == [f"numpy {NUMPY}: PYSEC-2099-1 / CVE-2099-0001 (fixed in 99.0)"]
    documented = audit.Allowlist({"cve-2099-0001": "the parser is not used"}, {})
    outcome = judge([found], documented)
    assert outcome.status == "PASS" and "beyond 1 documented" in outcome.summary
    assert outcome.details == [f"numpy {NUMPY}: PYSEC-2099-1 accepted: the parser is not used"]


def test_packages_at_their_latest_release_are_audited_from_the_per_project_document(
        index: type[Index]) -> None:
    index.projects = {"numpy": project(NUMPY, WITHDRAWN),
                      "pyarrow": project(PYARROW + ".0", VULNERABILITY)}  # 1.0 is 1.0.0
    outcome = judge([unanswered("numpy"), unanswered("pyarrow")])
    assert outcome.status == "FAIL"
    assert outcome.details == [
        f"pyarrow {PYARROW}: PYSEC-2099-1 / CVE-2099-0001 (fixed in 99.0)",
        "2 of the 2 audited from PyPI's per-project document (installed version = latest "
        "release): the index did not answer pip-audit's per-release query"]
    index.projects["pyarrow"] = project(PYARROW)
    outcome = judge([unanswered("numpy"), unanswered("pyarrow")])
    assert (outcome.status, outcome.summary) == (
        "PASS", "2 packages audited, no known vulnerability")


def test_an_older_release_or_an_unanswered_project_is_named_as_not_audited(
        index: type[Index]) -> None:
    index.projects = {"numpy": project("999.0", VULNERABILITY)}
    outcome = judge([unanswered("numpy"), unanswered("pyarrow"),
                     {"name": "redis", "version": metadata.version("redis"), "vulns": []}])
    assert outcome.status == "FAIL"
    assert outcome.summary == ("the vulnerability service did not answer for every "
                               "package: 2 of 3 packages NOT AUDITED")
    assert outcome.details[0] == (f"not audited: numpy {NUMPY}: the index answers only for "
                                  "the latest release (999.0), not per release")
    assert outcome.details[1].startswith(f"not audited: pyarrow {PYARROW}: pip-audit: "
                                         "Dependency not found on PyPI")
    assert "HTTP Error 404" in outcome.details[1]
    lenient = audit.judge_vulnerabilities(
        {"dependencies": [unanswered("pyarrow")]}, audit.Allowlist({}, {}), "NOT CHECKED")
    assert lenient.status == "NOT CHECKED"
    assert lenient.summary.startswith("the vulnerability service could not be reached")


def test_an_index_that_does_not_answer_is_given_up_after_one_round(
        monkeypatch: pytest.MonkeyPatch) -> None:
    requests: list[str] = []

    class Silent(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            self.close_connection = True  # hangs up without a reply

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Silent)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(audit, "PYPI_JSON_URL", f"http://127.0.0.1:{server.server_port}/pypi")
    names = sorted({d.metadata["Name"] for d in metadata.distributions()} - {"colibri-mm"})[:40]
    try:
        outcome = judge([unanswered(name) for name in names])
    finally:
        server.shutdown()
        server.server_close()
    assert outcome.status == "FAIL" and f"{len(names)} of {len(names)}" in outcome.summary
    assert 1 <= len(requests) <= audit.PYPI_REQUESTS
