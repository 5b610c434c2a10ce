"""Modules of the ``perf`` package for tests (``perf`` sits at the repository root,
which is not on ``sys.path`` under pytest)."""

import importlib
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def perf_module(name: str) -> ModuleType:
    """``perf.<name>``, imported with the repository root on ``sys.path``."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module(f"perf.{name}")
