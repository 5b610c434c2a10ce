"""The WAL follower of reader processes while the writer deletes old segments under
it (between listing the directory and reading a segment), as it may for segments
before the cut of the oldest checkpoint a reader announced."""

from pathlib import Path

import pytest

import colibri_mm as cm
from colibri_mm.errors import CorruptionError
from colibri_mm.kernels.walcodec import DecodedRecords
from colibri_mm.storage.files import File, FileSystem
from colibri_mm.txn.replay import COMMIT
from colibri_mm.wal.follower import WalFollower
from colibri_mm.wal.segment import read_header, segment_numbers, segment_path


class CommitRecorder:
    """Stands in for the transaction assembler: the LSNs of the COMMIT records fed."""

    def __init__(self) -> None:
        self.commits: list[int] = []

    def feed(self, decoded: DecodedRecords, first: int = 0, stop: int | None = None) -> None:
        stop = len(decoded) if stop is None else stop
        self.commits += [int(lsn) for lsn, kind in zip(decoded.lsns[first:stop],
                                                         decoded.types[first:stop],
                                                         strict=True) if kind == COMMIT]


class DeletingAfterListing(FileSystem):
    """Lists a directory, then deletes the segments numbered below ``below`` (once):
    the writer removing them right after the follower listed them."""

    def __init__(self, below: int) -> None:
        self.below = below

    def listdir(self, path: Path) -> list[str]:
        names = super().listdir(path)
        if self.below:
            for number in segment_numbers(names):
                if number < self.below:
                    self.remove(segment_path(path, number))
            self.below = 0
        return names


@pytest.fixture
def wal(tmp_path: Path) -> Path:
    """A WAL of at least four segments (1 MiB each), every commit one 8 KB value."""
    with cm.connect(tmp_path / "db", create=True, wal_segment_size=1 << 20,
                    checkpoint_wal_bytes=1 << 30, checkpoint_on_close=False) as db:
        for i in range(600):
            db.kv.put(f"k{i:04}", bytes(8000))
    wal_dir = tmp_path / "db" / "wal"
    assert len(segment_numbers(FileSystem().listdir(wal_dir))) >= 4
    return wal_dir


def _first_lsns(wal_dir: Path) -> list[tuple[int, int]]:
    fs = FileSystem()
    numbers = segment_numbers(fs.listdir(wal_dir))
    return [(n, read_header(fs, wal_dir, n).first_lsn) for n in numbers]  # type: ignore[union-attr]


def test_start_lists_again_when_older_segments_vanish(wal: Path) -> None:
    _, _, (s3, lsn3), *_ = _first_lsns(wal)
    expected = CommitRecorder()
    WalFollower(FileSystem(), wal, lsn3).poll(expected, None)
    got = CommitRecorder()
    # Segments before the third are deleted after the listing: the scan of the
    # listing stops at the vanished first one, and must not conclude there is no WAL.
    WalFollower(DeletingAfterListing(below=s3), wal, lsn3).poll(got, None)
    assert got.commits == expected.commits and got.commits[0] > lsn3


class Hiding(FileSystem):
    """Opening the segment ``hidden`` fails as if it did not exist yet."""

    def __init__(self) -> None:
        self.hidden: Path | None = None

    def open(self, path: Path, **kwargs: bool) -> File:
        if path == self.hidden:
            raise FileNotFoundError(path)
        return super().open(path, **kwargs)


def test_poll_moves_on_when_the_segment_it_finished_is_deleted(wal: Path) -> None:
    _, (s2, lsn2), (s3, _), *_ = _first_lsns(wal)
    fs = Hiding()
    fs.hidden = segment_path(wal, s3)  # not created yet: the follower stays on s2
    follower = WalFollower(fs, wal, lsn2)
    first = CommitRecorder()
    follower.poll(first, None)
    assert first.commits
    fs.hidden = None
    for number in (s2 - 1, s2):  # then the writer rolls on and removes them
        fs.remove(segment_path(wal, number))
    rest = CommitRecorder()
    follower.poll(rest, None)
    whole = CommitRecorder()
    WalFollower(FileSystem(), wal, first.commits[-1]).poll(whole, None)
    assert rest.commits == whole.commits and rest.commits


def test_poll_refuses_to_skip_records_deleted_under_it(wal: Path) -> None:
    _, (s2, lsn2), (_, lsn3), *_ = _first_lsns(wal)
    follower = WalFollower(FileSystem(), wal, lsn2)
    follower.poll(CommitRecorder(), (lsn2 + lsn3) // 2)  # half of the second segment
    for number in (s2 - 1, s2):  # oldest first, as the writer removes them
        FileSystem().remove(segment_path(wal, number))
    with pytest.raises(CorruptionError, match=r"is gone|was removed"):
        follower.poll(CommitRecorder(), None)
