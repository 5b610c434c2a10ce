"""Plain reference for :mod:`.merge`: dicts of bytes."""

from collections.abc import Sequence


def merge(newer: Sequence[tuple[bytes, int, bytes]], older: Sequence[tuple[bytes, int, bytes]],
          *, delete_kind: int, drop_deletes: bool) -> list[tuple[bytes, int, bytes]]:
    """Entries ``(key, kind, value)`` of both runs, newer winning, sorted by key."""
    merged = {key: (kind, value) for key, kind, value in older}
    merged.update({key: (kind, value) for key, kind, value in newer})
    return [(key, kind, value) for key, (kind, value) in sorted(merged.items())
            if not (drop_deletes and kind == delete_kind)]
