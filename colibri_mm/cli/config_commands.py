"""``coldb validate-config``, ``generate-config`` and ``hash-password``: the server's
configuration file (:mod:`colibri_mm.server.config`) and its password hash
(:mod:`colibri_mm.server.passwords`). None of them touches a database.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TYPE_CHECKING

from ..server.config import ConfigFileError, commented_default_config, load_config
from ..server.passwords import DEFAULT_ITERATIONS, MIN_ITERATIONS, hash_password
from .exit_codes import OK, USAGE, CommandError, CommandParser, UsageError

if TYPE_CHECKING:
    _Subparsers = argparse._SubParsersAction[CommandParser]


def add_commands(subparsers: _Subparsers, common: CommandParser) -> None:
    """Register the configuration commands; ``common`` holds the options every command
    takes (they ignore ``--data-dir``)."""
    validate = subparsers.add_parser(
        "validate-config", parents=[common], help="check a coldb-server configuration file",
        description="Check the coldb-server configuration file F. Prints 'Configuration "
                    "valid' and exits 0, or prints every problem, one per line naming the "
                    "key, and exits 2.")
    validate.add_argument("--file", metavar="F", required=True, help="the configuration file")
    validate.set_defaults(run=run_validate_config)

    generate = subparsers.add_parser(
        "generate-config", parents=[common], help="print the default server configuration",
        description="Print the default coldb-server configuration, every key preceded by "
                    "// comments saying what it does. coldb-server and validate-config "
                    "read it as it is: coldb generate-config > colibridb.conf.json")
    generate.set_defaults(run=run_generate_config)

    hash_command = subparsers.add_parser(
        "hash-password", parents=[common], help="print the hash of a server password",
        description="Read a password (from the terminal, asked twice, or with --stdin the "
                    "first line of standard input) and print its salted PBKDF2-SHA256 "
                    "hash, the value of security.password_hash. The password is never "
                    "an argument, so it stays out of the shell history and ps.")
    hash_command.add_argument("--stdin", action="store_true",
                              help="read the password from the first line of standard input")
    hash_command.add_argument("--iterations", metavar="N", type=int,
                              default=DEFAULT_ITERATIONS,
                              help=f"PBKDF2 iterations (default {DEFAULT_ITERATIONS}, "
                                   f"at least {MIN_ITERATIONS})")
    hash_command.set_defaults(run=run_hash_password)


def run_validate_config(args: argparse.Namespace) -> int:
    """``coldb validate-config --file F``: the problems go to standard output, one per
    line, then one ``coldb: error:`` line to standard error."""
    try:
        load_config(args.file)
    except ConfigFileError as e:
        for problem in e.problems:
            print(f"{e.source}: {problem}")
        count = len(e.problems)
        print(f"coldb: error: {e.source}: configuration invalid "
              f"({count} problem{'s' if count > 1 else ''})", file=sys.stderr)
        return USAGE
    print("Configuration valid")
    return OK


def run_generate_config(args: argparse.Namespace) -> int:
    """``coldb generate-config``."""
    sys.stdout.write(commented_default_config())
    return OK


def run_hash_password(args: argparse.Namespace) -> int:
    """``coldb hash-password [--stdin] [--iterations N]``."""
    if args.stdin:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Password again: ") != password:
            raise CommandError("the passwords differ", USAGE)
    if not password:
        raise UsageError("the password is empty")
    print(hash_password(password, iterations=args.iterations))
    return OK
