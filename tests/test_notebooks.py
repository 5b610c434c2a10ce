"""Every notebook in ``notebooks/`` runs from top to bottom without an error.

Each notebook is executed by nbclient in a ``python3`` kernel that runs this very
interpreter (the project's virtualenv, whatever other Python kernels the machine
has), in a temporary working directory, with a timeout per cell. The committed
notebooks carry no outputs: that is checked too.

``COLIBRI_ANALYTICS_ROWS`` sets the size of the analytics notebook's data, and
``COLIBRI_MONITORING_SECONDS`` how long the monitoring notebook loads its server; the
test uses small sizes unless they are already set (``COLIBRI_ANALYTICS_ROWS=2000000``
and ``COLIBRI_MONITORING_SECONDS=20`` run the notebooks' own defaults).
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
CELL_TIMEOUT = 300
"""Seconds any one cell may take (the slowest, the analytics import, takes a few)."""
TEST_ANALYTICS_ROWS = "200000"
TEST_MONITORING_SECONDS = "5"
PROBE = "import os, sys; print(sys.executable); print(os.getcwd())"
"""A cell appended (in memory only) to check which interpreter ran the notebook, and
where."""
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def test_the_notebooks_are_there() -> None:
    assert {path.name for path in NOTEBOOKS} >= \
        {"quickstart.ipynb", "analytics.ipynb", "monitoring.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_committed_without_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == "python3"
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: cell {index} has outputs"
            assert cell.execution_count is None, f"{path.name}: cell {index} was executed"


def _python3_kernel_here(directory: Path) -> Path:
    """A Jupyter data directory whose ``python3`` kernel is this interpreter."""
    spec = directory / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (colibri-mm tests)",
        "language": "python",
    }))
    return directory


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    jupyter = tmp_path / "jupyter"
    monkeypatch.setenv("JUPYTER_PATH", str(_python3_kernel_here(jupyter / "data")))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(jupyter / "runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(jupyter / "ipython"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("COLIBRI_ANALYTICS_ROWS",
                       os.environ.get("COLIBRI_ANALYTICS_ROWS", TEST_ANALYTICS_ROWS))
    monkeypatch.setenv("COLIBRI_MONITORING_SECONDS",
                       os.environ.get("COLIBRI_MONITORING_SECONDS", TEST_MONITORING_SECONDS))
    workdir = tmp_path / "work"
    workdir.mkdir()
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))  # what a failed notebook leaves

    notebook = nbformat.read(path, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(PROBE))
    client = NotebookClient(notebook, kernel_name="python3", timeout=CELL_TIMEOUT,
                            resources={"metadata": {"path": str(workdir)}})
    failure = None
    try:
        client.execute()
    except CellExecutionError as error:
        failure = ANSI_ESCAPE.sub("", str(error))
    if failure is not None:
        pytest.fail(f"{path.name} failed:\n{failure}", pytrace=False)

    probe = "".join(output.get("text", "") for output in notebook.cells[-1].outputs)
    assert probe.splitlines() == [sys.executable, str(workdir.resolve())], \
        "the notebook ran in another interpreter or directory than intended"
