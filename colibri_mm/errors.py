"""The one exception tree of colibri-mm.

Every error the engine raises on purpose derives from :class:`Error`, and each
message names what was wrong and where (file, offset, key, limit). Callers catch
``colibri_mm.Error`` for "anything the database refused or found", or a subclass.
"""


import errno


class Error(Exception):
    """Base class of every colibri-mm error."""


class CorruptionError(Error):
    """Stored bytes fail a checksum or a structural check.

    ``path`` and ``offset`` say where, when known.
    """

    def __init__(self, message: str, *, path: str | None = None,
                 offset: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f" ({path}" + (f" at offset {offset}" if offset is not None else "") + ")"
        super().__init__(message + where)
        self.path = path
        self.offset = offset


class FormatVersionError(Error):
    """The database was written by a format this engine cannot read."""


class LockedError(Error):
    """Another process holds the database's write lock (its pid is in the message)."""


class ReadOnlyError(Error):
    """A write was attempted through a read-only database, snapshot or transaction."""


class LimitError(Error, ValueError):
    """A key, value or request exceeds a configured limit."""


class SchemaError(Error, ValueError):
    """A table schema, column, name or primary key is invalid (the message names it)."""


class ConstraintError(Error, ValueError):
    """A write breaks a table constraint (duplicate or null primary key); the message
    names the key and the column. Nothing of the transaction's call is applied."""


class TableNotFoundError(Error, KeyError):
    """No table has the given name."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class TableExistsError(Error):
    """A table with the given name already exists."""


class ClosedError(Error):
    """The database, transaction or snapshot has been closed."""


class TransactionError(Error):
    """A transaction was used wrongly (nested, used after commit, ...)."""


class DurabilityError(Error):
    """A write or fsync of the write-ahead log failed, so a commit is not durable.

    The commit is not acknowledged. The database refuses further work until it is
    reopened; reopening recovers every commit acknowledged before the failure.
    """


class DiskFullError(DurabilityError):
    """The file system holding the database is full (``ENOSPC``, or a quota).

    Raised where the write failed. For the write-ahead log it is a
    :class:`DurabilityError`: the commit is not acknowledged and the database must be
    reopened once space is freed (nothing acknowledged is lost). An import or a
    checkpoint that runs out of space is undone and the database goes on: the
    import's transaction is aborted, the checkpoint's changes stay in the WAL.
    """


DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
"""``errno`` values that mean the file system (or the user's quota) is full."""


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error`` is an ``OSError`` saying the file system is full."""
    return isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS


class ConfigError(Error, ValueError):
    """An option or configuration value is invalid (the message names it)."""


class BackupError(Error):
    """A backup cannot be taken or restored as asked: the target exists or is not
    empty, or the source is not a colibri-mm backup (damage to a backup's files is
    a :class:`CorruptionError` naming the file)."""


class MigrationError(Error):
    """A format migration or its rollback was refused (the message says why and what
    to do); nothing was changed."""
