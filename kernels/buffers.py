"""Turning anything that exposes the buffer protocol into a flat uint8 array.

Kernels take 1-D uint8 numpy arrays. This module converts bytes, bytearray,
memoryview, numpy arrays and mmap objects (and slices of them) into such an array
without copying, and refuses what it cannot view: ``TypeError`` for objects that do
not expose the buffer protocol (``str`` included), ``ValueError`` for buffers that are
not contiguous.
"""

from typing import Any

import numpy as np
import numpy.typing as npt

ByteArray = npt.NDArray[np.uint8]


def as_uint8(data: Any) -> ByteArray:
    """Zero-copy, 1-D uint8 view of ``data`` (read-only if ``data`` is)."""
    if isinstance(data, np.ndarray):
        if not data.flags.c_contiguous:
            raise ValueError("ndarray is not C-contiguous")
        if data.dtype.hasobject:
            raise TypeError("an ndarray of Python objects is not a byte buffer")
        return data.reshape(-1).view(np.uint8)
    if isinstance(data, str):
        raise TypeError("a bytes-like object is required, not 'str'")
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError(
            f"a bytes-like object is required, not {type(data).__name__!r}"
        ) from None
    if not view.c_contiguous:
        raise ValueError(f"{type(data).__name__} is not C-contiguous")
    if view.nbytes == 0:
        return np.empty(0, dtype=np.uint8)
    return np.frombuffer(view, dtype=np.uint8)
