"""Building order-preserving (memcomparable) keys of several columns, whole arrays at
a time: byte strings that compare, as bytes, like the tuples of values they encode.

Two steps are kernels; the per-type encodings (big-endian integers with the sign bit
flipped, and so on) are numpy expressions in :mod:`colibri_mm.tables.keys`:

- :func:`escape_terminated`: a variable-length value that is not the last part of a
  key is written with each 0x00 byte as 0x00 0xFF and ends with 0x00 0x01, so a
  shorter value sorts before every longer one it is a prefix of, whatever follows;
- :func:`concat_rows`: row i of the result is row i of ``a`` then row i of ``b``
  (Arrow-style offsets + data on both sides).
"""

from typing import Any

import numpy as np
import numpy.typing as npt

from .jit import kernel

Varlen = tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]


@kernel
def _escape(offsets: Any, data: Any) -> Any:
    n = offsets.size - 1
    out_offsets = np.empty(n + 1, np.int64)
    out_offsets[0] = 0
    for i in range(n):
        zeros = 0
        for k in range(offsets[i], offsets[i + 1]):
            if data[k] == 0:
                zeros += 1
        out_offsets[i + 1] = out_offsets[i] + offsets[i + 1] - offsets[i] + zeros + 2
    out = np.empty(out_offsets[n], np.uint8)
    for i in range(n):
        o = out_offsets[i]
        for k in range(offsets[i], offsets[i + 1]):
            out[o] = data[k]
            o += 1
            if data[k] == 0:
                out[o] = 0xFF
                o += 1
        out[o] = 0
        out[o + 1] = 1
    return out_offsets, out


@kernel
def _concat(a_offsets: Any, a_data: Any, b_offsets: Any, b_data: Any) -> Any:
    n = a_offsets.size - 1
    offsets = np.empty(n + 1, np.int64)
    offsets[0] = 0
    for i in range(n):
        offsets[i + 1] = (offsets[i] + a_offsets[i + 1] - a_offsets[i] + b_offsets[i + 1]
                          - b_offsets[i])
    out = np.empty(offsets[n], np.uint8)
    for i in range(n):
        o = offsets[i]
        a_len = a_offsets[i + 1] - a_offsets[i]
        out[o : o + a_len] = a_data[a_offsets[i] : a_offsets[i + 1]]
        out[o + a_len : offsets[i + 1]] = b_data[b_offsets[i] : b_offsets[i + 1]]
    return offsets, out


def _varlen(offsets: Any, data: Any) -> Varlen:
    o = np.ascontiguousarray(offsets, np.int64)
    d = np.ascontiguousarray(data, np.uint8)
    if o.ndim != 1 or o.size < 1 or o[0] < 0 or o[-1] > d.size or np.any(np.diff(o) < 0):
        raise ValueError("offsets must be n+1 non-decreasing positions within the data")
    return o, d


def escape_terminated(offsets: Any, data: Any) -> Varlen:
    """Each value with 0x00 written as 0x00 0xFF, then 0x00 0x01 (see module docstring)."""
    out_offsets, out = _escape(*_varlen(offsets, data))
    return out_offsets, out


def concat_rows(a: Varlen, b: Varlen) -> Varlen:
    """Row i of ``a`` followed by row i of ``b``, for every row."""
    ao, ad = _varlen(*a)
    bo, bd = _varlen(*b)
    if ao.size != bo.size:
        raise ValueError(f"concat_rows got {ao.size - 1} and {bo.size - 1} rows")
    offsets, out = _concat(ao, ad, bo, bd)
    return offsets, out
