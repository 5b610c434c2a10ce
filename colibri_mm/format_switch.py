"""Switching a database directory from one complete set of files to another, so that a
crash at any moment leaves exactly one whole database: the commit point of a format
migration and of its rollback.

The database's files are :data:`DATABASE_FILES` (the meta, the data file, the WAL
directory; ``LOCK`` is not part of a database's state and never moves). A switch
replaces them by the files of a sibling directory, ``incoming`` (e.g.
``.migrate-1.0``), keeping the replaced ones in ``outgoing`` (e.g. ``.rollback-0.9``):

1. The caller has written and synced every incoming file and both directories, and
   holds the write lock. No other process may have the database open for reading
   (a reader announces itself in the reader table of ``LOCK``): its open files would
   be moved away under it. :func:`refuse_open_readers` checks, and :func:`switch`
   checks again just before its commit point.
2. The **journal** ``SWITCH`` is written beside ``SWITCH.partial``, synced and renamed
   into place, and the directory synced: the commit point. Before it, the directory
   holds the old database untouched (an incoming directory without a journal is
   garbage, deleted by the next migration). After it, the database *is* the incoming
   one, whatever the files say.
3. The old files move into ``outgoing`` (meta first), the directories are synced, the
   incoming files move into place (meta last), the directories are synced, the
   journal is removed.

Each move is done only if its source still exists, and incoming files move only
after every old one has moved out, so step 3 can be repeated from any point:
:func:`finish_switch`, called by every open and every migration before anything
else, completes a switch that a crash interrupted. Between the two halves of step 3
the directory has no meta, so even an engine that knows nothing of the journal finds
"no database" rather than a mixture of two.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from .errors import CorruptionError, LockedError
from .storage.files import FileSystem
from .storage.meta import META_NAME
from .storage.pagefile import DATA_NAME
from .txn.reader_table import ReaderTable
from .txn.writer_lock import ProcessWriteLock

JOURNAL_NAME = "SWITCH"
WAL_NAME = "wal"
DATABASE_FILES = (META_NAME, DATA_NAME, WAL_NAME)
"""What a switch moves, meta first (out) and last (in)."""
SWITCH_LOCK_TIMEOUT = 60.0
"""Seconds an open waits for a running switch (a few renames) to finish."""


def switch(fs: FileSystem, directory: Path, incoming: str, outgoing: str) -> None:
    """Make the database files of ``directory/incoming`` the database, moving the
    current ones into ``directory/outgoing`` (see the module docstring).

    The caller holds the write lock, and has synced the incoming files and their
    directories; ``outgoing`` must not hold database files yet. Raises
    :class:`LockedError`, having changed nothing, while another process has the
    database open for reading.
    """
    refuse_open_readers(fs, directory, "switching its files")
    move_in = [name for name in DATABASE_FILES if fs.exists(directory / incoming / name)]
    move_out = [name for name in DATABASE_FILES if fs.exists(directory / name)]
    fs.mkdir(directory / outgoing)
    fs.sync_dir(directory)
    journal: dict[str, object] = {"incoming": incoming, "outgoing": outgoing,
                                  "move_out": move_out, "move_in": move_in}
    partial = directory / (JOURNAL_NAME + ".partial")
    file = fs.open(partial, create=True)
    try:
        file.truncate(0)
        file.pwrite(json.dumps(journal).encode(), 0)
        file.sync()
    finally:
        file.close()
    fs.rename(partial, directory / JOURNAL_NAME)
    fs.sync_dir(directory)  # the commit point
    _complete(fs, directory, journal)


def refuse_open_readers(fs: FileSystem, directory: Path, action: str) -> None:
    """Raise :class:`LockedError` naming them if processes other than this one have
    the database in ``directory`` open for reading: ``action`` would replace the
    files under them."""
    readers = ReaderTable(fs, directory)
    try:
        pids = readers.other_readers()
    finally:
        readers.close()
    if pids:
        many = len(pids) > 1
        them = "them" if many else "it"
        raise LockedError(
            f"{len(pids)} other process{'es' if many else ''} "
            f"(pid {', '.join(map(str, pids))}) {'have' if many else 'has'} "
            f"{directory} open for reading, and {action} would replace the files under "
            f"{them}: close {them} (a coldb-server, a connect(..., readonly=True) in a "
            "notebook or script) and try again; nothing was changed")


def switch_pending(fs: FileSystem, directory: Path) -> bool:
    """Whether a committed switch still has files to move (a crash interrupted it)."""
    return fs.exists(directory / JOURNAL_NAME)


def finish_switch(fs: FileSystem, directory: Path) -> None:
    """Complete a switch that a crash interrupted after its commit point (nothing to
    do, and nothing written, when none is pending). Waits for the write lock: a
    process switching right now finishes on its own."""
    if not switch_pending(fs, directory):
        return
    lock = ProcessWriteLock(fs, directory, SWITCH_LOCK_TIMEOUT)
    try:
        if switch_pending(fs, directory):
            _complete(fs, directory, _read_journal(fs, directory))
    finally:
        lock.release()


def _read_journal(fs: FileSystem, directory: Path) -> dict[str, object]:
    path = directory / JOURNAL_NAME
    file = fs.open(path, writable=False)
    try:
        data = file.pread(file.size(), 0)
    finally:
        file.close()
    try:
        journal = json.loads(data)
    except ValueError:
        journal = None
    if not isinstance(journal, dict) or not {"incoming", "outgoing", "move_out",
                                             "move_in"} <= journal.keys():
        raise CorruptionError("the switch journal is damaged: move the files by hand "
                              "(see docs/ARCHITECTURE.md, format migration)", path=str(path))
    return journal


def _names(value: object) -> Iterable[str]:
    return [name for name in value if name in DATABASE_FILES] \
        if isinstance(value, list) else []


def _complete(fs: FileSystem, directory: Path, journal: dict[str, object]) -> None:
    """Step 3 of the module docstring; repeatable from any point."""
    incoming = directory / str(journal["incoming"])
    outgoing = directory / str(journal["outgoing"])
    for name in _names(journal["move_out"]):
        if fs.exists(directory / name) and not fs.exists(outgoing / name):
            fs.rename(directory / name, outgoing / name)
    fs.sync_dir(outgoing)
    fs.sync_dir(directory)
    for name in reversed(list(_names(journal["move_in"]))):
        if fs.exists(incoming / name):
            fs.rename(incoming / name, directory / name)
    fs.sync_dir(directory)
    fs.sync_dir(incoming)
    fs.remove(directory / JOURNAL_NAME)
    fs.sync_dir(directory)
