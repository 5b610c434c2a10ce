"""Timing and reporting helpers shared by the ``bench_*`` modules.

Timing: every callable is called once to warm up (Numba compilation, page faults),
then the callables are run ``repeat`` rounds, interleaved, so that a noisy neighbour
slows ours and the anchor alike; the best time of each is kept. Reporting: one JSON
object per measurement on stdout, the format :mod:`perf.run` reads.
"""

import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

GB = 1e9
"""Bytes in a GB: throughputs are decimal GB/s."""

TIME_UNITS = frozenset({"ms"})
"""Units where lower is better; in every other unit (GB/s, keys/s) higher is better."""


def best_times(fns: Sequence[Callable[[], object]], repeat: int) -> list[float]:
    """Best wall time in seconds of each of ``fns`` over ``repeat`` interleaved rounds."""
    for fn in fns:
        fn()
    best = [math.inf] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def ratio(unit: str, ours: float, anchor: float) -> float:
    """How many times better ours is: ours/anchor for rates, anchor/ours for times."""
    return anchor / ours if unit in TIME_UNITS else ours / anchor


def report(benchmark: str, measures: str, unit: str, ours: float, *,
           anchor: str | None = None, anchor_value: float | None = None,
           target_ratio: float | None = None, repeat: int | None = None) -> dict[str, Any]:
    """Print one measurement as a JSON line on stdout and return it.

    ``ratio`` is null without an anchor figure; ``met`` is null without a target.
    """
    r = None if anchor_value is None else ratio(unit, ours, anchor_value)
    line: dict[str, Any] = {
        "benchmark": benchmark,
        "measures": measures,
        "unit": unit,
        "ours": ours,
        "anchor": anchor,
        "anchor_value": anchor_value,
        "ratio": r,
        "target_ratio": target_ratio,
        "met": None if target_ratio is None or r is None else r >= target_ratio,
        "repeat": repeat,
    }
    print(json.dumps(line), flush=True)
    return line


def log(message: str) -> None:
    """Progress note on stderr (stdout carries only JSON lines)."""
    print(message, file=sys.stderr, flush=True)
