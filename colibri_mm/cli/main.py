"""Entry point of ``coldb``: argument parsing and dispatch to subcommands.

Subcommands arrive with the storage core and later issues; today ``coldb --version``
reports the package and format versions.
"""

import argparse
import sys
from collections.abc import Sequence

from .._version import __version__


def build_parser() -> argparse.ArgumentParser:
    """The ``coldb`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="coldb",
        description="Operate colibri-mm databases.",
    )
    parser.add_argument("--version", action="version", version=f"coldb {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``coldb`` with ``argv`` (default: the process arguments); return the exit code."""
    parser = build_parser()
    parser.parse_args(argv)
    parser.print_help(sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
