"""A server's statistics document, put into words: the lines of ``coldb health`` and
``coldb stats`` and the table ``coldb top`` redraws.

The document is the reply of ``COLDB.STATS``: ``{"server": ..., "metrics": ...,
"database": ...}`` (``docs/OBSERVABILITY.md``). Figures the interval had nothing to
measure for (no requests, no commits) show as ``-``.
"""

from __future__ import annotations

import time
from typing import Any

from rich.table import Table

from .table_commands import human_bytes

CONNECTIONS_WARN = 0.9
"""Share of ``max_connections`` in use from which ``health`` says ``warn``."""


def health_lines(document: dict[str, Any]) -> list[str]:
    """One line per subsystem (server, WAL, checkpoint, disk, page cache,
    transactions, connections): name, ``ok`` or ``warn``, and the figures behind it."""
    server, metrics, db = document["server"], document["metrics"], document["database"]
    rates = metrics["rates"]
    lines = [("server", "ok",
              f"up {_duration(server['uptime_seconds'])}, version {server['version']}, "
              f"pid {server['pid']}" + (", read-only" if db["readonly"] else ""))]
    if "wal_commits" in db:
        lines.append(("wal", "ok",
                      f"durability {db['durability']}, "
                      f"{_rate(rates.get('colibri_commits_total'))} commits/s, "
                      f"{_rate(rates.get('colibri_wal_syncs_total'))} fsyncs/s, "
                      f"group size {_number(metrics['group_size'])}, "
                      f"{_bytes(db['wal_bytes_written'])} written since start"))
    checkpoint = db["last_checkpoint"]
    if "error" in checkpoint:
        lines.append(("checkpoint", "warn",
                      f"the last one failed {_ago(checkpoint.get('at'))}: "
                      f"{checkpoint['error']}"))
    elif checkpoint:
        lines.append(("checkpoint", "ok",
                      f"#{checkpoint['checkpoint_id']} {_ago(checkpoint.get('at'))}, took "
                      f"{checkpoint['seconds']:.2f} s; {_bytes(db['kv_bytes_in_memory'])} "
                      f"changed since"))
    else:
        lines.append(("checkpoint", "ok",
                      f"#{db['checkpoint_id']} (none since start); "
                      f"{_bytes(db['kv_bytes_in_memory'])} changed since"))
    disk = document["disk"]
    low = disk["free_bytes"] < disk["warning_bytes"]
    lines.append(("disk", "warn" if low else "ok",
                  f"{_bytes(disk['free_bytes'])} free of {_bytes(disk['total_bytes'])}"
                  + (f", under the warning threshold {_bytes(disk['warning_bytes'])}"
                     if low else "")))
    lines.append(("page cache", "ok",
                  f"{_percent(metrics['page_cache_resident_ratio'])} of the data file "
                  f"resident, chunk cache hit rate "
                  f"{_percent(metrics['chunk_cache_hit_ratio'])}"))
    lines.append(("transactions", "ok",
                  f"{db['live_snapshots']} live snapshots, published CSN "
                  f"{db['published_csn']}"))
    connections, most = server["connections"], server["max_connections"]
    lines.append(("connections", "warn" if connections >= CONNECTIONS_WARN * most else "ok",
                  f"{connections} of {most}"))
    width = max(len(name) for name, _, _ in lines)
    return [f"{name:<{width}}  {status:<4}  {text}" for name, status, text in lines]


def stats_lines(document: dict[str, Any]) -> list[str]:
    """``name: value`` lines of the main figures (``--json`` shows everything)."""
    metrics, db = document["metrics"], document["database"]
    values, rates = metrics["values"], metrics["rates"]
    requests, commits = metrics["request_latency_seconds"], metrics["commit_latency_seconds"]
    figures = {
        "interval_seconds": _number(metrics["interval_seconds"]),
        "commits_per_second": _rate(rates.get("colibri_commits_total")),
        "fsyncs_per_second": _rate(rates.get("colibri_wal_syncs_total")),
        "wal_bytes_per_second": _rate(rates.get("colibri_wal_written_bytes_total")),
        "group_size": _number(metrics["group_size"]),
        "request_p50_ms": _ms(requests["p50"]), "request_p95_ms": _ms(requests["p95"]),
        "request_p99_ms": _ms(requests["p99"]),
        "commit_p50_ms": _ms(commits["p50"]), "commit_p95_ms": _ms(commits["p95"]),
        "commit_p99_ms": _ms(commits["p99"]),
        "page_cache_resident": _percent(metrics["page_cache_resident_ratio"]),
        "chunk_cache_hit_rate": _percent(metrics["chunk_cache_hit_ratio"]),
        "connections": document["server"]["connections"],
        "resident_memory": _bytes(values.get("colibri_process_resident_memory_bytes")),
        "live_snapshots": db["live_snapshots"],
        "checkpoint_id": db["checkpoint_id"],
        "kv_bytes_in_memory": _bytes(db["kv_bytes_in_memory"]),
    }
    return [f"{name}: {value}" for name, value in figures.items()]


def top_table(document: dict[str, Any], where: str) -> Table:
    """The dashboard frame of ``coldb top``."""
    metrics, server = document["metrics"], document["server"]
    values, rates = metrics["values"], metrics["rates"]
    requests, commits = metrics["request_latency_seconds"], metrics["commit_latency_seconds"]
    table = Table(title=f"coldb-server {where}  up {_duration(server['uptime_seconds'])}  "
                        f"{time.strftime('%H:%M:%S')}", show_header=True, expand=False)
    table.add_column("figure")
    table.add_column("now", justify="right")
    rows = [
        ("TPS (commits/s)", _rate(rates.get("colibri_commits_total"))),
        ("requests/s", _rate(rates.get("colibri_request_duration_seconds_count"))),
        ("request latency p50 / p95 / p99 ms",
         f"{_ms(requests['p50'])} / {_ms(requests['p95'])} / {_ms(requests['p99'])}"),
        ("commit latency p50 / p95 / p99 ms",
         f"{_ms(commits['p50'])} / {_ms(commits['p95'])} / {_ms(commits['p99'])}"),
        ("WAL fsyncs/s", _rate(rates.get("colibri_wal_syncs_total"))),
        ("WAL written/s", _bytes(rates.get("colibri_wal_written_bytes_total"))),
        ("group size (commits per fsync group)", _number(metrics["group_size"])),
        ("page cache resident", _percent(metrics["page_cache_resident_ratio"])),
        ("chunk cache hit rate", _percent(metrics["chunk_cache_hit_ratio"])),
        ("connections", f"{server['connections']} of {server['max_connections']}"),
        ("resident memory", _bytes(values.get("colibri_process_resident_memory_bytes"))),
        ("disk read/s", _bytes(rates.get("colibri_process_disk_read_bytes_total"))),
        ("disk written/s", _bytes(rates.get("colibri_process_disk_written_bytes_total"))),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    return table


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.2f}"


def _percent(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio * 100:.1f}%"


def _bytes(count: float | None) -> str:
    return "-" if count is None else human_bytes(int(count))


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes:02}m"
    return f"{minutes}m{seconds:02}s"


def _ago(at: float | None) -> str:
    return "at an unknown time" if at is None else f"{_duration(time.time() - at)} ago"
