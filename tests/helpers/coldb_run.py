"""Running the installed ``coldb`` console script as a subprocess, for the CLI
tests: its output, its exit status and its one-line error."""

import os
import subprocess
import sys
from pathlib import Path

COLDB = str(Path(sys.executable).parent / "coldb")


def coldb(*args: str | Path, data_dir: Path | None = None, stdin: bytes | None = None,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run ``coldb args`` (with ``--data-dir`` first if given); never a traceback."""
    argv = [COLDB] + (["--data-dir", str(data_dir)] if data_dir is not None else [])
    environment = {k: v for k, v in os.environ.items() if k != "COLIBRI_DATA_DIR"}
    environment.update(env or {})
    result = subprocess.run(argv + [str(a) for a in args], input=stdin, capture_output=True,
                            env=environment, timeout=120)
    assert b"Traceback" not in result.stderr, result.stderr.decode()
    return result


def ok(result: subprocess.CompletedProcess[bytes]) -> str:
    """Standard output of a command that must have succeeded."""
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def error(result: subprocess.CompletedProcess[bytes], status: int) -> str:
    """The one-line reason of a command that must have failed with ``status``."""
    assert result.returncode == status, (result.returncode, result.stderr.decode())
    lines = result.stderr.decode().splitlines()
    assert lines[-1].startswith("coldb: error: "), lines
    if status != 2:  # usage errors show the usage line first, as argparse does
        assert len(lines) == 1, lines
    return lines[-1]
