"""Fault injection for the file layer: failing operations and simulated power loss.

This module owns :class:`FaultyFileSystem`, a drop-in
:class:`~colibri_mm.storage.files.FileSystem` for tests and crash campaigns, modelled
on LevelDB's fault-injection ``Env`` and SQLite's I/O-error loop. It does the real I/O
(files on disk really change) and, on the side, counts operations, fails the ones a
test chose, and remembers what a power cut could still take back.

Counting and failing
--------------------
Every mutating operation is counted, by kind: ``"pwrite"``, ``"truncate"``,
``"sync"``, ``"datasync"`` (methods of :class:`FaultyFile`), ``"open"`` (only an
``open`` with ``create=True``), ``"rename"``, ``"remove"`` and ``"sync_dir"``. Reads,
``size``, maps, locks, ``mkdir``, ``exists`` and ``listdir`` are not counted and
never fail. :meth:`FaultyFileSystem.fail_at` arms a fault: the n-th matching
operation after the call raises ``OSError`` (``EIO`` unless told otherwise, e.g.
``ENOSPC``) naming the operation and the path, once or, with ``persistent=True``, for
every matching operation from then on (a dead disk). A failed operation does nothing,
except a failed ``pwrite`` asked to tear, which first writes a prefix of its data. A
failed ``sync``/``datasync`` leaves the file's writes unsynced (no page is dropped as
Linux does after an fsync error). SQLite's loop::

    fs = FaultyFileSystem(); workload(fs); count = fs.operations
    for n in range(1, count + 1):
        fs = FaultyFileSystem(); fs.fail_at(n)
        ...run the workload, expect the failure, check, reopen...

Power-loss model
----------------
File data. Per file (per inode: the record follows a file through renames and after
removal), the module keeps the ordered list of writes and truncations since the
file's last successful ``sync`` or ``datasync``, each with the bytes it overwrote and
the size before it. The durable image of a file is what undoing all of them gives.
:meth:`FaultyFileSystem.power_loss` rebuilds each file as the durable image plus a
random selection of its unsynced changes, applied in their original order:

- ``model="prefix"`` (default): a random prefix of the changes survives, and the
  first change after it may survive torn (a prefix of its bytes, cut at any byte,
  so also in the middle of a page); the rest is lost. This is what ext4 with
  ``data=ordered`` mostly gives.
- ``model="independent"``: each change is independently kept, lost, or (a write)
  torn, like a disk cache that reorders writes. A kept write beyond a lost one may
  leave a hole, which reads as zeros, as a hole does.

So every synced byte is kept unless a later unsynced write over it survives, no byte
appears that was never written, and a file's size returns to its synced size unless
unsynced growth survives. Files are independent of each other.

Directory entries. Creations (``open`` that made the file), renames and removals are
kept in one ordered journal until ``sync_dir`` of their directory (both directories,
for a rename across directories) makes them durable; ``sync`` of a file does not make
its name durable. A durable entry also makes durable every earlier entry change on a
name it touches, or the result could not be a state the directory ever passed
through. At power loss a random suffix of the journal is undone (``prefix``), or
random changes together with every later change on the same names
(``independent``): an undone creation makes the file vanish, an undone rename puts
the file back under its old name (and restores the file it replaced), an undone
removal brings the file back with its durable content. Renames stay atomic.

Not modelled: directories (``mkdir`` is durable at once), files that existed before
the file system object saw them (durable), metadata such as permissions, and
corruption of bytes that were synced. :meth:`FaultyFileSystem.drop_unsynced` is the
deterministic power cut that keeps nothing unsynced.

Memory: a file with unsynced changes costs about twice the unsynced bytes (new and
overwritten); a removed or replaced file is held in memory until its removal is
durable. Files in tests are small, so this stays small.
"""

from __future__ import annotations

import errno
import os
import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from colibri_mm.storage.files import BytesLike, File, FileSystem

#: The kinds of operation that are counted and can be failed.
OPERATION_KINDS: Final[frozenset[str]] = frozenset(
    {"pwrite", "truncate", "sync", "datasync", "open", "rename", "remove", "sync_dir"}
)

#: How unsynced changes survive a power cut (see the module docstring).
PowerLossModel = Literal["prefix", "independent"]


@dataclass(frozen=True)
class PowerLossReport:
    """What a simulated power cut kept and took back.

    Attributes
    ----------
    writes_kept, writes_torn, writes_dropped : int
        Unsynced writes and truncations of surviving files that survived whole,
        survived as a prefix of their bytes, or were lost.
    entries_kept, entries_undone : int
        Unsynced directory-entry changes (creations, renames, removals) that
        survived or were undone.
    """

    writes_kept: int = 0
    writes_torn: int = 0
    writes_dropped: int = 0
    entries_kept: int = 0
    entries_undone: int = 0


@dataclass
class _Write:
    """An unsynced ``pwrite``: its bytes, and the bytes and size it replaced."""

    offset: int
    data: bytes
    old: bytes
    old_size: int


@dataclass
class _Truncate:
    """An unsynced ``truncate``: the new size, and the bytes and size it replaced."""

    size: int
    old: bytes
    old_size: int


_Change = _Write | _Truncate


@dataclass(eq=False)
class _Inode:
    """One file as the fault layer tracks it, whichever name it has now."""

    path: str | None
    pending: list[_Change] = field(default_factory=list)
    # The current content once the file has no name (removed or replaced), so that
    # undoing the removal can bring it back.
    detached: bytearray | None = None


@dataclass(eq=False)
class _EntryChange:
    """An unsynced directory-entry change."""

    kind: Literal["create", "rename", "remove"]
    path: str
    inode: _Inode
    dst: str | None = None
    replaced: _Inode | None = None
    unsynced_dirs: set[str] = field(default_factory=set)

    def names(self) -> tuple[str, ...]:
        return (self.path,) if self.dst is None else (self.path, self.dst)


@dataclass
class _Fault:
    """An armed fault (see :meth:`FaultyFileSystem.fail_at`)."""

    n: int
    kinds: frozenset[str] | None
    persistent: bool
    errno_value: int
    torn_bytes: int | None
    seen: int = 0


def _key(path: Path | str) -> str:
    return os.path.abspath(os.fspath(path))


def _read_all(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _write(content: bytearray, offset: int, data: bytes) -> None:
    if offset > len(content):
        content.extend(bytes(offset - len(content)))
    content[offset:offset + len(data)] = data


def _resize(content: bytearray, size: int) -> None:
    if size < len(content):
        del content[size:]
    else:
        content.extend(bytes(size - len(content)))


def _apply(content: bytearray, change: _Change, keep: int | None = None) -> None:
    """Redo ``change``; for a write, only its first ``keep`` bytes if given."""
    if isinstance(change, _Write):
        _write(content, change.offset, change.data[:keep])
    else:
        _resize(content, change.size)


def _undo(content: bytearray, change: _Change) -> None:
    """Undo ``change``, which is the last change applied to ``content``."""
    if isinstance(change, _Write):
        _write(content, change.offset, change.old)
        _resize(content, change.old_size)
    else:
        _resize(content, change.size)
        content.extend(change.old)
        _resize(content, change.old_size)


class FaultyFile(File):
    """A :class:`File` of a :class:`FaultyFileSystem`: real I/O, counted and recorded.

    Its mutating methods can fail as armed by :meth:`FaultyFileSystem.fail_at`;
    after :meth:`FaultyFileSystem.power_loss` they raise ``OSError(EIO)`` (the
    handle belongs to the machine that lost power).
    """

    def __init__(self, fs: FaultyFileSystem, path: Path, fd: int, inode: _Inode,
                 generation: int) -> None:
        super().__init__(path, fd)
        self._fs = fs
        self._inode = inode
        self._generation = generation

    def _check_live(self) -> None:
        if self._generation != self._fs._generation:
            raise OSError(errno.EIO, "file handle opened before a simulated power loss",
                          str(self.path))

    def pwrite(self, data: BytesLike, offset: int) -> None:
        """Write all of ``data`` at ``offset``, recorded as unsynced until a sync."""
        fs = self._fs
        with fs._lock:
            self._check_live()
            payload = bytes(memoryview(data).cast("B"))  # type: ignore[arg-type]
            fault = fs._count("pwrite", self.path)
            if fault is not None:
                if fault.torn_bytes:
                    self._write_recorded(payload[:fault.torn_bytes], offset)
                raise fs._error(fault, "pwrite", self.path)
            self._write_recorded(payload, offset)

    def _write_recorded(self, data: bytes, offset: int) -> None:
        if not data:
            return
        old_size = self.size()
        old = self.pread(len(data), offset) if offset < old_size else b""
        # A write the real OS fails is not recorded (its bytes count as durable).
        super().pwrite(data, offset)
        self._record(_Write(offset, data, old, old_size))

    def truncate(self, size: int) -> None:
        """Set the file's size, recorded as unsynced until a sync."""
        fs = self._fs
        with fs._lock:
            self._check_live()
            fault = fs._count("truncate", self.path)
            if fault is not None:
                raise fs._error(fault, "truncate", self.path)
            old_size = self.size()
            old = self.pread(old_size - size, size) if size < old_size else b""
            super().truncate(size)
            self._record(_Truncate(size, old, old_size))

    def sync(self) -> None:
        """``fsync``: the file's recorded writes become durable (not its name)."""
        self._sync("sync")

    def datasync(self) -> None:
        """``fdatasync``: the file's recorded writes become durable (not its name)."""
        self._sync("datasync")

    def _sync(self, kind: str) -> None:
        fs = self._fs
        with fs._lock:
            self._check_live()
            fault = fs._count(kind, self.path)
            if fault is not None:
                raise fs._error(fault, kind, self.path)
            if kind == "sync":
                super().sync()
            else:
                super().datasync()
            self._inode.pending.clear()

    def _record(self, change: _Change) -> None:
        self._inode.pending.append(change)
        if self._inode.detached is not None:
            _apply(self._inode.detached, change)


class FaultyFileSystem(FileSystem):
    """A real file system that counts, fails and can lose power (see module docstring).

    Thread safe: mutating operations are serialised by one lock.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._generation = 0
        self._counts: dict[str, int] = dict.fromkeys(sorted(OPERATION_KINDS), 0)
        self._fault: _Fault | None = None
        self._injected = 0
        self._by_path: dict[str, _Inode] = {}
        self._journal: list[_EntryChange] = []

    # -- counting and failing ------------------------------------------------------

    @property
    def operations(self) -> int:
        """Counted operations so far (failed ones included), all kinds together."""
        return sum(self._counts.values())

    @property
    def operations_by_kind(self) -> dict[str, int]:
        """Counted operations so far, per kind (a copy)."""
        return dict(self._counts)

    @property
    def faults_injected(self) -> int:
        """How many operations have been failed on purpose so far."""
        return self._injected

    def fail_at(self, n: int, kinds: Iterable[str] | None = None, *,
                persistent: bool = False, fail_with: int = errno.EIO,
                torn_bytes: int | None = None) -> None:
        """Fail the n-th matching operation from now on (replacing any armed fault).

        Parameters
        ----------
        n : int
            1 fails the next matching operation.
        kinds : iterable of str, optional
            Count only these kinds (from :data:`OPERATION_KINDS`); all if omitted.
        persistent : bool
            Also fail every matching operation after the n-th (a dead disk), until
            :meth:`clear_faults`.
        fail_with : int
            The ``errno`` of the raised ``OSError``, e.g. ``errno.ENOSPC``.
        torn_bytes : int, optional
            A failing ``pwrite`` first writes this many bytes of its data (at most
            all of it), recorded as an unsynced write; other kinds ignore it.

        Raises
        ------
        ValueError
            ``n`` is below 1, ``torn_bytes`` is negative, or a kind is unknown.
        """
        if n < 1:
            raise ValueError(f"fail_at: n must be at least 1, got {n}")
        if torn_bytes is not None and torn_bytes < 0:
            raise ValueError(f"fail_at: torn_bytes must not be negative, got {torn_bytes}")
        chosen = None if kinds is None else frozenset(kinds)
        if chosen is not None and not chosen <= OPERATION_KINDS:
            unknown = ", ".join(sorted(chosen - OPERATION_KINDS))
            raise ValueError(f"fail_at: unknown operation kind(s) {unknown}; "
                             f"known: {', '.join(sorted(OPERATION_KINDS))}")
        with self._lock:
            self._fault = _Fault(n, chosen, persistent, fail_with, torn_bytes)

    def clear_faults(self) -> None:
        """Disarm any armed fault."""
        with self._lock:
            self._fault = None

    def _count(self, kind: str, path: Path | str) -> _Fault | None:
        """Count one operation; the armed fault if this operation must fail."""
        self._counts[kind] += 1
        fault = self._fault
        if fault is None or (fault.kinds is not None and kind not in fault.kinds):
            return None
        fault.seen += 1
        if fault.seen < fault.n:
            return None
        if not fault.persistent:
            self._fault = None
        self._injected += 1
        return fault

    def _error(self, fault: _Fault, kind: str, path: Path | str,
               dst: Path | str | None = None) -> OSError:
        message = (f"{os.strerror(fault.errno_value)} (injected fault: {kind}, "
                   f"operation {self.operations})")
        if dst is None:
            return OSError(fault.errno_value, message, str(path))
        return OSError(fault.errno_value, message, str(path), None, str(dst))

    # -- the file system -----------------------------------------------------------

    def open(self, path: Path, *, create: bool = False, exclusive: bool = False,
             writable: bool = True) -> FaultyFile:
        """Open ``path``; a creation is an unsynced entry until ``sync_dir``."""
        key = _key(path)
        with self._lock:
            existed = True
            if create:
                fault = self._count("open", path)
                if fault is not None:
                    raise self._error(fault, "open", path)
                existed = os.path.lexists(key)
            fd = super().open(path, create=create, exclusive=exclusive,
                              writable=writable).fileno()
            if existed:
                inode = self._inode_at(key)
            else:
                inode = _Inode(key)
                self._journal.append(_EntryChange("create", key, inode,
                                                  unsynced_dirs={os.path.dirname(key)}))
            self._by_path[key] = inode
            return FaultyFile(self, path, fd, inode, self._generation)

    def sync_dir(self, path: Path) -> None:
        """``fsync`` a directory: entry changes in it become durable."""
        with self._lock:
            fault = self._count("sync_dir", path)
            if fault is not None:
                raise self._error(fault, "sync_dir", path)
            super().sync_dir(path)
            directory = _key(path)
            for change in self._journal:
                change.unsynced_dirs.discard(directory)
            self._prune_journal()

    def rename(self, src: Path, dst: Path) -> None:
        """Rename ``src`` to ``dst``; undoable until ``sync_dir`` of both directories."""
        source, target = _key(src), _key(dst)
        with self._lock:
            fault = self._count("rename", src)
            if fault is not None:
                raise self._error(fault, "rename", src, dst)
            if source == target:
                super().rename(src, dst)
                return
            moving = self._inode_at(source)
            replaced = self._by_path.get(target)
            if replaced is None and os.path.lexists(target):
                replaced = _Inode(target)
            replaced_content = None if replaced is None else self._content(replaced)
            super().rename(src, dst)
            if replaced is not None and replaced_content is not None:
                self._detach(replaced, replaced_content)
            self._by_path.pop(source, None)
            moving.path = target
            self._by_path[target] = moving
            self._journal.append(_EntryChange(
                "rename", source, moving, dst=target, replaced=replaced,
                unsynced_dirs={os.path.dirname(source), os.path.dirname(target)}))

    def remove(self, path: Path) -> None:
        """Delete a file; undoable until ``sync_dir`` of its directory."""
        key = _key(path)
        with self._lock:
            fault = self._count("remove", path)
            if fault is not None:
                raise self._error(fault, "remove", path)
            inode = self._inode_at(key)
            content = self._content(inode) if os.path.lexists(key) else None
            super().remove(path)
            if content is not None:
                self._detach(inode, content)
            self._by_path.pop(key, None)
            self._journal.append(_EntryChange("remove", key, inode,
                                              unsynced_dirs={os.path.dirname(key)}))

    # -- bookkeeping ---------------------------------------------------------------

    def _inode_at(self, key: str) -> _Inode:
        """The tracked file named ``key``, or a new record (not yet registered)."""
        inode = self._by_path.get(key)
        return _Inode(key) if inode is None else inode

    def _content(self, inode: _Inode) -> bytes:
        """The current bytes of a tracked file (with its unsynced changes)."""
        if inode.detached is not None:
            return bytes(inode.detached)
        assert inode.path is not None
        return _read_all(inode.path)

    def _detach(self, inode: _Inode, content: bytes) -> None:
        inode.detached = bytearray(content)
        inode.path = None

    def _prune_journal(self) -> None:
        """Drop durable entry changes, with every earlier change on the same names."""
        forced: set[str] = set()
        kept: list[_EntryChange] = []
        for change in reversed(self._journal):
            if not change.unsynced_dirs or forced.intersection(change.names()):
                forced.update(change.names())
            else:
                kept.append(change)
        kept.reverse()
        self._journal = kept

    # -- power loss ----------------------------------------------------------------

    def power_loss(self, rng: random.Random, *,
                   model: PowerLossModel = "prefix") -> PowerLossReport:
        """Rewrite the files on disk into a state a power cut could leave.

        Call it once the engine's objects are closed or abandoned; their handles
        fail from now on. Tracking starts afresh: what is on disk now is durable.
        Armed faults stay armed.

        Parameters
        ----------
        rng : random.Random
            Source of every choice (a seeded one makes the result reproducible).
        model : {"prefix", "independent"}
            How unsynced changes survive (see the module docstring).

        Returns
        -------
        PowerLossReport
            What was kept, torn and lost.
        """
        if model not in ("prefix", "independent"):
            raise ValueError(f"power_loss: unknown model {model!r}")
        with self._lock:
            return self._lose_power(rng, model)

    def drop_unsynced(self) -> PowerLossReport:
        """The deterministic power cut: keep nothing that was not synced.

        Every file becomes its durable image and every entry change not made
        durable by ``sync_dir`` is undone. Handles fail from now on, as after
        :meth:`power_loss`.
        """
        with self._lock:
            return self._lose_power(None, "prefix")

    def _lose_power(self, rng: random.Random | None,
                    model: PowerLossModel) -> PowerLossReport:
        journal = self._journal
        undone = self._choose_undone(rng, model)
        # The name -> file mapping the disk will show.
        final = dict(self._by_path)
        for change, undo in zip(reversed(journal), reversed(undone), strict=True):
            if not undo:
                continue
            if change.kind == "create":
                final.pop(change.path, None)
            elif change.kind == "remove":
                final[change.path] = change.inode
            else:
                assert change.dst is not None
                final[change.path] = change.inode
                if change.replaced is not None:
                    final[change.dst] = change.replaced
                else:
                    final.pop(change.dst, None)

        affected = {name for change in journal for name in change.names()}
        affected.update(key for key, inode in self._by_path.items() if inode.pending)
        counts = [0, 0, 0]
        built: dict[int, bytes] = {}
        targets: dict[str, bytes | None] = {}
        for path in sorted(affected):
            inode = final.get(path)
            if inode is None:
                targets[path] = None
            elif self._by_path.get(path) is inode and not inode.pending:
                continue  # unchanged on disk
            else:
                if id(inode) not in built:
                    built[id(inode)] = self._crash_content(inode, rng, model, counts)
                targets[path] = built[id(inode)]

        # Every byte is read before anything is written.
        for path, content in targets.items():
            if content is None:
                if os.path.lexists(path):
                    os.unlink(path)
            else:
                # A fresh inode: a map or a lock left by an abandoned engine object
                # never sees the rewritten file.
                temporary = path + ".power-loss"
                with open(temporary, "wb") as f:
                    f.write(content)
                os.replace(temporary, path)

        self._generation += 1
        self._by_path = {}
        self._journal = []
        return PowerLossReport(writes_kept=counts[0], writes_torn=counts[1],
                               writes_dropped=counts[2],
                               entries_kept=undone.count(False),
                               entries_undone=undone.count(True))

    def _choose_undone(self, rng: random.Random | None,
                       model: PowerLossModel) -> list[bool]:
        """Which journal entries to undo: a set closed under later changes of a name."""
        n = len(self._journal)
        if rng is None:
            return [True] * n
        if model == "prefix":
            kept = rng.randint(0, n)
            return [i >= kept for i in range(n)]
        undone_names: set[str] = set()
        undone: list[bool] = []
        for change in self._journal:
            undo = rng.random() < 0.5 or bool(undone_names.intersection(change.names()))
            if undo:
                undone_names.update(change.names())
            undone.append(undo)
        return undone

    def _crash_content(self, inode: _Inode, rng: random.Random | None,
                       model: PowerLossModel, counts: list[int]) -> bytes:
        """The durable image of a file plus the unsynced changes chosen to survive."""
        content = bytearray(self._content(inode))
        pending = inode.pending
        for change in reversed(pending):
            _undo(content, change)
        keeps = self._choose_kept(pending, rng, model)
        for change, keep in zip(pending, keeps, strict=True):
            if keep is None:
                counts[2] += 1
                continue
            full = not isinstance(change, _Write) or keep == len(change.data)
            counts[0 if full else 1] += 1
            _apply(content, change, keep)
        return bytes(content)

    @staticmethod
    def _choose_kept(pending: list[_Change], rng: random.Random | None,
                     model: PowerLossModel) -> list[int | None]:
        """Per change: None (lost) or how many of its bytes survive."""
        def whole(change: _Change) -> int:
            return len(change.data) if isinstance(change, _Write) else 0

        def torn(change: _Change) -> int | None:
            if rng is None or not isinstance(change, _Write) or len(change.data) < 2:
                return None
            return rng.randrange(1, len(change.data))

        if rng is None:
            return [None] * len(pending)
        if model == "prefix":
            survivors = rng.randint(0, len(pending))
            keeps: list[int | None] = [whole(c) for c in pending[:survivors]]
            keeps.extend(None for _ in pending[survivors:])
            if survivors < len(pending) and rng.random() < 0.5:
                keeps[survivors] = torn(pending[survivors])
            return keeps
        keeps = []
        for change in pending:
            outcome = rng.randrange(3)
            if outcome == 0:
                keeps.append(whole(change))
            elif outcome == 1:
                keeps.append(None)
            else:
                cut = torn(change)
                keeps.append(whole(change) if cut is None else cut)
        return keeps
