"""A progress bar for long imports and exports: rows, MB/s and the time left (tqdm,
written to stderr)."""

from __future__ import annotations

import time
from types import TracebackType

from tqdm import tqdm


class Progress:
    """Counts rows and bytes; draws a bar when ``enabled`` (else only counts). The bar
    counts rows, or bytes with ``unit="B"`` (then ``add(nbytes, nbytes)``)."""

    def __init__(self, what: str, total_rows: int | None, enabled: bool,
                 unit: str = " rows") -> None:
        self.rows = 0
        self.bytes = 0
        self._started = time.perf_counter()
        self._bar = tqdm(total=total_rows, unit=unit, unit_scale=True, desc=what,
                         dynamic_ncols=True, smoothing=0.1) if enabled else None

    def add(self, rows: int, nbytes: int) -> None:
        """Count ``rows`` more rows of ``nbytes`` bytes."""
        self.rows += rows
        self.bytes += nbytes
        if self._bar is not None:
            self._bar.update(rows)
            self._bar.set_postfix_str(f"{self.megabytes_per_second:.0f} MB/s", refresh=False)

    @property
    def seconds(self) -> float:
        """Seconds since the start."""
        return time.perf_counter() - self._started

    @property
    def megabytes_per_second(self) -> float:
        """Arrow bytes per second so far, in MB (10^6)."""
        return self.bytes / 1e6 / max(self.seconds, 1e-9)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.close()
