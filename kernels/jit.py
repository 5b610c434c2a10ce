"""How every kernel is compiled: one decorator, so the policy lives in one place.

Serial kernels are compiled lazily (no eager signatures), release the GIL and are
cached on disk. Numba itself honours ``NUMBA_CACHE_DIR`` and ``NUMBA_DISABLE_JIT``;
with the JIT disabled the kernels run as plain Python (slowly), which is how the
test suite measures their coverage.
"""

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba

F = TypeVar("F", bound=Callable[..., Any])

JIT_DISABLED: bool = bool(numba.config.DISABLE_JIT)  # type: ignore[attr-defined]
"""True when ``NUMBA_DISABLE_JIT=1``: kernels run as interpreted Python."""


def kernel(func: F) -> F:
    """Compile ``func`` as a serial kernel: nopython, nogil, cached."""
    return cast(F, numba.njit(nogil=True, cache=True)(func))
