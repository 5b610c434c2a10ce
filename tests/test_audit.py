"""The policy of ``make audit`` (``scripts/audit.py``): how a package's licence string
is read against ``audit/allowed-licences.txt``, that copyleft licences are refused,
and that every documented exception carries a reason. (``make test`` runs the audit
itself; these tests pin the rules it applies.)"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

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
