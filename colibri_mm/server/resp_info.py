"""What the RESP server says about itself: INFO sections, CONFIG GET parameters and
the resident memory of the process.

INFO's text follows Redis's layout (``# Section`` headers, ``field:value`` lines);
fields Redis has keep their names (``connected_clients``, ``total_commands_processed``,
``used_memory_rss``, ``db0:keys=...``), engine fields are added by their own names.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
from typing import TYPE_CHECKING, Any

from .._version import __version__
from .resp_glob import GlobPattern

if TYPE_CHECKING:
    from .resp_server import RespServer

REDIS_VERSION = "7.0.0"
"""The Redis version whose protocol and commands the server follows (INFO, HELLO)."""
INFO_SECTIONS = ("server", "clients", "memory", "persistence", "stats", "keyspace")
_APPENDFSYNC = {"full": "always", "normal": "everysec", "off": "no"}


def resident_bytes() -> int:
    """The resident set size of this process (the peak where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def _human(size: int) -> str:
    """``size`` bytes as Redis's ``*_human`` fields write it (``1.50M``)."""
    value = float(size)
    for unit in ("B", "K", "M"):
        if value < 1024:
            return f"{value:.2f}{unit}"
        value /= 1024
    return f"{value:.2f}G"


def info_text(server: RespServer, sections: list[bytes], key_count: int | None) -> bytes:
    """The reply of INFO ``sections`` (none, ``default``, ``all``: every section).

    ``key_count``: the number of keys for the keyspace section (None: left out).
    """
    wanted = {s.decode("ascii", "replace").lower() for s in sections}
    if not wanted or wanted & {"default", "all", "everything"}:
        wanted = set(INFO_SECTIONS)
    fields = info_fields(server)
    lines: list[str] = []
    for section in INFO_SECTIONS:
        if section not in wanted:
            continue
        if lines:
            lines.append("")
        lines.append(f"# {section.capitalize()}")
        if section == "keyspace":
            if key_count:
                lines.append(f"db0:keys={key_count},expires=0,avg_ttl=0")
            continue
        lines.extend(f"{name}:{value}" for name, value in fields[section].items())
    return ("\r\n".join(lines) + "\r\n").encode()


def info_fields(server: RespServer) -> dict[str, dict[str, Any]]:
    """INFO's fields by section (keyspace aside)."""
    stats = server.db.stats()
    rss = resident_bytes()
    uptime = int(time.monotonic() - server.started)
    counters = server.counters
    batches = server.group_commit_counters()
    return {
        "server": {
            "redis_version": REDIS_VERSION, "colibri_mm_version": __version__,
            "redis_mode": "standalone", "os": f"{platform.system()} {platform.release()}",
            "arch_bits": 64 if sys.maxsize > 2**32 else 32,
            "python_version": platform.python_version(), "process_id": os.getpid(),
            "tcp_port": server.port, "uptime_in_seconds": uptime,
            "uptime_in_days": uptime // 86400, "readonly": int(server.readonly),
        },
        "clients": {
            "connected_clients": server.connection_count,
            "maxclients": server.settings.max_connections,
        },
        "memory": {
            "used_memory_rss": rss, "used_memory_rss_human": _human(rss),
            "kv_bytes_in_memory": stats.get("kv_bytes_in_memory", 0),
            "kv_keys_in_memory": stats.get("kv_keys_in_memory", 0),
        },
        "persistence": {
            "loading": 0, "durability": stats["durability"],
            "aof_enabled": int(stats["durability"] != "off"),
            **{name: stats[name] for name in (
                "wal_commits", "wal_groups", "wal_syncs", "wal_largest_group",
                "wal_bytes_written") if name in stats},
            "checkpoint_id": stats["checkpoint_id"],
            "last_checkpoint_seconds": stats["last_checkpoint"].get("seconds", ""),
            "recovery_mode": stats["recovery_mode"],
            "recovery_transactions": stats["recovery_transactions"],
            "recovery_seconds": f"{stats['recovery_seconds']:.3f}",
        },
        "stats": {
            "total_connections_received": counters.connections_received,
            "total_commands_processed": counters.commands_processed,
            "total_net_input_bytes": counters.net_input_bytes,
            "total_net_output_bytes": counters.net_output_bytes,
            "rejected_connections": counters.rejected_connections,
            "total_error_replies": counters.error_replies,
            "write_batches": batches.batches,
            "write_batch_commands": batches.commands,
            "largest_write_batch": batches.largest_batch,
        },
    }


def config_values(server: RespServer) -> dict[str, str]:
    """The parameters CONFIG GET knows, as Redis names them."""
    settings = server.settings
    durability = server.db.options.durability
    return {
        "bind": settings.host, "port": str(server.port),
        "maxclients": str(settings.max_connections),
        "timeout": str(int(settings.idle_timeout_seconds)),
        "proto-max-bulk-len": str(server.limits.max_value_bytes),
        "client-query-buffer-limit": str(settings.max_request_bytes),
        "databases": "1", "save": "",
        "appendonly": "no" if durability == "off" else "yes",
        "appendfsync": _APPENDFSYNC.get(durability, "always"),
        "replica-read-only": "yes" if server.readonly else "no",
    }


def config_get(server: RespServer, patterns: list[bytes]) -> dict[bytes, bytes]:
    """CONFIG GET ``patterns``: the parameters matching any (Redis globs)."""
    globs = [GlobPattern(p.lower()) for p in patterns]
    return {name.encode(): value.encode() for name, value in config_values(server).items()
            if any(g.matches(name.encode()) for g in globs)}
