"""Entry point of ``coldb-server``.

The server is built by a later issue. Until then the command answers ``--version``
and ``--help`` and refuses to start with a one-line reason and exit code 2, rather
than pretending to serve.
"""

import argparse
import sys
from collections.abc import Sequence

from .._version import __version__


def build_parser() -> argparse.ArgumentParser:
    """The ``coldb-server`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="coldb-server",
        description="Serve a colibri-mm database (not available in this version).",
    )
    parser.add_argument("--version", action="version", version=f"coldb-server {__version__}")
    parser.add_argument("--config", help="configuration file (JSON)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``coldb-server`` with ``argv``; return the exit code."""
    build_parser().parse_args(argv)
    print(
        f"coldb-server: the server is not part of colibri-mm {__version__} yet",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
