"""Format versions and migration: the real 0.9 fixture opened read-only and read
correctly, ``migrate`` (dry run, verify, rollback, damage, versions newer than the
engine), the CLI, and the crash harness (a migration SIGKILLed before each of its
file operations and at random moments leaves the old or the new database, and
running it again finishes the job).

``COLIBRI_MIGRATE_CRASH_POINTS`` sets how many of the migration's file operations
the harness kills before (default :data:`DEFAULT_CRASH_POINTS`, spread evenly;
``all`` for a release check), ``COLIBRI_MIGRATE_RANDOM_KILLS`` the kills at random
moments (default 3).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
from database_content import content

import colibri_mm
from colibri_mm.cli.main import main as coldb
from colibri_mm.errors import CorruptionError, FormatVersionError, MigrationError, ReadOnlyError
from colibri_mm.kernels.checksum import mask
from colibri_mm.migrate import migrate, rollback
from colibri_mm.storage.catalog import read_catalog
from colibri_mm.storage.checksums import FORMAT_0_9, ZLIB_CRC32
from colibri_mm.storage.faults import FaultyFileSystem
from colibri_mm.storage.files import FileSystem
from colibri_mm.storage.meta import SLOT_OFFSETS, Meta, read_meta
from colibri_mm.storage.pagefile import PageFile

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE = FIXTURES / "format-0.9"
EXPECTED: dict[str, Any] = json.loads((FIXTURES / "format-0.9.expected.json").read_text())
DEFAULT_CRASH_POINTS = 8
CRASH_POINTS = os.environ.get("COLIBRI_MIGRATE_CRASH_POINTS", str(DEFAULT_CRASH_POINTS))
RANDOM_KILLS = int(os.environ.get("COLIBRI_MIGRATE_RANDOM_KILLS", "3"))
CHILD = Path(__file__).parent / "helpers" / "migrate_child.py"


def fixture_copy(tmp_path: Path) -> Path:
    directory = tmp_path / "db"
    shutil.copytree(FIXTURE, directory)
    return directory


def file_hashes(directory: Path) -> dict[str, str]:
    """SHA-256 of every database file (``LOCK`` is not part of a database's state)."""
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file() and p.name != "LOCK"}


def format_of(directory: Path) -> str:
    meta, _ = read_meta(FileSystem(), directory)
    return f"{meta.write_version >> 8}.{meta.write_version & 0xFF}"


# -- reading format 0.9 --------------------------------------------------------------


def test_fixture_opens_read_only_and_reads_correctly(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    directory = fixture_copy(tmp_path)
    with colibri_mm.connect(directory) as db:
        assert db.options.readonly
        reason = db.read_only_reason or ""
        assert "format 0.9" in reason and f"coldb migrate --data-dir {directory}" in reason
        assert "opening read-only" in caplog.text
        with pytest.raises(ReadOnlyError, match="coldb migrate"):
            db.kv.put("k", "v")
        with pytest.raises(ReadOnlyError, match=r"format 0\.9"):
            db.checkpoint()
        checked = db.verify()
        assert checked["extents"] >= 2 and checked["runs"] >= 1
        assert db.kv.get("wal-only") == b"written after the checkpoint"
        people = db.table("people")
        assert people.get(5) == {"id": 5, "name": "renamed", "score": 99.0}
        assert people.find({"name": "late"}).to_pylist() == \
            [{"id": 1000, "name": "late", "score": 1.5}]
        assert db.table("imported_late").count() == 2500
    assert content(directory) == EXPECTED


def test_meta_slot_of_format_0_9_has_one_version_field_and_a_zlib_crc(tmp_path: Path) -> None:
    data = (FIXTURE / "colibri.meta").read_bytes()
    meta, slot = read_meta(FileSystem(), FIXTURE)
    assert (meta.read_version, meta.write_version) == (FORMAT_0_9, FORMAT_0_9)
    raw = data[SLOT_OFFSETS[slot] : SLOT_OFFSETS[slot] + 84]
    assert raw[:8] == b"COLIMETA"
    assert struct.unpack_from("<I", raw, 8)[0] == 0x0009
    assert struct.unpack_from("<I", raw, 80)[0] == mask(zlib.crc32(raw[:80]))
    assert Meta.decode(meta.encode()) == meta
    assert meta.encode()[:80] == raw[:80]


def test_catalog_and_pages_of_the_fixture_use_zlib_crc32() -> None:
    fs = FileSystem()
    meta, _ = read_meta(fs, FIXTURE)
    pages = PageFile(fs, FIXTURE, meta.page_size, writable=False)
    try:
        catalog = read_catalog(pages, meta.catalog_root, ZLIB_CRC32)
        for run in catalog.runs:
            view = pages.view(run.first, run.count)
            assert ZLIB_CRC32.pages(view, meta.page_size).tolist() == run.page_crcs.tolist()
        with pytest.raises(CorruptionError, match="fails its checksum"):
            read_catalog(pages, meta.catalog_root)  # as if it were 1.0
    finally:
        pages.close()


# -- versions newer than the engine ----------------------------------------------------


def rewrite_versions(directory: Path, read_version: int, write_version: int) -> None:
    fs = FileSystem()
    meta, slot = read_meta(fs, directory)
    newer = Meta(read_version, write_version, meta.page_size, meta.database_id,
                 meta.checkpoint_id, meta.checkpoint_lsn, meta.checkpoint_csn,
                 meta.catalog_root, meta.free_list_root)
    with open(directory / "colibri.meta", "r+b") as f:
        f.seek(SLOT_OFFSETS[slot])
        f.write(newer.encode())


def test_newer_read_version_is_refused_with_the_numbers(tmp_path: Path) -> None:
    directory = tmp_path / "db"
    colibri_mm.connect(directory, create=True).close()
    rewrite_versions(directory, 0x0200, 0x0200)
    for readonly in (False, True):
        with pytest.raises(FormatVersionError, match=r"format 2\.0; this engine reads up "
                                                     r"to 1\.0"):
            colibri_mm.connect(directory, readonly=readonly)


def test_newer_write_version_opens_read_only_with_the_numbers(tmp_path: Path) -> None:
    directory = tmp_path / "db"
    with colibri_mm.connect(directory, create=True) as db:
        db.kv.put("k", "v")
    rewrite_versions(directory, 0x0100, 0x0105)
    with colibri_mm.connect(directory) as db:
        assert db.options.readonly
        assert "write version 1.5" in (db.read_only_reason or "")
        assert "writes up to 1.0" in (db.read_only_reason or "")
        assert db.kv.get("k") == b"v"
        with pytest.raises(ReadOnlyError, match=r"write version 1\.5"):
            db.kv.put("k", "w")


# -- migrating -------------------------------------------------------------------------


def test_migrate_gives_a_writable_database_with_the_same_content(tmp_path: Path) -> None:
    directory = fixture_copy(tmp_path)
    report = migrate(directory)
    assert (report.source, report.target) == ("0.9", "1.0")
    assert report.descriptors >= 2 and report.runs >= 1 and report.wal_records >= 4
    assert format_of(directory) == "1.0"
    assert content(directory) == EXPECTED
    with colibri_mm.connect(directory) as db:
        assert db.read_only_reason is None
        db.verify()
        for name in db.tables():
            assert db.table(name).verify() == []
        db.kv.put("after", "migration")
        with db.transaction() as tx:
            tx.update("people", 6, {"score": -1.0})
        db.checkpoint()
    with colibri_mm.connect(directory) as db:
        assert db.kv.get("after") == b"migration"
        assert db.table("people").get(6)["score"] == -1.0  # type: ignore[index]
    again = migrate(directory)
    assert again.done_before and "nothing to do" in again.summary()[0]


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    directory = fixture_copy(tmp_path)
    before = file_hashes(directory)
    report = migrate(directory, dry_run=True)
    assert report.dry_run and report.descriptors >= 2 and report.bytes_written > 0
    assert "dry run" in report.summary()[0]
    assert file_hashes(directory) == before
    assert sorted(p.name for p in directory.iterdir()) == \
        ["LOCK", "colibri.meta", "data.pages", "wal"]


def test_verify_compares_every_key_and_row(tmp_path: Path) -> None:
    directory = fixture_copy(tmp_path)
    report = migrate(directory, verify=True)
    assert report.verified is not None
    assert report.verified["keys"] == len(EXPECTED["keys"])
    assert {name: t["rows"] for name, t in report.verified["tables"].items()} == \
        {name: len(t["rows"]) for name, t in EXPECTED["tables"].items()}
    assert content(directory) == EXPECTED


def test_rollback_gives_back_the_old_files_byte_for_byte(tmp_path: Path) -> None:
    directory = fixture_copy(tmp_path)
    before = file_hashes(directory)
    migrate(directory)
    assert file_hashes(directory / ".rollback-0.9") == \
        {**before, "migration.json": file_hashes(directory / ".rollback-0.9")["migration.json"]}
    with colibri_mm.connect(directory) as db:  # opened for writing, nothing written
        assert db.kv.get("wal-only") == b"written after the checkpoint"
    record = rollback(directory)
    assert (record["from"], record["to"]) == ("0.9", "1.0")
    assert file_hashes(directory) == before
    assert sorted(p.name for p in directory.iterdir()) == \
        ["LOCK", "colibri.meta", "data.pages", "wal"]
    assert format_of(directory) == "0.9"
    migrate(directory)  # and forward again
    assert content(directory) == EXPECTED


def test_rollback_is_refused_once_the_new_database_was_written(tmp_path: Path) -> None:
    directory = fixture_copy(tmp_path)
    with pytest.raises(MigrationError, match="nothing to roll back"):
        rollback(directory)
    migrate(directory)
    with colibri_mm.connect(directory) as db:
        db.kv.put("new", "write")
    with pytest.raises(MigrationError, match="written after the migration"):
        rollback(directory)
    with colibri_mm.connect(directory, readonly=True) as db:
        assert db.kv.get("new") == b"write"


def damage_targets(directory: Path) -> dict[str, tuple[Path, int]]:
    """A byte of each kind of checksummed structure: (file, offset)."""
    fs = FileSystem()
    meta, _ = read_meta(fs, directory)
    pages = PageFile(fs, directory, meta.page_size, writable=False)
    try:
        catalog = read_catalog(pages, meta.catalog_root, ZLIB_CRC32)
    finally:
        pages.close()
    page_size = meta.page_size
    run = catalog.runs[0]
    used = {p for r in catalog.runs for p in range(r.first, r.first + r.count)}
    used |= set(range(meta.catalog_root, meta.catalog_root + 1))
    extent_page = min({p for r in catalog.runs for first, count in r.named
                       for p in range(first, first + count)} - used)
    wal = sorted((directory / "wal").iterdir())[0]
    return {"catalog": (directory / "data.pages", meta.catalog_root * page_size + 50),
            "run": (directory / "data.pages", run.first * page_size + 70),
            "extent": (directory / "data.pages", extent_page * page_size + 100),
            "wal header": (wal, 20),
            "wal record": (wal, 512 + 40)}


@pytest.mark.parametrize("what", ["catalog", "run", "extent", "wal header", "wal record"])
def test_damage_makes_migrate_refuse_naming_the_file(tmp_path: Path, what: str) -> None:
    directory = fixture_copy(tmp_path)
    path, offset = damage_targets(directory)[what]
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x20
    path.write_bytes(bytes(data))
    before = file_hashes(directory)
    with pytest.raises(CorruptionError) as raised:
        migrate(directory)
    assert str(path) in str(raised.value)
    assert file_hashes(directory) == before
    assert not (directory / ".migrate-1.0").exists()
    assert not (directory / ".rollback-0.9").exists() or \
        not any(p.name != "migration.json" for p in (directory / ".rollback-0.9").iterdir())
    assert format_of(directory) == "0.9"


def test_migrate_refuses_while_a_writer_has_it_open(tmp_path: Path) -> None:
    directory = tmp_path / "db"
    with colibri_mm.connect(directory, create=True), pytest.raises(colibri_mm.LockedError):
        migrate(directory, to="0.9")


class ReaderProcess:
    """A child process holding ``directory`` open read-only (a notebook, a
    coldb-server of an older release...) until :meth:`stop`."""

    PROGRAM = ("import sys, colibri_mm\n"
               "db = colibri_mm.connect(sys.argv[1], readonly=True)\n"
               "print('open', flush=True)\n"
               "sys.stdin.read()\n"
               "db.close()\n")

    def __init__(self, directory: Path) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", self.PROGRAM, str(directory)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True)
        assert self.process.stdout is not None
        assert self.process.stdout.readline() == "open\n"

    def stop(self) -> None:
        self.process.communicate("")
        assert self.process.returncode == 0

    def kill(self) -> None:
        """SIGKILL: its reader slot is left behind, naming a dead process."""
        self.process.kill()
        self.process.communicate()


def test_migrate_refuses_while_another_process_reads_it(tmp_path: Path) -> None:
    directory = fixture_copy(tmp_path)
    before = file_hashes(directory)
    reader = ReaderProcess(directory)
    try:
        with pytest.raises(colibri_mm.LockedError,
                           match=rf"pid {reader.process.pid}\) has .* open for reading"):
            migrate(directory)
        assert file_hashes(directory) == before
        assert sorted(p.name for p in directory.iterdir()) == \
            ["LOCK", "colibri.meta", "data.pages", "wal"]
        migrate(directory, dry_run=True)  # writes nothing, so it is allowed
    finally:
        reader.stop()
    migrate(directory)
    assert format_of(directory) == "1.0" and content(directory) == EXPECTED


def test_migrate_refuses_a_reader_that_opened_during_it(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import colibri_mm.migrate as migration
    directory = fixture_copy(tmp_path)
    before = file_hashes(directory)
    readers: list[ReaderProcess] = []
    compare = migration._compare

    def compare_while_a_reader_opens(path: Path, staging: Path) -> dict[str, Any]:
        readers.append(ReaderProcess(path))
        return compare(path, staging)

    monkeypatch.setattr(migration, "_compare", compare_while_a_reader_opens)
    try:
        with pytest.raises(colibri_mm.LockedError, match="open for reading"):
            migrate(directory, verify=True)
    finally:
        for reader in readers:
            reader.stop()
    assert len(readers) == 1
    assert file_hashes(directory) == before  # the new files were removed, the old kept
    assert sorted(p.name for p in directory.iterdir()) == \
        ["LOCK", "colibri.meta", "data.pages", "wal"]


def test_rollback_refuses_while_another_process_reads_it(tmp_path: Path) -> None:
    directory = fixture_copy(tmp_path)
    migrate(directory)
    reader = ReaderProcess(directory)
    try:
        with pytest.raises(colibri_mm.LockedError, match="open for reading"):
            rollback(directory)
        assert format_of(directory) == "1.0"
    finally:
        reader.kill()
    rollback(directory)  # the slot of a killed reader does not stand in the way
    assert format_of(directory) == "0.9"


# -- the CLI ---------------------------------------------------------------------------


def test_cli_migrate_dry_run_verify_and_rollback(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    directory = fixture_copy(tmp_path)
    assert coldb(["get", "--data-dir", str(directory), "wal-only"]) == 0
    assert "written after the checkpoint" in capsys.readouterr().out
    assert coldb(["put", "--data-dir", str(directory), "k", "v"]) != 0
    assert "coldb migrate" in capsys.readouterr().err
    assert coldb(["migrate", "--data-dir", str(directory), "--dry-run", "--no-progress"]) == 0
    assert "dry run" in capsys.readouterr().out
    assert format_of(directory) == "0.9"
    assert coldb(["migrate", "--data-dir", str(directory), "--to", "1.0", "--verify",
                  "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "format 0.9 -> 1.0" in out and "read the same" in out
    assert coldb(["put", "--data-dir", str(directory), "k", "v"]) == 0
    assert coldb(["migrate", "--data-dir", str(directory), "--rollback"]) != 0
    assert "written after the migration" in capsys.readouterr().err
    assert coldb(["migrate", "--data-dir", str(directory), "--json", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["done_before"] is True


# -- the crash harness -----------------------------------------------------------------


def run_child(directory: Path, kill_at: int, kill_after: float | None = None) -> int:
    """Run a migration in a child; returns its exit status (-9 when killed)."""
    child = subprocess.Popen([sys.executable, str(CHILD), str(directory), str(kill_at)],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    if kill_after is not None:
        time.sleep(kill_after)
        child.kill()
    child.communicate(timeout=120)
    return child.returncode


def check_after_crash(directory: Path) -> str:
    """The directory opens as the old or the new database with all the data; running
    migrate again finishes the job. Returns the format it opened as."""
    opened = content(directory)
    assert opened == EXPECTED
    found = format_of(directory)
    assert found in ("0.9", "1.0")
    migrate(directory)
    assert format_of(directory) == "1.0"
    assert content(directory) == EXPECTED
    rollback_copy = file_hashes(directory / ".rollback-0.9")
    rollback_copy.pop("migration.json")
    assert rollback_copy == file_hashes(FIXTURE)
    return found


def crash_points(total: int) -> list[int]:
    if CRASH_POINTS == "all":
        return list(range(1, total + 1))
    wanted = min(int(CRASH_POINTS), total)
    points = {round(1 + k * (total - 1) / max(wanted - 1, 1)) for k in range(wanted)}
    # The switch's operations are the last ones: always include a few of them.
    return sorted(points | {total - 8, total - 4, total - 1, total})


@pytest.mark.slow
def test_crash_at_every_file_operation_leaves_old_or_new(tmp_path: Path) -> None:
    counting = FaultyFileSystem()
    migrate(fixture_copy(tmp_path / "count"), file_system=counting)
    total = counting.operations
    assert total > 20
    seen: dict[str, int] = {}
    for kill_at in crash_points(total):
        directory = fixture_copy(tmp_path / f"kill-{kill_at}")
        assert run_child(directory, kill_at) == -9, kill_at
        found = check_after_crash(directory)
        seen[found] = seen.get(found, 0) + 1
        shutil.rmtree(directory.parent)
    assert set(seen) == {"0.9", "1.0"}, seen  # both sides of the commit point were hit
    directory = fixture_copy(tmp_path / "no-kill")
    assert run_child(directory, 0) == 0
    assert check_after_crash(directory) == "1.0"


@pytest.mark.slow
def test_crash_at_random_moments_leaves_old_or_new(tmp_path: Path) -> None:
    rng = random.Random(20261205)
    started = time.perf_counter()
    assert run_child(fixture_copy(tmp_path / "timing"), 0) == 0
    duration = time.perf_counter() - started
    for kill in range(RANDOM_KILLS):
        directory = fixture_copy(tmp_path / f"random-{kill}")
        run_child(directory, 0, kill_after=rng.uniform(0, duration))
        check_after_crash(directory)
        shutil.rmtree(directory.parent)
