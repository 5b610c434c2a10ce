"""Fixtures of the server tests: a fresh database with durability ``full``."""

from collections.abc import Iterator
from pathlib import Path

import pytest

import colibri_mm as cm


@pytest.fixture
def db(tmp_path: Path) -> Iterator[cm.Database]:
    """A new database in ``tmp_path`` (closed after the test)."""
    with cm.connect(tmp_path / "db", create=True, durability="full") as database:
        yield database
