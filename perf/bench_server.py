"""Server benchmarks: ``coldb-server`` under ``redis-benchmark``, against redis-server.

The issue's workload: ``redis-benchmark -c 100 -n N -d 100 -r 200000 -t set,get``,
without pipelining and with ``-P 16``, ``N`` from ``COLIBRI_BENCH_SERVER_REQUESTS``
(default 200,000, the issue's size). The contenders, each started afresh (new data
directory, free ports) for every round and stopped after it:

- ours: ``coldb-server`` with ``storage.durability = "full"`` (every reply after its
  WAL fsync; group commit), Flight off;
- redis-server with no persistence (``--save "" --appendonly no``);
- redis-server with ``--appendonly yes --appendfsync everysec``.

Each contender runs ``-P 1`` then ``-P 16`` in a round; ``COLIBRI_BENCH_SERVER_ROUNDS``
rounds (default 3) are interleaved and the best requests/s and the best p95 (as
redis-benchmark's ``--csv`` reports them) of each line are kept. The resident memory
(``VmRSS`` of ``/proc/<pid>/status``) of every server is sampled every 0.1 s under
load, and read again 1 s after the load. Checks: redis-benchmark reports no error,
every SET reached our group committer (``write_batch_commands``), the server ran at
durability full and answered no request with an error, and it exits 0 on SIGTERM.

redis-server comes from Debian's package (``make perf`` installs it when missing). If
it cannot be found, every line still appears with our figure and no ratio, and the
anchor column says why: there is no stand-in figure.

Run as ``python -m perf.bench_server`` from the repository root; prints JSON lines.
"""

import contextlib
import csv
import functools
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from colibri_mm.cli.server_client import ServerClient
from colibri_mm.cli.server_commands import server_stats
from perf.bench_kv import MB
from perf.harness import log, report

REQUESTS = int(os.environ.get("COLIBRI_BENCH_SERVER_REQUESTS", "200000"))
ROUNDS = int(os.environ.get("COLIBRI_BENCH_SERVER_ROUNDS", "3"))
CLIENTS = 100
VALUE_BYTES = 100
KEYSPACE = 200_000
PIPELINES = (1, 16)
TESTS = ("SET", "GET")
TARGET_RPS = 50_000.0
"""The issue's floor for SET and GET without pipelining, requests/s."""
TARGET_P95_MS = 10.0
"""The issue's ceiling on p95 latency without pipelining."""
TARGET_RATIO = {1: 0.6, 16: 0.3}
"""The issue's goal against redis-server, by pipeline depth."""
START_TIMEOUT = 120.0
"""Seconds a server may take to answer its first PING (loaded machines are slow)."""
RSS_INTERVAL = 0.1
"""Seconds between two samples of a server's RSS under load."""
SETTLE_SECONDS = 1.0
"""Seconds between the end of the load and the RSS reported as "after"."""

OURS = "ours"
REDIS_PLAIN = "redis-plain"
REDIS_AOF = "redis-aof"
REDIS_ARGS = {REDIS_PLAIN: ["--save", "", "--appendonly", "no"],
              REDIS_AOF: ["--save", "", "--appendonly", "yes", "--appendfsync", "everysec"]}
REDIS_WHAT = {REDIS_PLAIN: 'no persistence (--save "" --appendonly no)',
              REDIS_AOF: "--appendonly yes --appendfsync everysec"}


def check(ok: bool, message: str) -> None:
    """Stop the run (no figure is reported) when a result is wrong."""
    if not ok:
        raise RuntimeError(f"bench_server check failed: {message}")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def rss_mb(pid: int) -> float:
    """``VmRSS`` of process ``pid`` in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / MB
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


def redis_server_binary() -> tuple[str | None, str]:
    """The redis-server executable and its version, or None and why it is missing."""
    path = shutil.which("redis-server")
    if path is None:
        return None, "redis-server not installed (make perf installs Debian's package)"
    version = subprocess.run([path, "--version"], capture_output=True, text=True,
                             check=True).stdout.split()
    number = next((word[2:] for word in version if word.startswith("v=")), "?")
    return path, f"redis-server {number}"


@dataclass
class Figures:
    """The best figures of one contender over the rounds, and its RSS."""

    rps: dict[tuple[int, str], float] = field(default_factory=dict)
    p95_ms: dict[tuple[int, str], float] = field(default_factory=dict)
    rss_start_mb: float = 0.0
    rss_load_mb: float = 0.0
    rss_after_mb: float = 0.0

    def add(self, pipeline: int, rows: list[dict[str, str]]) -> None:
        """Keep the best of this run's ``--csv`` rows and the earlier ones."""
        for row in rows:
            key = (pipeline, row["test"])
            self.rps[key] = max(self.rps.get(key, 0.0), float(row["rps"]))
            self.p95_ms[key] = min(self.p95_ms.get(key, float("inf")),
                                   float(row["p95_latency_ms"]))


class Server:
    """A server in a child process, answering PING on ``port`` once constructed."""

    def __init__(self, argv: list[str], port: int, log_path: Path) -> None:
        self.port = port
        with log_path.open("ab") as output:
            self.process = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT)
        self.client = redis.Redis(port=port, socket_timeout=60)
        deadline = time.monotonic() + START_TIMEOUT
        with self.killed_on_error():
            while True:
                check(self.process.poll() is None,
                      f"{argv[:3]} exited with {self.process.returncode}: see {log_path}")
                try:
                    if self.client.ping():
                        break
                except redis.ConnectionError:
                    check(time.monotonic() < deadline, f"{argv[:3]} did not start: {log_path}")
                    time.sleep(0.05)

    @contextlib.contextmanager
    def killed_on_error(self) -> Iterator[None]:
        """Kill the server if the block raises (a failed check leaves no server)."""
        try:
            yield
        except BaseException:
            self.process.kill()
            self.process.wait()
            raise

    def stop(self) -> int:
        """SIGTERM, wait, and the exit status."""
        self.client.close()
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=START_TIMEOUT)


def start_ours(directory: Path) -> Server:
    """``coldb-server`` on a fresh database in ``directory``, durability full."""
    port = free_port()
    config = {
        "data_dir": str(directory / "data"),
        "server": {"resp_port": port, "http_port": free_port(), "flight_port": 0},
        "storage": {"durability": "full"},
        "logging": {"file": str(directory / "server.log"), "format": "json"},
    }
    path = directory / "colibridb.conf.json"
    path.write_text(json.dumps(config))
    return Server([sys.executable, "-m", "colibri_mm.server.main", "--config", str(path)],
                  port, directory / "stdout.log")


def start_redis(binary: str, kind: str, directory: Path) -> Server:
    """redis-server with the persistence of ``kind``, its files in ``directory``."""
    port = free_port()
    return Server([binary, "--port", str(port), "--bind", "127.0.0.1", "--dir",
                   str(directory), "--daemonize", "no", *REDIS_ARGS[kind]],
                  port, directory / "redis.log")


def run_benchmark(port: int, pipeline: int) -> list[dict[str, str]]:
    """One ``redis-benchmark ... --csv`` run; its rows, checked for errors."""
    done = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-c", str(CLIENTS), "-n", str(REQUESTS),
         "-d", str(VALUE_BYTES), "-r", str(KEYSPACE), "-t", "set,get", "-P", str(pipeline),
         "--csv"], capture_output=True, text=True, check=True)
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    check(sorted(row["test"] for row in rows) == sorted(TESTS),
          f"redis-benchmark printed {done.stdout!r}")
    check("error" not in (done.stdout + done.stderr).lower(),
          f"redis-benchmark reported errors: {done.stderr[-2000:]!r}")
    return rows


class RssSampler:
    """The highest ``VmRSS`` of a process, sampled in a thread while in the block."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_mb = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="bench-server-rss")

    def _sample(self) -> None:
        while not self._done.is_set():
            self.peak_mb = max(self.peak_mb, rss_mb(self.pid))
            self._done.wait(RSS_INTERVAL)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()


def ours_stats(server: Server) -> dict[str, Any]:
    """Our server's ``COLDB.STATS`` document."""
    return server_stats(ServerClient(server.client))


def check_ours(server: Server, errors_before: int) -> None:
    """Every SET went through the group committer at durability full, and no request
    of the load got an error (``errors_before``: those of our own client's handshake)."""
    stats = ours_stats(server)
    check(stats["database"]["durability"] == "full",
          f"the server ran at durability {stats['database']['durability']}")
    # A pipelined run may send up to a pipeline's worth per client beyond -n.
    sets, least = stats["server"]["write_batch_commands"], REQUESTS * len(PIPELINES)
    check(least <= sets <= least + CLIENTS * max(PIPELINES),
          f"{sets} writes were committed, expected {least}")
    errors = stats["server"]["error_replies"] - errors_before
    check(errors == 0, f"{errors} requests got an error")


def run_round(name: str, server: Server, figures: Figures) -> None:
    """Every pipeline depth against ``server``, with its RSS, then its check and stop."""
    with server.killed_on_error():
        measure_round(name, server, figures)
    status = server.stop()
    check(status == 0, f"{name} exited with {status} on SIGTERM")


def measure_round(name: str, server: Server, figures: Figures) -> None:
    """The figures and checks of :func:`run_round`."""
    pid = server.process.pid
    errors_before = ours_stats(server)["server"]["error_replies"] if name == OURS else 0
    figures.rss_start_mb = max(figures.rss_start_mb, rss_mb(pid))
    with RssSampler(pid) as sampler:
        for pipeline in PIPELINES:
            log(f"bench_server: {name} -P {pipeline}")
            figures.add(pipeline, run_benchmark(server.port, pipeline))
    time.sleep(SETTLE_SECONDS)
    figures.rss_load_mb = max(figures.rss_load_mb, sampler.peak_mb)
    figures.rss_after_mb = max(figures.rss_after_mb, rss_mb(pid))
    check(server.client.dbsize() > 0, f"{name} holds no key after the SETs")
    if name == OURS:
        check_ours(server, errors_before)


def measure(root: Path, redis_binary: str | None) -> dict[str, Figures]:
    """:data:`ROUNDS` interleaved rounds of every contender; their best figures."""
    starters: dict[str, Callable[[Path], Server]] = {OURS: start_ours}
    if redis_binary is not None:
        for kind in (REDIS_PLAIN, REDIS_AOF):
            starters[kind] = functools.partial(start_redis, redis_binary, kind)
    figures = {name: Figures() for name in starters}
    for r in range(ROUNDS):
        for name, start in starters.items():
            directory = root / f"{r}-{name}"
            directory.mkdir()
            run_round(name, start(directory), figures[name])
            shutil.rmtree(directory)
    return figures


def workload(pipeline: int) -> str:
    return (f"redis-benchmark -c {CLIENTS} -n {REQUESTS} -d {VALUE_BYTES} -r {KEYSPACE} "
            f"-t set,get -P {pipeline}")


def report_all(figures: dict[str, Figures], redis_name: str) -> None:
    """Every line, with or without the redis-server anchors."""
    ours = figures[OURS]
    anchors = {kind: figures.get(kind) for kind in (REDIS_PLAIN, REDIS_AOF)}

    def anchor_of(kind: str, rps: bool, key: tuple[int, str]) -> tuple[str, float | None]:
        """The anchor column and figure of redis-server ``kind`` (none if missing)."""
        found = anchors[kind]
        if found is None:
            return f"{redis_name}: no anchor figure", None
        return f"{redis_name}, {REDIS_WHAT[kind]}", (found.rps if rps else found.p95_ms)[key]

    ours_what = 'coldb-server, durability="full" (each reply after its WAL fsync)'
    for pipeline in PIPELINES:
        suffix = "" if pipeline == 1 else f" -P {pipeline}"
        for test in TESTS:
            key = (pipeline, test)
            for kind in (REDIS_PLAIN, REDIS_AOF):
                anchor, value = anchor_of(kind, True, key)
                report(f"server.{test}{suffix} vs redis {'aof' if kind == REDIS_AOF else ''}"
                       .rstrip(), f"{test} requests/s of `{workload(pipeline)}` against "
                       f"{ours_what}, a fresh database per round", "requests/s",
                       ours.rps[key], anchor=anchor, anchor_value=value,
                       target_ratio=TARGET_RATIO[pipeline], repeat=ROUNDS)
            if pipeline == 1:
                report(f"server.{test} floor", f"the issue's floor: {test} requests/s of "
                       f"`{workload(pipeline)}` against {ours_what}", "requests/s",
                       ours.rps[key], anchor=f"fixed target {TARGET_RPS:,.0f} requests/s",
                       anchor_value=TARGET_RPS, target_ratio=1.0, repeat=ROUNDS)
                redis_p95 = ", ".join(
                    f"{REDIS_WHAT[kind]}: {found.p95_ms[key]:.2f} ms"
                    for kind, found in anchors.items() if found is not None)
                report(f"server.{test} p95", f"the issue's ceiling: p95 latency of {test} "
                       f"in `{workload(pipeline)}` (redis-benchmark --csv) against "
                       f"{ours_what}; {redis_name} p95 {redis_p95 or 'not measured'}",
                       "ms", ours.p95_ms[key], anchor=f"fixed target {TARGET_P95_MS:g} ms",
                       anchor_value=TARGET_P95_MS, target_ratio=1.0, repeat=ROUNDS)
            else:
                anchor, value = anchor_of(REDIS_PLAIN, False, key)
                report(f"server.{test}{suffix} p95", f"informational: p95 latency of {test} "
                       f"in `{workload(pipeline)}` against {ours_what}", "ms",
                       ours.p95_ms[key], anchor=anchor, anchor_value=value, repeat=ROUNDS)
    redis_rss = "; ".join(
        f"{REDIS_WHAT[kind]}: {found.rss_start_mb:.0f} MB at start, "
        f"{found.rss_load_mb:.0f} MB under load, {found.rss_after_mb:.0f} MB after"
        for kind, found in anchors.items() if found is not None)
    redis_rss_text = f"{redis_name}: {redis_rss}" if redis_rss else f"{redis_name}: not measured"
    report("server.RSS under load", f"informational: highest VmRSS of coldb-server sampled "
           f"every {RSS_INTERVAL:g} s during both redis-benchmark runs of a round "
           f"(highest over the rounds; {ours.rss_start_mb:.0f} MB at start)", "MB",
           ours.rss_load_mb, anchor=redis_rss_text, repeat=ROUNDS)
    report("server.RSS after", f"informational: VmRSS of coldb-server {SETTLE_SECONDS:g} s "
           "after the load (highest over the rounds)", "MB", ours.rss_after_mb,
           anchor=redis_rss_text, repeat=ROUNDS)


def main() -> None:
    check(shutil.which("redis-benchmark") is not None,
          "redis-benchmark not found (Debian's redis-tools)")
    redis_binary, redis_name = redis_server_binary()
    if redis_binary is None:
        log(f"bench_server: {redis_name}; our figures are reported without a ratio")
    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
        figures = measure(Path(tmp), redis_binary)
    report_all(figures, redis_name)


if __name__ == "__main__":
    main()
