"""Numba kernels of colibri-mm, installed as ``colibri_mm.kernels``.

This package owns the hot loops that numpy cannot express without a Python loop:

- :mod:`.checksum`: CRC-32C (Castagnoli) of buffers and of every page of a buffer,
  using the CPU's CRC32 instruction where present, a table-driven kernel elsewhere;
  LevelDB's CRC masking.
- :mod:`.search`: binary search inside a page for fixed-width and variable-length
  keys, one key or a batch of keys per call.
- :mod:`.merge`: merging two sorted runs of key/value entries (newer wins).
- :mod:`.walcodec`: encoding of a batch of write-ahead-log records into framed,
  checksummed blocks in one call, and decoding that stops at the first bad record.

Each kernel module has a plain reference implementation beside it
(``*_reference.py``) that the tests compare it with. Kernels compile lazily on first
use, release the GIL and are cached on disk (``NUMBA_CACHE_DIR`` is honoured).
Nothing here imports from the rest of ``colibri_mm``.
"""
