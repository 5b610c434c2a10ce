"""``scripts/deploy.sh``: a real deploy to staging in a copy of the work tree (so
``dist/`` and ``deploy/`` land in a temporary directory), with the tests skipped
(``DEPLOY_SKIP_TESTS=1``: this suite is what they are). Checks ``dist/`` (wheel,
sdist, checksums that verify, an SBOM), the release's own environment, the switch of
``current``, a failed smoke test that switches nothing, a second deploy and its
rollback, and the refusals (production without tests, nothing to roll back to)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow  # three deploys, each a fresh virtual environment


def work_tree_copy(destination: Path) -> Path:
    """The work tree as it is (tracked and untracked files, not the ignored ones) in
    ``destination``: what ``deploy.sh`` would build here, without touching it."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def deploy(repo: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``scripts/deploy.sh ARGS`` in ``repo`` with the tools of this interpreter."""
    return subprocess.run(
        ["bash", str(repo / "scripts" / "deploy.sh"), *args], cwd=repo, capture_output=True,
        text=True, timeout=900,
        env={**os.environ, "DEPLOY_SKIP_TESTS": "1", "DEPLOY_TOOLS_PYTHON": sys.executable,
             **env})


def current(repo: Path) -> str:
    return os.readlink(repo / "deploy" / "staging" / "current")


def check_dist(dist: Path) -> None:
    """Wheel, sdist, SBOM, and SHA256SUMS that verify all three."""
    wheels = list(dist.glob("colibri_mm-*-py3-none-any.whl"))
    sdists = list(dist.glob("colibri_mm-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1
    sums: dict[str, str] = {}
    for line in (dist / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ")
        sums[name] = digest
    assert set(sums) == {wheels[0].name, sdists[0].name, "sbom.cdx.json"}
    for name, digest in sums.items():
        assert hashlib.sha256((dist / name).read_bytes()).hexdigest() == digest, name
    sbom = json.loads((dist / "sbom.cdx.json").read_text())
    assert sbom["bomFormat"] == "CycloneDX"
    version = wheels[0].name.split("-")[1]
    root = sbom["metadata"]["component"]
    assert (root["name"], root["version"], root["type"]) == ("colibri-mm", version,
                                                             "application")
    assert root["purl"] == f"pkg:pypi/colibri-mm@{version}"
    assert root["licenses"][0]["license"]["id"] == "MIT"
    components = {c["bom-ref"]: c for c in sbom["components"]}
    [direct] = [d["dependsOn"] for d in sbom["dependencies"] if d["ref"] == root["bom-ref"]]
    assert {"numpy", "pyarrow", "redis", "hiredis", "numba"} <= {components[ref]["name"]
                                                                 for ref in direct}
    assert all(c.get("version") for c in components.values())


def check_release(release: Path, tmp_path: Path) -> None:
    """The release holds its artifacts, config, runbooks, and an environment that
    runs colibri-mm from itself, not from the work tree."""
    assert (release / "colibridb.conf.json").is_file()
    assert (release / "runbooks" / "README.md").is_file()
    assert (release / "dist" / "SHA256SUMS").is_file()
    assert "tests=SKIPPED" in (release / "RELEASE").read_text()
    program = ("import sys, colibri_mm as cm\n"
               "with cm.connect(sys.argv[1], create=True) as db:\n"
               "    db.kv.put('k', 'v')\n"
               "    assert db.kv.get('k') == b'v'\n"
               "print(cm.__file__)\n")
    used = subprocess.run([str(release / "venv" / "bin" / "python"), "-c", program,
                           str(tmp_path / "db")], cwd=tmp_path, capture_output=True,
                          text=True, check=True).stdout.strip()
    assert used.startswith(str(release / "venv")), used


def test_deploy_switch_failed_smoke_test_and_rollback(tmp_path: Path) -> None:
    repo = work_tree_copy(tmp_path / "repo")
    target = repo / "deploy" / "staging"

    refused = deploy(repo, "rollback", "staging")
    assert refused.returncode == 1 and "nothing to roll back to" in refused.stderr

    first = deploy(repo, "staging")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "WARNING: DEPLOY_SKIP_TESTS=1" in first.stderr
    for word in ("coldb ping: PONG", "coldb get deploy:smoke: smoke-", "coldb shutdown: stopped"):
        assert word in first.stdout
    check_dist(repo / "dist")
    release = target / current(repo)
    assert current(repo).startswith("releases/") and release.is_dir()
    check_release(release, tmp_path)
    alone = deploy(repo, "rollback", "staging")
    assert alone.returncode == 1 and "no previous release" in alone.stderr

    # A sample config the server refuses: the smoke test fails, nothing is switched.
    config = repo / "colibridb.conf.json"
    good_config = config.read_text()
    config.write_text(good_config.replace('"server": {', '"server": {"colour": "blue", ', 1))
    broken = deploy(repo, "staging")
    assert broken.returncode == 1
    assert "coldb-server did not start" in broken.stderr and "server.colour" in broken.stderr
    assert "DEPLOY FAILED at step 7/9" in broken.stderr
    assert current(repo) == release.relative_to(target).as_posix()
    assert not (target / "previous").exists()

    config.write_text(good_config)
    second = deploy(repo, "staging")
    assert second.returncode == 0, second.stdout + second.stderr
    assert current(repo) != release.relative_to(target).as_posix()
    assert os.readlink(target / "previous") == release.relative_to(target).as_posix()
    newer = current(repo)

    back = deploy(repo, "rollback", "staging")
    assert back.returncode == 0, back.stderr
    assert current(repo) == release.relative_to(target).as_posix()
    assert os.readlink(target / "previous") == newer
    assert [p.name for p in target.iterdir() if p.name.startswith("current")] == ["current"]


def test_refusals_and_usage(tmp_path: Path) -> None:
    repo = work_tree_copy(tmp_path / "repo")
    untested = deploy(repo, "production")
    assert untested.returncode == 1 and "refused for production" in untested.stderr
    assert not (repo / "dist").exists()
    assert not (repo / "deploy" / "production" / "current").exists()
    for args in ((), ("qa",), ("rollback",), ("rollback", "qa"), ("staging", "extra")):
        wrong = deploy(repo, *args)
        assert wrong.returncode == 2 and "usage:" in wrong.stderr, args
