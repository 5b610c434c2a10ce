"""A migration run in a child process that SIGKILLs itself just before its Nth
counted file operation (the crash harness of ``tests/test_migrate.py``).

Usage: ``python migrate_child.py DIR N`` (N = 0: never kill). Prints ``ready`` once
imported (so a parent timing a kill does not count the imports), then ``done K``
with the number K of counted operations if it was not killed.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from colibri_mm.migrate import migrate
from colibri_mm.storage.faults import FaultyFileSystem


class KillingFileSystem(FaultyFileSystem):
    """Counts mutating operations like :class:`FaultyFileSystem` and kills the process
    (SIGKILL: no cleanup runs) when the ``kill_at``-th is about to happen."""

    def __init__(self, kill_at: int) -> None:
        super().__init__()
        self._kill_at = kill_at

    def _count(self, kind: str, path: Path | str):  # type: ignore[no-untyped-def]
        if self._kill_at and self.operations + 1 >= self._kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return super()._count(kind, path)


def main() -> int:
    directory, kill_at = Path(sys.argv[1]), int(sys.argv[2])
    fs = KillingFileSystem(kill_at)
    print("ready", flush=True)
    migrate(directory, file_system=fs)
    print(f"done {fs.operations}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
