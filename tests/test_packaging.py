"""The installed package: layout, console scripts, and what must not be installed."""

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import colibri_mm
import colibri_mm.kernels

ROOT = Path(__file__).resolve().parents[1]


def test_kernels_are_a_subpackage_of_colibri_mm() -> None:
    assert Path(colibri_mm.kernels.__file__).parent == ROOT / "kernels"
    for name in ("checksum", "merge", "search", "walcodec"):
        assert importlib.util.find_spec(f"colibri_mm.kernels.{name}") is not None
        assert importlib.util.find_spec(f"colibri_mm.kernels.{name}_reference") is not None


def test_no_top_level_kernels_module_is_installed() -> None:
    code = ("import importlib.util, sys; sys.path = [p for p in sys.path if p not in ('', '.')];"
            "print(importlib.util.find_spec('kernels'))")
    out = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "None"


def installed_sources() -> set[str]:
    """Where each module of the source tree belongs in an installed colibri_mm."""
    sources = {f"colibri_mm/{p.relative_to(ROOT / 'colibri_mm')}"
               for p in (ROOT / "colibri_mm").rglob("*.py")}
    return sources | {f"colibri_mm/kernels/{p.relative_to(ROOT / 'kernels')}"
                      for p in (ROOT / "kernels").rglob("*.py")}


def test_wheel_holds_every_module_and_nothing_at_top_level(tmp_path: Path) -> None:
    # Built from a copy, so the work tree gets no build/ or egg-info; without build
    # isolation and without an index, so nothing is downloaded (setuptools comes with
    # the dev extras).
    source = tmp_path / "source"
    for name in ("colibri_mm", "kernels"):
        shutil.copytree(ROOT / name, source / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.nb[ic]"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--no-index", "--quiet", "-w", str(tmp_path / "dist"), str(source)],
                   capture_output=True, text=True, check=True)
    (wheel,) = (tmp_path / "dist").glob("colibri_mm-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert installed_sources() - names == set()
    assert "colibri_mm/py.typed" in names
    assert {name.split("/")[0] for name in names} == {
        "colibri_mm", f"colibri_mm-{colibri_mm.__version__}.dist-info"}


def script(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def test_coldb_version() -> None:
    out = subprocess.run([script("coldb"), "--version"], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == f"coldb {colibri_mm.__version__}"


def test_coldb_without_a_command_prints_usage_and_fails() -> None:
    out = subprocess.run([script("coldb")], capture_output=True, text=True)
    assert out.returncode == 2
    assert "usage: coldb" in out.stderr


def test_coldb_server_script() -> None:
    version = subprocess.run([script("coldb-server"), "--version"], capture_output=True,
                             text=True, check=True)
    assert version.stdout.strip() == f"coldb-server {colibri_mm.__version__}"
    bad = subprocess.run([script("coldb-server"), "--config", "/nonexistent.json"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "/nonexistent.json" in bad.stderr


def test_demo_runs(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py")],
                         capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "decoded back: 100000 records, status OK" in out.stdout
    assert "status TRUNCATED" in out.stdout
