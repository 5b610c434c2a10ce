"""colibri-mm: a memory-mapped, transactional, columnar-aware storage engine.

This module is the public API. Today it holds the version; the Numba kernels are in
:mod:`colibri_mm.kernels`. ``connect()``, ``Database``, ``Table`` and the error tree
arrive with the storage core.
"""

from ._version import __version__

__all__ = ["__version__"]
