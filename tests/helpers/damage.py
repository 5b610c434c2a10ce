"""Copies of a database with one byte flipped or a file cut short, for the
corruption tests."""

import shutil
from pathlib import Path


def damaged_copy(pristine: Path, target: Path, file: Path, offset: int,
                 truncate: bool) -> None:
    """Copy ``pristine`` to ``target`` (replacing it), then flip a bit of byte
    ``offset`` of ``file`` (a path inside ``pristine``) or cut the file there."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(pristine, target)
    victim = target / file.relative_to(pristine)
    data = bytearray(victim.read_bytes())
    if truncate:
        del data[offset:]
    else:
        data[offset] ^= 0x04
    victim.write_bytes(bytes(data))
