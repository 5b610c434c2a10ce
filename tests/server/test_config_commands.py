"""``coldb validate-config``, ``generate-config`` and ``hash-password``, in process
through ``colibri_mm.cli.main.main`` and as the installed ``coldb`` script."""

import io
import subprocess
import sys
from pathlib import Path

import pytest

from colibri_mm.cli.exit_codes import USAGE
from colibri_mm.cli.main import main
from colibri_mm.server.config import load_config
from colibri_mm.server.passwords import MIN_ITERATIONS, parse_hash, verify_password

COLDB = str(Path(sys.executable).parent / "coldb")
SAMPLE = Path(__file__).resolve().parents[2] / "colibridb.conf.json"


def test_validate_config_accepts_the_sample(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate-config", "--file", str(SAMPLE)]) == 0
    assert capsys.readouterr().out == "Configuration valid\n"


def test_validate_config_prints_every_problem(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"server": {"resp_port": 70000, "hots": "x"}, "logging": {"level": 1}}')
    assert main(["validate-config", "--file", str(path)]) == USAGE
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        f"{path}: server.resp_port: must be between 1 and 65535, got 70000",
        f"{path}: server.hots: unknown key (did you mean 'host'?)",
        f"{path}: logging.level: must be a string, got 1",
    ]
    assert captured.err == f"coldb: error: {path}: configuration invalid (3 problems)\n"


def test_validate_config_missing_file_and_syntax(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate-config", "--file", str(tmp_path / "absent.json")]) == USAGE
    assert capsys.readouterr().out == f"{tmp_path / 'absent.json'}: no such file\n"
    path = tmp_path / "broken.json"
    path.write_text('{\n  "data_dir": "x",\n}\n')
    assert main(["validate-config", "--file", str(path)]) == USAGE
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{path}: line 3, column 1: invalid JSON: ")
    assert captured.err.endswith("configuration invalid (1 problem)\n")


def test_validate_config_needs_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate-config"]) == USAGE
    assert "--file" in capsys.readouterr().err


def test_generate_config_round_trips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate-config"]) == 0
    path = tmp_path / "generated.json"
    path.write_text(capsys.readouterr().out)
    assert "// " in path.read_text()
    assert main(["validate-config", "--file", str(path)]) == 0
    assert load_config(path) == load_config(SAMPLE)


def test_hash_password_from_stdin(monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("s3cret pass\r\nsecond line\n"))
    assert main(["hash-password", "--stdin", "--iterations", str(MIN_ITERATIONS)]) == 0
    encoded = capsys.readouterr().out.strip()
    assert parse_hash(encoded).iterations == MIN_ITERATIONS
    assert verify_password("s3cret pass", encoded)


def test_hash_password_from_the_terminal(monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    prompts: list[str] = []

    def typed(prompt: str) -> str:
        prompts.append(prompt)
        return "typed"

    monkeypatch.setattr("getpass.getpass", typed)
    assert main(["hash-password", "--iterations", str(MIN_ITERATIONS)]) == 0
    assert prompts == ["Password: ", "Password again: "]
    assert verify_password("typed", capsys.readouterr().out.strip())


def test_hash_password_refusals(monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    answers = iter(["one", "two"])
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
    assert main(["hash-password"]) == USAGE
    assert capsys.readouterr().err.endswith("coldb: error: the passwords differ\n")
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n"))
    assert main(["hash-password", "--stdin"]) == USAGE
    assert capsys.readouterr().err.endswith("coldb: error: the password is empty\n")
    monkeypatch.setattr(sys, "stdin", io.StringIO("pw\n"))
    assert main(["hash-password", "--stdin", "--iterations", "10"]) == USAGE
    assert "iterations must be between" in capsys.readouterr().err


def test_hash_password_takes_no_password_argument(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hash-password", "hunter2"]) == USAGE
    assert "unrecognized arguments" in capsys.readouterr().err


def test_installed_script(tmp_path: Path) -> None:
    def coldb(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([COLDB, *args], input=stdin, capture_output=True, text=True,
                              timeout=60)

    generated = coldb("generate-config")
    assert generated.returncode == 0, generated.stderr
    hashed = coldb("hash-password", "--stdin", stdin="pw\n")
    assert hashed.returncode == 0, hashed.stderr
    path = tmp_path / "server.json"
    path.write_text(generated.stdout.replace('"password_hash": null',
                                             f'"password_hash": "{hashed.stdout.strip()}"'))
    valid = coldb("validate-config", "--file", str(path))
    assert (valid.returncode, valid.stdout) == (0, "Configuration valid\n")
    assert verify_password("pw", load_config(path).security.password_hash or "")
    path.write_text('{"server": {"http_port": 7379}}')
    invalid = coldb("validate-config", "--file", str(path))
    assert invalid.returncode == USAGE
    assert invalid.stdout == \
        f"{path}: server.http_port: must differ from server.resp_port (both 7379)\n"
    assert "Traceback" not in invalid.stderr
