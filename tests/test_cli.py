"""``coldb`` on a local database directory: the installed console script run as a
subprocess, its output, its exit statuses and its one-line errors; and the binary-safe
rendering of keys and values."""

import codecs
import json
import os
from pathlib import Path

import pytest
from coldb_run import coldb, error, ok
from hypothesis import given
from hypothesis import strategies as st

import colibri_mm as cm
from colibri_mm.cli.byte_text import render

RECORDS_OFFSET = 512
"""First record of a WAL segment (docs/FORMAT.md section 3)."""
FRAGMENT_HEADER = 16
"""Bytes before a WAL record's payload; a flipped payload byte fails the record's CRC."""


@pytest.fixture
def db_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "db"
    assert "created colibri-mm database" in ok(coldb("init", directory))
    return directory


def scan(db_dir: Path, *args: str) -> list[str]:
    return ok(coldb("scan", *args, data_dir=db_dir)).splitlines()


# -- init ------------------------------------------------------------------------------


def test_init_creates_a_database_once(tmp_path: Path) -> None:
    directory = tmp_path / "new" / "db"
    ok(coldb("init", directory))
    assert (directory / "colibri.meta").is_file()
    again = error(coldb("init", directory), 3)
    assert str(directory) in again and "already holds a colibri-mm database" in again


def test_init_refuses_a_non_empty_directory_and_a_file(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    assert "is not empty" in error(coldb("init", tmp_path), 3)
    assert not (tmp_path / "colibri.meta").exists()
    assert "not a directory" in error(coldb("init", tmp_path / "notes.txt"), 3)


def test_init_page_size(tmp_path: Path) -> None:
    ok(coldb("init", tmp_path / "small", "--page-size", "4096"))
    stats = json.loads(ok(coldb("stats", data_dir=tmp_path / "small")))
    assert stats["page_size"] == 4096
    message = error(coldb("init", tmp_path / "bad", "--page-size", "1000"), 2)
    assert "page_size must be a power of two" in message
    assert not (tmp_path / "bad").exists()


def test_init_takes_the_directory_from_data_dir_or_the_environment(tmp_path: Path) -> None:
    ok(coldb("init", data_dir=tmp_path / "a"))
    ok(coldb("init", env={"COLIBRI_DATA_DIR": str(tmp_path / "b")}))
    assert (tmp_path / "a" / "colibri.meta").exists()
    assert (tmp_path / "b" / "colibri.meta").exists()


# -- put, get, delete, scan ----------------------------------------------------------


def test_put_get_delete_round_trip(db_dir: Path) -> None:
    ok(coldb("put", "greeting", "héllo wörld", data_dir=db_dir))
    assert ok(coldb("get", "greeting", data_dir=db_dir)) == "héllo wörld\n"
    assert ok(coldb("get", "greeting", "--raw", data_dir=db_dir)) == "héllo wörld"
    ok(coldb("put", "greeting", "hi", data_dir=db_dir))
    assert ok(coldb("get", "greeting", data_dir=db_dir)) == "hi\n"
    assert ok(coldb("delete", "greeting", data_dir=db_dir)) == "1\n"
    gone = coldb("delete", "greeting", data_dir=db_dir)
    assert gone.returncode == 1 and gone.stdout == b"0\n" and gone.stderr == b""
    assert error(coldb("get", "greeting", data_dir=db_dir), 1) == \
        "coldb: error: key not found: greeting"


def test_get_of_a_missing_key_exits_1(db_dir: Path) -> None:
    result = coldb("get", "nothing", data_dir=db_dir)
    assert result.stdout == b""
    assert error(result, 1) == "coldb: error: key not found: nothing"


def test_scan_prefix_start_end_limit(db_dir: Path) -> None:
    keys = ["user:1", "user:2", "user:3", "order:1", "users", "zeta"]
    with cm.connect(db_dir) as db:
        db.kv.put_many(keys, [key.upper() for key in keys])
    assert scan(db_dir) == ["order:1\tORDER:1", "user:1\tUSER:1", "user:2\tUSER:2",
                            "user:3\tUSER:3", "users\tUSERS", "zeta\tZETA"]
    assert scan(db_dir, "--prefix", "user:") == ["user:1\tUSER:1", "user:2\tUSER:2",
                                                 "user:3\tUSER:3"]
    assert scan(db_dir, "--start", "user:2", "--end", "users") == ["user:2\tUSER:2",
                                                                   "user:3\tUSER:3"]
    assert scan(db_dir, "--start", "user:3") == ["user:3\tUSER:3", "users\tUSERS",
                                                 "zeta\tZETA"]
    assert scan(db_dir, "--end", "user:1") == ["order:1\tORDER:1"]
    assert scan(db_dir, "--prefix", "user", "--limit", "2") == ["user:1\tUSER:1",
                                                                "user:2\tUSER:2"]
    assert scan(db_dir, "--prefix", "user", "--start", "user:3", "--limit", "1") == \
        ["user:3\tUSER:3"]
    assert scan(db_dir, "--limit", "0") == []
    assert scan(db_dir, "--prefix", "nope") == []
    assert "--limit" in error(coldb("scan", "--limit", "-1", data_dir=db_dir), 2)


def test_binary_values_via_value_file_and_stdin(db_dir: Path, tmp_path: Path) -> None:
    blob = bytes(range(256)) * 3
    (tmp_path / "blob.bin").write_bytes(blob)
    ok(coldb("put", "blob", "--value-file", tmp_path / "blob.bin", data_dir=db_dir))
    assert coldb("get", "blob", "--raw", data_dir=db_dir).stdout == blob
    ok(coldb("put", "piped", "--value-file", "-", data_dir=db_dir, stdin=b"\xff\x00\n"))
    assert coldb("get", "piped", "--raw", data_dir=db_dir).stdout == b"\xff\x00\n"
    assert ok(coldb("get", "piped", data_dir=db_dir)) == "\\xff\\x00\\n\n"
    shown = ok(coldb("get", "blob", data_dir=db_dir)).removesuffix("\n")
    assert "\n" not in shown and "\t" not in shown
    assert codecs.escape_decode(shown.encode())[0] == blob


def test_scan_renders_tabs_newlines_and_bytes_escaped(db_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "value").write_bytes(b"a\tb\\c\x80")
    ok(coldb("put", "k\ney", "--value-file", tmp_path / "value", data_dir=db_dir))
    ok(coldb("put", "plain", "日本語 text", data_dir=db_dir))
    assert scan(db_dir) == ["k\\ney\ta\\tb\\\\c\\x80", "plain\t日本語 text"]


def test_put_needs_exactly_one_value(db_dir: Path, tmp_path: Path) -> None:
    assert "VALUE or --value-file" in error(coldb("put", "k", data_dir=db_dir), 2)
    (tmp_path / "v").write_bytes(b"x")
    both = coldb("put", "k", "v", "--value-file", tmp_path / "v", data_dir=db_dir)
    assert "VALUE or --value-file" in error(both, 2)
    missing = error(coldb("put", "k", "--value-file", tmp_path / "nope", data_dir=db_dir), 3)
    assert "cannot read --value-file" in missing and "nope" in missing


def test_data_dir_from_the_environment_or_after_the_command(db_dir: Path) -> None:
    env = {"COLIBRI_DATA_DIR": str(db_dir)}
    ok(coldb("put", "k", "from env", env=env))
    assert ok(coldb("get", "k", "--data-dir", db_dir)) == "from env\n"
    assert ok(coldb("get", "k", data_dir=db_dir, env={"COLIBRI_DATA_DIR": "/nowhere"})) \
        == "from env\n"


def test_no_database_directory_is_a_usage_error() -> None:
    message = error(coldb("get", "k"), 2)
    assert "--data-dir" in message and "COLIBRI_DATA_DIR" in message


@pytest.mark.parametrize("command", [["put", "k", "v"], ["get", "k"], ["delete", "k"],
                                     ["scan"], ["stats"], ["check"], ["recover"]])
def test_commands_on_a_missing_directory(tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "missing"
    message = error(coldb(*command, data_dir=missing), 3)
    assert f"{missing}: no such directory" in message and "coldb init" in message
    assert not missing.exists()


def test_commands_on_a_directory_that_is_not_a_database(tmp_path: Path) -> None:
    message = error(coldb("get", "k", data_dir=tmp_path), 3)
    assert "is not a colibri-mm database" in message and str(tmp_path) in message


def test_a_database_locked_by_another_process(db_dir: Path) -> None:
    ok(coldb("put", "k", "v", data_dir=db_dir))
    with cm.connect(db_dir) as db:
        message = error(coldb("put", "k", "w", data_dir=db_dir), 3)
        assert "locked" in message and f"process {os.getpid()}" in message
        assert error(coldb("delete", "k", data_dir=db_dir), 3) == message
        # Reads open the database read-only, so they work next to a writer.
        db.kv.put("k", "from the writer")
        assert ok(coldb("get", "k", data_dir=db_dir)) == "from the writer\n"
        assert scan(db_dir) == ["k\tfrom the writer"]
    ok(coldb("put", "k", "w", data_dir=db_dir))


# -- stats, check, recover ------------------------------------------------------------


def commit_in_wal_only(db_dir: Path, *pairs: tuple[str, str]) -> None:
    """Commit through the API without the checkpoint at close: the WAL holds the pairs."""
    with cm.connect(db_dir, checkpoint_on_close=False) as db:
        for key, value in pairs:
            db.kv.put(key, value)


def test_stats_is_json(db_dir: Path) -> None:
    ok(coldb("put", "a", "1", data_dir=db_dir))
    commit_in_wal_only(db_dir, ("b", "2"))
    stats = json.loads(ok(coldb("stats", data_dir=db_dir)))
    assert stats["path"] == str(db_dir)
    assert stats["kv_runs"] == 1  # "a", checkpointed when coldb put closed the database
    assert stats["kv_keys_in_memory"] == 1  # "b", replayed from the WAL
    assert stats["recovery_transactions"] == 1
    assert stats["recovery_dropped"] == []


def test_recover_and_check_a_healthy_database(db_dir: Path) -> None:
    commit_in_wal_only(db_dir, *[(f"k{i}", str(i)) for i in range(3)])
    recovered = ok(coldb("recover", data_dir=db_dir)).splitlines()
    assert recovered[0] == f"recovered: {db_dir} (recovery mode point_in_time)"
    assert "transactions: 3" in recovered and "dropped: nothing" in recovered
    # recover closed the database with a checkpoint: nothing is left to replay.
    report = json.loads(ok(coldb("recover", "--mode", "absolute", "--json",
                                 data_dir=db_dir)))
    assert report["mode"] == "absolute" and report["transactions"] == 0
    assert report["dropped"] == []
    checked = ok(coldb("check", data_dir=db_dir)).splitlines()
    assert checked[0] == f"check passed: {db_dir} (recovery mode absolute)"
    checked_json = json.loads(ok(coldb("check", "--json", data_dir=db_dir)))
    assert checked_json["runs"] == 1 and checked_json["run_entries"] == 3
    assert "invalid choice" in error(coldb("recover", "--mode", "best", data_dir=db_dir), 2)


def test_check_finds_a_flipped_byte_and_recover_repairs_it(db_dir: Path) -> None:
    commit_in_wal_only(db_dir, ("a", "1"), ("b", "2"))
    (segment,) = (db_dir / "wal").glob("*.wal")
    last_commit_starts = segment.stat().st_size
    commit_in_wal_only(db_dir, ("c", "3"))
    data = bytearray(segment.read_bytes())
    data[last_commit_starts + FRAGMENT_HEADER + 1] ^= 0x20  # in the payload of c's record
    segment.write_bytes(bytes(data))

    message = error(coldb("check", data_dir=db_dir), 1)
    assert message.startswith("coldb: error: check failed: ")
    assert str(segment) in message and f"offset {last_commit_starts}" in message
    assert error(coldb("recover", "--mode", "absolute", data_dir=db_dir), 3).count(
        str(segment)) >= 1

    # A read-only read skips the damaged tail, and says so.
    read = coldb("get", "c", data_dir=db_dir)
    assert read.returncode == 1
    warning = read.stderr.decode().splitlines()[0]
    assert warning.startswith("coldb: warning: ") and str(segment) in warning

    recovered = ok(coldb("recover", data_dir=db_dir)).splitlines()
    assert "transactions: 2" in recovered
    (dropped,) = [line for line in recovered if line.startswith("dropped: ")]
    assert str(segment) in dropped and "checksum" in dropped
    assert ok(coldb("check", data_dir=db_dir)).startswith("check passed")
    assert scan(db_dir) == ["a\t1", "b\t2"]


def test_check_finds_a_damaged_first_record(db_dir: Path) -> None:
    commit_in_wal_only(db_dir, ("a", "1"))
    (segment,) = (db_dir / "wal").glob("*.wal")
    with segment.open("r+b") as file:
        file.seek(RECORDS_OFFSET + FRAGMENT_HEADER)
        byte = file.read(1)
        file.seek(RECORDS_OFFSET + FRAGMENT_HEADER)
        file.write(bytes([byte[0] ^ 1]))
    message = error(coldb("check", "--json", data_dir=db_dir), 1)
    assert str(segment) in message


# -- usage ----------------------------------------------------------------------------


def test_help_documents_exit_statuses_and_rendering() -> None:
    top = ok(coldb("--help"))
    for line in ("0    success", "1    not found", "2    usage error",
                 "3    database or file error", "COLIBRI_DATA_DIR"):
        assert line in top
    assert "escaped like Python bytes literals" in ok(coldb("scan", "--help"))
    assert "escaped like Python bytes literals" in ok(coldb("get", "--help"))


def test_unknown_command_is_a_usage_error() -> None:
    assert "invalid choice" in error(coldb("frobnicate"), 2)


# -- rendering -----------------------------------------------------------------------


@pytest.mark.parametrize(("data", "shown"), [
    (b"", ""),
    (b"plain text", "plain text"),
    ("héllo 日本".encode(), "héllo 日本"),
    (b"tab\there", "tab\\there"),
    (b"new\nline\r", "new\\nline\\r"),
    (b"back\\slash", "back\\\\slash"),
    (b"\x00\x7f", "\\x00\\x7f"),
    (b"\xff\xfe", "\\xff\\xfe"),
    (b"ok\xe2\x82", "ok\\xe2\\x82"),  # a truncated UTF-8 sequence
    ("\u0085".encode(), "\\xc2\\x85"),  # a C1 control character
    ("\u2028".encode(), "\\xe2\\x80\\xa8"),  # LINE SEPARATOR is not printable
    (b"\xed\xa0\x80", "\\xed\\xa0\\x80"),  # an encoded surrogate is not valid UTF-8
])
def test_render(data: bytes, shown: str) -> None:
    assert render(data) == shown


@given(st.binary() | st.text().map(lambda s: s.encode("utf-8", "surrogatepass")))
def test_render_is_one_line_and_reversible(data: bytes) -> None:
    shown = render(data)
    assert shown.isprintable()
    assert codecs.escape_decode(shown.encode("utf-8"))[0] == data


def test_check_finds_a_damaged_data_page(db_dir: Path) -> None:
    ok(coldb("put", "a", "1", data_dir=db_dir))  # closing checkpoints: "a" is in a run
    data = db_dir / "data.pages"
    with data.open("r+b") as file:
        file.seek(65536 + 70)  # page 1, inside the run's entries
        byte = file.read(1)
        file.seek(65536 + 70)
        file.write(bytes([byte[0] ^ 1]))
    message = error(coldb("check", data_dir=db_dir), 1)
    assert "check failed" in message and str(data) in message and "checksum" in message


def test_checkpoint_command(db_dir: Path) -> None:
    commit_in_wal_only(db_dir, ("a", "1"), ("b", "2"))
    written = json.loads(ok(coldb("checkpoint", data_dir=db_dir)))
    assert written["entries"] == 2 and written["runs"] == 1
    stats = json.loads(ok(coldb("stats", data_dir=db_dir)))
    assert stats["recovery_transactions"] == 0 and stats["kv_runs"] == 1
    assert scan(db_dir) == ["a\t1", "b\t2"]
