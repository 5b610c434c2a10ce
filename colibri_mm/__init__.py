"""colibri-mm: a memory-mapped, transactional, columnar-aware storage engine.

This module is the public API: :func:`connect`, :class:`Database`,
:class:`Transaction`, :class:`Snapshot` and the error tree rooted at :class:`Error`.
The Numba kernels are in :mod:`colibri_mm.kernels`.
"""

from ._version import __version__
from .database import Database, connect
from .errors import (
    ClosedError,
    ConfigError,
    ConstraintError,
    CorruptionError,
    DiskFullError,
    DurabilityError,
    Error,
    FormatVersionError,
    LimitError,
    LockedError,
    ReadOnlyError,
    SchemaError,
    TableExistsError,
    TableNotFoundError,
    TransactionError,
)
from .transaction import Snapshot, Transaction

__all__ = [
    "ClosedError", "ConfigError", "ConstraintError", "CorruptionError", "Database",
    "DiskFullError", "DurabilityError", "Error", "FormatVersionError", "LimitError", "LockedError",
    "ReadOnlyError", "SchemaError", "Snapshot", "TableExistsError", "TableNotFoundError",
    "Transaction", "TransactionError", "__version__", "connect",
]
