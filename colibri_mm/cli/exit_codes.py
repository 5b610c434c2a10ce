"""Exit statuses of ``coldb``, the exception a command raises to end with one, and
the parser class that words usage errors the same way.

Every failure ends with a non-zero status and one line ``coldb: error: <reason>`` on
standard error (usage errors print the usage line first, as argparse does).
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

OK = 0
NOT_FOUND = 1
"""``get`` or ``delete`` of a key that does not exist."""
CHECK_FAILED = 1
"""``check`` found damage. Shares status 1 with :data:`NOT_FOUND`: "the answer is no"."""
USAGE = 2
"""Bad or missing arguments (argparse's own status for them)."""
DATABASE_ERROR = 3
"""The database or the file system refused: not a database, already exists, locked by
another process, corruption, a limit, an I/O error."""
INTERNAL_ERROR = 4
"""A bug in colibri-mm: the traceback is printed."""
INTERRUPTED = 130
"""Interrupted by Ctrl-C (128 + SIGINT, as shells report it)."""
BROKEN_PIPE = 141
"""Standard output was closed early, e.g. piped into ``head`` (128 + SIGPIPE)."""

EPILOG = """\
exit status:
  0    success
  1    not found (a missing key or table), or check found damage
  2    usage error: bad or missing arguments or option values
  3    database or file error: not a database, already exists, locked by another
       process, corruption, a size limit, an I/O error
  4    internal error (a bug in colibri-mm; the traceback is printed)
  130  interrupted (Ctrl-C)
  141  standard output closed early (e.g. piped into head)
Errors print one line "coldb: error: <reason>" on standard error.
"""


class CommandError(Exception):
    """Ends a command with ``status`` and the one-line reason ``message``."""

    def __init__(self, message: str, status: int = DATABASE_ERROR) -> None:
        super().__init__(message)
        self.status = status


class UsageError(CommandError):
    """The arguments do not make a valid command (exit status 2, usage line shown)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, USAGE)


class CommandParser(argparse.ArgumentParser):
    """argparse's parser, with usage errors worded ``coldb: error: ...`` for every command."""

    def error(self, message: str) -> NoReturn:
        """Print the usage line and ``coldb: error: message``; exit with status 2."""
        self.print_usage(sys.stderr)
        self.exit(USAGE, f"coldb: error: {message}\n")
