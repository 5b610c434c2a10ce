"""Benchmarks of colibri-mm against anchors, and the report they produce.

This package owns performance measurement, nothing else: each ``bench_*.py`` module
times our code and an anchor (a well-known library, numpy, or a fixed target) side by
side in one process and prints one JSON line per measurement; :mod:`perf.run` runs
every bench module and writes ``perf/RESULTS.md``; :mod:`perf.harness` holds the
timing and reporting helpers they share. It is not installed with ``colibri_mm``:
run it from the repository root with ``make perf``.
"""
