"""Which database directory a command works on, and opening it with errors that say
what to do.

The directory comes from ``--data-dir`` (before or after the command name) or else the
``COLIBRI_DATA_DIR`` environment variable.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import colibri_mm as cm

from ..format_switch import switch_pending
from ..storage.files import FileSystem
from ..storage.meta import META_NAME
from .exit_codes import CommandError, UsageError

ENV_DATA_DIR = "COLIBRI_DATA_DIR"


def add_data_dir_option(parser: argparse.ArgumentParser, default: Any) -> None:
    """Add ``--data-dir`` to ``parser``.

    The top-level parser uses ``default=None``; subcommands use ``argparse.SUPPRESS``
    so that a ``--data-dir`` given before the command name is not overwritten.
    """
    parser.add_argument("--data-dir", metavar="DIR", default=default,
                        help=f"the database directory (default: ${ENV_DATA_DIR})")


def data_dir(args: argparse.Namespace) -> Path:
    """The database directory named by ``--data-dir`` or ``COLIBRI_DATA_DIR``."""
    given = getattr(args, "data_dir", None) or os.environ.get(ENV_DATA_DIR)
    if not given:
        raise UsageError(f"no database directory: pass --data-dir DIR or set {ENV_DATA_DIR}")
    return Path(given)


def open_database(args: argparse.Namespace, *, readonly: bool,
                  recovery: str = "point_in_time") -> cm.Database:
    """Open the command's database (it must exist; ``coldb init`` makes one).

    A read-only open that skipped part of the WAL (a torn or damaged tail) prints a
    one-line warning on standard error: the data shown may lack those commits.
    """
    directory = data_dir(args)
    if not directory.exists():
        raise CommandError(f"{directory}: no such directory (`coldb init {directory}` "
                           "creates a database)")
    if not directory.is_dir():
        raise CommandError(f"{directory} is not a directory")
    if not (directory / META_NAME).exists() and not switch_pending(FileSystem(), directory):
        raise CommandError(f"{directory} is not a colibri-mm database (it has no "
                           f"{META_NAME}; `coldb init` creates one)")
    db = cm.connect(directory, readonly=readonly, recovery=recovery)
    dropped = db.recovery.dropped
    if readonly and dropped:
        more = f" (and {len(dropped) - 1} more)" if len(dropped) > 1 else ""
        print(f"coldb: warning: this read did not replay part of the WAL: {dropped[0]}{more}; "
              "`coldb check` reports it, `coldb recover` repairs it", file=sys.stderr)
    return db
