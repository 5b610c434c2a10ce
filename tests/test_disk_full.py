"""A full disk: commits fail with DiskFullError (a DurabilityError), nothing
acknowledged is lost, and the database opens again once space is freed. With the
fault-injecting file layer, and with a real size-limited tmpfs where this machine
lets the tests mount one."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import colibri_mm as cm
from colibri_mm import DiskFullError, DurabilityError
from colibri_mm.storage.faults import FaultyFileSystem


def test_a_full_disk_under_the_wal_fails_commits_and_loses_nothing(tmp_path: Path) -> None:
    fs = FaultyFileSystem()
    db = cm.connect(tmp_path / "db", create=True, file_system=fs)
    for i in range(50):
        db.kv.put(f"k{i}", f"v{i}")
    fs.fail_at(1, kinds={"pwrite", "truncate"}, persistent=True, fail_with=errno.ENOSPC)
    with pytest.raises(DiskFullError, match="file system is full") as caught:
        for i in range(50, 5000):  # until a write reaches the disk
            db.kv.put(f"k{i}", "x" * 1000)
    assert isinstance(caught.value, DurabilityError)
    with pytest.raises(DiskFullError, match="failed earlier"):
        db.kv.put("after", "1")
    with contextlib.suppress(cm.Error, OSError):
        db.close()
    fs.clear_faults()
    with cm.connect(tmp_path / "db") as again:
        assert [again.kv.get(f"k{i}") for i in range(50)] == \
            [f"v{i}".encode() for i in range(50)]
        assert again.kv.get("after") is None
        again.kv.put("after", "1")


def _table(rows: int) -> pa.Table:
    return pa.table({"id": np.arange(rows, dtype=np.int64),
                     "x": np.random.default_rng(1).random(rows)})


def test_a_full_disk_under_an_import_rolls_it_back(tmp_path: Path) -> None:
    fs = FaultyFileSystem()
    with cm.connect(tmp_path / "db", create=True, file_system=fs) as db:
        db.kv.put("before", "1")
        db.import_arrow("small", _table(10))
        # The data file is written only by imports and checkpoints: fail its writes.
        fs.fail_at(1, kinds={"pwrite"}, persistent=True, fail_with=errno.ENOSPC)
        with pytest.raises(DiskFullError, match="import ran out of disk space"):
            db.import_arrow("big", _table(2_000_000))
        fs.clear_faults()
        assert db.tables() == ["small"]
        db.kv.put("after", "2")  # the database goes on
        with pytest.raises(DiskFullError, match="checkpoint ran out of disk space"):
            fs.fail_at(1, kinds={"pwrite"}, persistent=True, fail_with=errno.ENOSPC)
            db.checkpoint()
        fs.clear_faults()
        assert db.stats()["checkpoints_failed"] == 1
    with cm.connect(tmp_path / "db") as again:
        assert again.tables() == ["small"] and again.table("small").count() == 10
        assert again.kv.get("before") == b"1" and again.kv.get("after") == b"2"


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs, or a skip where mounting is not allowed (not root, or no
    CAP_SYS_ADMIN in this container)."""
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs",
                              str(mount_point)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_real_full_file_system(small_tmpfs: Path) -> None:
    path = small_tmpfs / "db"
    acknowledged: dict[str, bytes] = {}
    db = cm.connect(path, create=True, page_size=4096, wal_segment_size=1 << 20,
                    checkpoint_wal_bytes=2 << 20, max_dirty_bytes=2 << 20)
    filler = small_tmpfs / "filler"
    with filler.open("wb") as file:  # leave a few MiB for the database
        file.write(os.urandom(9 << 20))
    with pytest.raises(DiskFullError):
        for i in range(100_000):
            value = os.urandom(2000)
            db.kv.put(f"key{i:06}", value)
            acknowledged[f"key{i:06}"] = value
    assert acknowledged, "the disk was full before the first commit"
    with contextlib.suppress(cm.Error, OSError):
        db.close()
    filler.unlink()  # the operator frees space
    with cm.connect(path) as again:
        for key, value in acknowledged.items():
            assert again.kv.get(key) == value, key
        again.kv.put("more", "room now")
        assert again.kv.get("more") == b"room now"
