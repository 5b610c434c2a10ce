"""Options of an open database: defaults, and validation with messages naming the option."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigError
from .wal.reader import RECOVERY_MODES
from .wal.writer import DURABILITY_MODES

MIN_PAGE_SIZE = 4096
MAX_PAGE_SIZE = 1 << 20


@dataclass(frozen=True)
class Options:
    """How a database is opened. Every field is a keyword of :func:`colibri_mm.connect`."""

    durability: str = "full"
    page_size: int = 65536
    readonly: bool = False
    recovery: str = "point_in_time"
    wal_sync_interval_ms: float = 10.0
    wal_segment_size: int = 64 << 20
    wal_block_size: int = 32768
    lock_timeout: float = 0.0
    max_key_size: int = 1024
    max_value_size: int = 16 << 20
    max_dirty_bytes: int = 256 << 20
    """Bytes of keys and values changed since the last checkpoint that trigger one."""
    checkpoint_wal_bytes: int = 256 << 20
    """Bytes of WAL written since the last checkpoint that trigger one."""
    bulk_changes: int = 1024
    """Transactions with at least this many changes are committed (and replayed) as
    one sorted array layer instead of key by key (``colibri_mm.kv.batch``)."""
    chunk_cache_bytes: int = 64 << 20
    """Bytes of parsed table chunks kept in memory for point reads."""
    row_group_rows: int = 65536
    """Rows per stored chunk of a table (a bigger insert is split into several)."""
    tail_rows: int = 256
    """Rows a table keeps one stored value each (its tail) before folding them into a
    chunk; writes of at most a quarter of this many rows go to the tail. 0: every
    write makes chunks."""
    checkpoint_on_close: bool = True
    """Checkpoint in ``close()`` so the next open replays nothing."""

    def __post_init__(self) -> None:
        if self.durability not in DURABILITY_MODES:
            raise ConfigError(f"durability must be one of {', '.join(DURABILITY_MODES)}; "
                              f"got {self.durability!r}")
        if self.recovery not in RECOVERY_MODES:
            raise ConfigError(f"recovery must be one of {', '.join(RECOVERY_MODES)}; "
                              f"got {self.recovery!r}")
        size = self.page_size
        if not isinstance(size, int) or size < MIN_PAGE_SIZE or size > MAX_PAGE_SIZE \
                or size & (size - 1):
            raise ConfigError(f"page_size must be a power of two from {MIN_PAGE_SIZE} to "
                              f"{MAX_PAGE_SIZE}; got {size!r}")
        self._positive("wal_sync_interval_ms", self.wal_sync_interval_ms)
        self._positive("max_key_size", self.max_key_size)
        self._positive("max_value_size", self.max_value_size)
        self._positive("max_dirty_bytes", self.max_dirty_bytes)
        self._positive("checkpoint_wal_bytes", self.checkpoint_wal_bytes)
        self._positive("bulk_changes", self.bulk_changes)
        self._positive("row_group_rows", self.row_group_rows)
        self._positive("chunk_cache_bytes", self.chunk_cache_bytes)
        if isinstance(self.tail_rows, bool) or not isinstance(self.tail_rows, int) or \
                not 0 <= self.tail_rows <= 1 << 24:
            raise ConfigError(f"tail_rows must be an integer from 0 to {1 << 24}; got "
                              f"{self.tail_rows!r}")
        if self.wal_segment_size < (1 << 20):
            raise ConfigError(f"wal_segment_size must be at least 1 MiB; got "
                              f"{self.wal_segment_size!r}")
        if self.wal_block_size not in (4096, 8192, 16384, 32768, 65536):
            raise ConfigError(f"wal_block_size must be 4096, 8192, 16384, 32768 or 65536; "
                              f"got {self.wal_block_size!r}")
        if self.lock_timeout < 0:
            raise ConfigError(f"lock_timeout must be >= 0 seconds; got {self.lock_timeout!r}")

    @staticmethod
    def _positive(name: str, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigError(f"{name} must be a positive number; got {value!r}")
