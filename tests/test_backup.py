"""Online backups (``colibri_mm.backup``): a backup taken while a writer commits,
checkpoints and imports restores to exactly the state at its LSN; directory and
tarball outputs; restore refusing a non-empty directory; verify-backup naming the
damaged file of each kind; the ``coldb`` commands and their exit statuses."""

import json
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from coldb_run import coldb, error, ok

import colibri_mm as cm
from colibri_mm import backup as backup_module
from colibri_mm.backup import MANIFEST_NAME, BackupManifest, restore, verify_backup
from colibri_mm.check import check_database
from colibri_mm.errors import BackupError, CorruptionError, ReadOnlyError

OPTIONS = {"page_size": 4096, "wal_segment_size": 1 << 20, "row_group_rows": 4096}
"""Small pages and segments: imported chunks become extents and the WAL rolls."""
WAIT = 60.0
"""Seconds a test waits for another thread before it fails (a guard, not a figure)."""
VALUE = b"v" * 8000
"""Each writer commit logs about this much, so segments roll every ~130 commits."""


def imported(rows: int, start: int = 0) -> pa.Table:
    ids = np.arange(start, start + rows, dtype=np.int64)
    return pa.table({"id": ids, "x": ids * 0.5, "s": [f"s{i % 97}" for i in ids]})


class Writer(threading.Thread):
    """Commits numbered transactions until stopped: commit ``i`` sets ``counter`` to
    ``i``, puts key ``k<i>`` and inserts row ``i`` into ``events``; every 40th
    commit it checkpoints, and once it bulk-imports a table."""

    def __init__(self, db: cm.Database) -> None:
        super().__init__(daemon=True)
        self.db = db
        self.acknowledged = 0
        """Commits returned so far (commit i is acknowledged once this passes i)."""
        self.progressed = threading.Condition()
        self.stop = threading.Event()
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            i = 0
            while not self.stop.is_set():
                with self.db.transaction() as tx:
                    tx.kv.put(b"counter", str(i).encode())
                    tx.kv.put(f"k{i}".encode(), VALUE)
                    tx.insert("events", {"id": [i], "payload": [f"p{i}"]})
                i += 1
                with self.progressed:
                    self.acknowledged = i
                    self.progressed.notify_all()
                if i % 40 == 0:
                    self.db.checkpoint()
                if i == 60:
                    self.db.import_arrow("during", imported(20_000))
        except BaseException as e:
            self.failure = e
            with self.progressed:
                self.progressed.notify_all()

    def wait_for(self, commits: int) -> None:
        with self.progressed:
            assert self.progressed.wait_for(
                lambda: self.acknowledged >= commits or self.failure is not None, WAIT)
        assert self.failure is None, self.failure


def assert_restored_at(restored: Path, manifest: BackupManifest, setup_csn: int,
                       acknowledged: tuple[int, int]) -> None:
    """The database at ``restored`` holds exactly the writer's commits up to the
    backup's CSN: every one of them, and nothing later."""
    with cm.connect(restored, readonly=True) as db:
        counter = db.kv.get(b"counter")
        assert counter is not None
        last = int(counter)
        imports = 1 if last >= 60 else 0  # the writer's import takes a CSN too
        assert manifest.csn == setup_csn + last + 1 + imports
        before, after = acknowledged
        assert before <= last + 1 <= after
        keys = {k for k, _ in db.kv.scan(prefix=b"k")}
        assert keys == {f"k{i}".encode() for i in range(last + 1)}
        events = db.table("events").to_arrow_table().sort_by("id")
        assert events.column("id").to_pylist() == list(range(last + 1))
        assert db.table("bulk").to_arrow_table().sort_by("id").equals(imported(50_000))
        assert ("during" in db.tables()) == (last >= 60)
        report = check_database(db)
        assert report.ok, report.all_problems
        assert report.checksums["extents"] > 0


@pytest.fixture
def source(tmp_path: Path) -> cm.Database:
    db = cm.connect(tmp_path / "source", create=True, **OPTIONS)
    db.import_arrow("bulk", imported(50_000), primary_key="id")
    db.table("bulk").create_index("s")
    db.create_table("events", pa.schema([("id", pa.int64()), ("payload", pa.string())]),
                    primary_key="id")
    db.checkpoint()
    yield db
    db.close()


@pytest.mark.parametrize("output", ["backup", "backup.tar.gz"])
def test_backup_while_writing_restores_the_state_at_its_lsn(
        source: cm.Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        output: str) -> None:
    setup_csn = source.stats()["published_csn"]
    writer = Writer(source)
    # The copy of the data file waits until the writer has committed 150 more times
    # (three checkpoints, a bulk import, WAL segments rolled past the copy point):
    # all of that happens while the backup copies.
    copying = threading.Event()
    real_read = backup_module._FileReader.read

    def slow_read(reader: backup_module._FileReader, size: int) -> bytes:
        if not copying.is_set():
            copying.set()
            writer.wait_for(acknowledged_at_start + 150)
        return real_read(reader, size)

    monkeypatch.setattr(backup_module._FileReader, "read", slow_read)
    writer.start()
    writer.wait_for(30)
    acknowledged_at_start = writer.acknowledged
    manifest = source.backup(tmp_path / output)
    acknowledged_at_end = writer.acknowledged
    writer.stop.set()
    writer.join(WAIT)
    assert writer.failure is None, writer.failure
    assert copying.is_set()
    assert source.stats()["checkpoint_id"] > manifest.checkpoint_id

    restored = restore(tmp_path / output, tmp_path / "restored")
    assert restored.lsn == manifest.lsn
    assert restored.table_rows["bulk"] == 50_000
    assert_restored_at(tmp_path / "restored", manifest, setup_csn,
                       (acknowledged_at_start, acknowledged_at_end))
    checked = verify_backup(tmp_path / output)[1]
    assert checked.ok, checked.all_problems


def test_manifest_lists_every_file_with_its_crc(source: cm.Database, tmp_path: Path) -> None:
    source.kv.put(b"after the checkpoint", b"in the WAL")
    manifest = source.backup(tmp_path / "b")
    document = json.loads((tmp_path / "b" / MANIFEST_NAME).read_text())
    assert document["backup_format"] == 1 and document["database_format"] == "1.0"
    assert document["lsn"] == manifest.lsn and manifest.lsn > manifest.checkpoint_lsn
    on_disk = sorted(str(p.relative_to(tmp_path / "b")) for p in (tmp_path / "b").rglob("*")
                     if p.is_file() and p.name != MANIFEST_NAME)
    assert sorted(f["path"] for f in document["files"]) == on_disk
    import crc32c  # the reference implementation, not the engine's kernel
    for entry in document["files"]:
        data = (tmp_path / "b" / entry["path"]).read_bytes()
        assert len(data) == entry["size"]
        assert f"{crc32c.crc32c(data):08x}" == entry["crc32c"]
    assert BackupManifest.decode(manifest.encode(), "here") == manifest
    text = (tmp_path / "b" / MANIFEST_NAME).read_bytes()
    covered = text[: text.rindex(b'\n  "manifest_crc32c"') + 1]
    assert f"{crc32c.crc32c(covered):08x}" == document["manifest_crc32c"]


def test_backup_refuses_an_existing_target_and_a_read_only_database(
        source: cm.Database, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("mine")
    with pytest.raises(BackupError, match="already exists"):
        source.backup(tmp_path / "taken")
    (tmp_path / "empty").mkdir()
    source.backup(tmp_path / "empty")  # an empty directory is fine
    assert (tmp_path / "empty" / MANIFEST_NAME).is_file()
    (tmp_path / "b.tar.gz").write_bytes(b"")
    with pytest.raises(BackupError, match="already exists"):
        source.backup(tmp_path / "b.tar.gz")
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []
    with cm.connect(source.path, readonly=True) as reader, \
            pytest.raises(ReadOnlyError, match="only the process writing"):
        reader.backup(tmp_path / "from-reader")


def test_restore_refuses_a_non_empty_directory_unless_forced(
        source: cm.Database, tmp_path: Path) -> None:
    source.kv.put(b"a", b"1")
    source.backup(tmp_path / "b.tgz")
    target = tmp_path / "target"
    target.mkdir()
    (target / "precious").write_text("keep me")
    with pytest.raises(BackupError, match="not empty"):
        restore(tmp_path / "b.tgz", target)
    assert (target / "precious").read_text() == "keep me"
    report = restore(tmp_path / "b.tgz", target, force=True)
    assert report.keys == 1 and not (target / "precious").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.tgz", "source", "target"]


@pytest.mark.parametrize("victim", ["colibri.meta", "data.pages", "wal", MANIFEST_NAME])
def test_verify_backup_names_a_damaged_file(source: cm.Database, tmp_path: Path,
                                            victim: str) -> None:
    source.kv.put(b"a", b"1")
    source.backup(tmp_path / "b")
    path = tmp_path / "b" / victim
    if victim == "wal":
        (path,) = path.glob("*.wal")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptionError) as raised:
        verify_backup(tmp_path / "b")
    assert path.name in str(raised.value)
    with pytest.raises(CorruptionError):
        restore(tmp_path / "b", tmp_path / "restored")
    assert not (tmp_path / "restored").exists()


def test_verify_backup_finds_a_damaged_tarball(source: cm.Database, tmp_path: Path) -> None:
    source.backup(tmp_path / "b.tar.gz")
    data = bytearray((tmp_path / "b.tar.gz").read_bytes())
    data[len(data) // 2] ^= 0x10
    (tmp_path / "b.tar.gz").write_bytes(bytes(data))
    with pytest.raises(CorruptionError, match=r"b\.tar\.gz"):
        verify_backup(tmp_path / "b.tar.gz")


# -- coldb -----------------------------------------------------------------------------


def test_coldb_backup_verify_restore(tmp_path: Path) -> None:
    db_dir = tmp_path / "db"
    ok(coldb("init", db_dir))
    ok(coldb("put", "a", "1", data_dir=db_dir))
    written = json.loads(ok(coldb("backup", "--output", tmp_path / "b.tar.gz", "--json",
                                  data_dir=db_dir)))
    assert written["files"] >= 3 and written["database_format"] == "1.0"
    assert "backup verified" in ok(coldb("verify-backup", tmp_path / "b.tar.gz"))
    restored = ok(coldb("restore", "--from", tmp_path / "b.tar.gz",
                        data_dir=tmp_path / "r"))
    assert f"up to LSN {written['lsn']}" in restored and "keys: 1" in restored
    assert "not empty" in error(coldb("restore", "--from", tmp_path / "b.tar.gz",
                                      data_dir=tmp_path / "r"), 3)
    ok(coldb("restore", "--from", tmp_path / "b.tar.gz", "--force", data_dir=tmp_path / "r"))
    assert ok(coldb("get", "a", data_dir=tmp_path / "r")) == "1\n"
    assert ok(coldb("check", data_dir=tmp_path / "r")).startswith("check passed")

    ok(coldb("backup", "--output", tmp_path / "d", data_dir=db_dir))
    segment = next((tmp_path / "d" / "wal").glob("*.wal"))
    segment.write_bytes(segment.read_bytes()[:-1] + b"\xff")
    message = error(coldb("verify-backup", tmp_path / "d"), 1)
    assert "backup damaged" in message and segment.name in message


def test_coldb_backup_of_a_database_open_elsewhere_points_at_the_server(
        tmp_path: Path) -> None:
    with cm.connect(tmp_path / "db", create=True):
        message = error(coldb("backup", "--output", tmp_path / "b",
                              data_dir=tmp_path / "db"), 3)
    assert "locked for writing" in message and "--server HOST:PORT backup" in message
