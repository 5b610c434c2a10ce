"""``--progress`` / ``--no-progress`` of the long commands (import, backup, restore,
verify-backup, migrate): a bar on standard error, by default only when standard
error is a terminal (so scripts and logs get no bar)."""

from __future__ import annotations

import argparse
import sys


def add_progress_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--progress`` / ``--no-progress`` to ``parser``."""
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="draw a progress bar on standard error (default: when "
                             "standard error is a terminal)")


def progress_wanted(args: argparse.Namespace) -> bool:
    """Whether the command draws its progress bar."""
    return sys.stderr.isatty() if args.progress is None else bool(args.progress)
