"""``coldb-server`` as operators run it: a child process started from a
configuration file, talked to by redis-py and by the ``coldb`` CLI, stopped by
SIGTERM, ``coldb shutdown`` or SIGKILL; in daemon mode; with bad configurations."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import redis
from running_server import RunningServer, free_ports, write_config

import colibri_mm as cm

COLDB = [sys.executable, "-m", "colibri_mm.cli.main"]


def coldb(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COLDB, *args], capture_output=True, text=True, timeout=120,
                          env=None if env is None else {**os.environ, **env})


def test_start_serve_and_stop_with_the_cli(tmp_path: Path) -> None:
    server = RunningServer(write_config(tmp_path))
    steps = [e for e in server.events
             if e["msg"] in ("configuration loaded", "database open", "listening", "ready")]
    assert [e["msg"] for e in steps] == \
        ["configuration loaded", "database open", "listening", "ready"]
    opened = steps[1]
    assert opened["recovery_transactions"] == 0 and "recovery_seconds" in opened
    assert steps[2]["resp"] == server.address and steps[2]["flight"] is None

    client = redis.Redis(port=server.resp_port)
    assert client.set("k1", "v1") and client.get("k1") == b"v1"
    ping = coldb("--server", server.address, "ping")
    assert ping.returncode == 0 and ping.stdout.startswith("PONG ") and "ms" in ping.stdout
    assert coldb("put", "k2", "v2", "--server", server.address).returncode == 0
    got = coldb("get", "k2", "--server", server.address)
    assert (got.returncode, got.stdout) == (0, "v2\n")
    missing = coldb("get", "nope", "--server", server.address)
    assert missing.returncode == 1 and "key not found" in missing.stderr
    scan = coldb("scan", "--prefix", "k", "--server", server.address)
    assert scan.stdout == "k1\tv1\nk2\tv2\n"
    deleted = coldb("delete", "k1", "--server", server.address)
    assert (deleted.returncode, deleted.stdout) == (0, "1\n")

    health = coldb("health", "--server", server.address)
    assert health.returncode == 0, health.stderr
    names = [line.split("  ")[0].strip() for line in health.stdout.splitlines()]
    assert names == ["server", "wal", "checkpoint", "disk", "page cache", "transactions",
                     "connections"]
    assert all(line.split()[1 if not line.startswith("page") else 2] == "ok"
               for line in health.stdout.splitlines() if not line.startswith("disk"))
    stats = coldb("stats", "--json", "--server", server.address)
    document = json.loads(stats.stdout)
    assert document["database"]["wal_commits"] >= 3
    assert document["server"]["connections"] >= 1
    assert "commits_per_second" in coldb("stats", "--server", server.address).stdout
    top = coldb("top", "--count", "2", "--interval", "0.1", "--server", server.address)
    assert top.returncode == 0, top.stderr
    assert "TPS (commits/s)" in top.stdout and "connections" in top.stdout
    with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/readyz") as reply:
        assert reply.status == 200

    with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/metrics") as reply:
        metrics = reply.read().decode()
    assert "colibri_disk_free_bytes" in metrics and "colibri_checkpoints_failed_total" in metrics

    backup = coldb("backup", "--output", str(tmp_path / "backup"), "--server", server.address)
    assert backup.returncode == 0, backup.stderr

    stopped = coldb("shutdown", "--server", server.address)
    assert (stopped.returncode, stopped.stdout) == (0, "stopped\n"), stopped.stderr
    assert server.wait() == 0
    last = server.log_events()[-1]
    assert (last["msg"], last["clean"]) == ("stopped", True)
    with cm.connect(tmp_path / "data") as db:
        assert db.replayed_transactions == 0  # the stop checkpointed
        assert db.kv.get("k2") == b"v2" and db.kv.get("k1") is None
    restored = coldb("restore", "--from", str(tmp_path / "backup"), "--data-dir",
                     str(tmp_path / "restored"))
    assert restored.returncode == 0, restored.stderr
    with cm.connect(tmp_path / "restored") as db:
        assert db.kv.get("k2") == b"v2" and db.kv.get("k1") is None


def test_sigterm_stops_gracefully(tmp_path: Path) -> None:
    server = RunningServer(write_config(tmp_path))
    redis.Redis(port=server.resp_port).set("a", "1")
    assert server.stop(signal.SIGTERM) == 0
    assert any(e["msg"] == "stopping" and e["reason"] == "SIGTERM" for e in server.log_events())
    with cm.connect(tmp_path / "data") as db:
        assert db.kv.get("a") == b"1"


def test_sigkill_loses_no_acknowledged_write(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    server = RunningServer(config)
    client = redis.Redis(port=server.resp_port)
    for i in range(300):
        client.set(f"key{i}", f"value{i}")
    pipe = client.pipeline(transaction=True)
    pipe.set("x", "1").incr("counter", 5)
    assert pipe.execute() == [True, 5]
    assert server.stop(signal.SIGKILL) == -signal.SIGKILL
    again = RunningServer(config)
    opened = next(e for e in again.events if e["msg"] == "database open")
    assert opened["recovery_transactions"] >= 301
    client = redis.Redis(port=again.resp_port)
    assert client.mget([f"key{i}" for i in range(300)]) == \
        [f"value{i}".encode() for i in range(300)]
    assert client.get("counter") == b"5"
    assert again.stop() == 0


def test_flags_override_the_file_and_readonly_refuses_writes(tmp_path: Path) -> None:
    config = write_config(tmp_path, storage={"free_space_warning_bytes": 1 << 62})
    first = RunningServer(config)
    redis.Redis(port=first.resp_port).set("kept", "yes")
    assert first.stop() == 0
    port, = free_ports(1)
    server = RunningServer(config, "--port", str(port), "--readonly")
    client = redis.Redis(port=port)
    assert client.get("kept") == b"yes"
    with pytest.raises(redis.ReadOnlyError):
        client.set("k", "v")
    health = coldb("health", "--server", f"127.0.0.1:{port}")
    disk = next(line for line in health.stdout.splitlines() if line.startswith("disk"))
    assert disk.split()[1] == "warn" and "under the warning threshold" in disk
    assert "read-only" in health.stdout
    assert server.stop() == 0


def test_a_bad_configuration_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"server": {"resp_port": 70000, "colour": "blue"}}))
    result = subprocess.run([sys.executable, "-m", "colibri_mm.server.main", "--config",
                             str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "server.resp_port" in result.stderr and "server.colour" in result.stderr


def test_a_port_in_use_fails_the_start(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    first = RunningServer(config)
    second = subprocess.run([sys.executable, "-m", "colibri_mm.server.main", "--config",
                             str(config), "--data-dir", str(tmp_path / "other")],
                            capture_output=True, text=True, timeout=120)
    assert second.returncode == 1 and "start failed" in second.stderr
    assert first.stop() == 0


def test_daemon_mode_with_a_pidfile(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    pidfile = tmp_path / "server.pid"
    launched = subprocess.run([sys.executable, "-m", "colibri_mm.server.main", "--config",
                               str(config), "--daemon", "--pidfile", str(pidfile)],
                              capture_output=True, text=True, timeout=120)
    assert launched.returncode == 0, launched.stderr
    assert launched.stdout.startswith("coldb-server: ready pid ")
    pid = int(pidfile.read_text())
    port = json.loads(config.read_text())["server"]["resp_port"]
    address = f"127.0.0.1:{port}"
    assert coldb("put", "d", "1", "--server", address).returncode == 0
    assert coldb("shutdown", "--server", address).returncode == 0
    deadline = time.monotonic() + 60
    while pidfile.exists() or _alive(pid):
        assert time.monotonic() < deadline, "the daemon did not stop"
        time.sleep(0.05)
    with cm.connect(tmp_path / "data") as db:
        assert db.kv.get("d") == b"1"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_cli_errors_without_a_reachable_server(tmp_path: Path) -> None:
    no_server = coldb("ping")
    assert no_server.returncode == 2 and "--server" in no_server.stderr
    port, = free_ports(1)
    unreachable = coldb("ping", "--server", f"127.0.0.1:{port}")
    assert unreachable.returncode == 3 and "cannot reach" in unreachable.stderr
    bad = coldb("get", "k", "--server", "localhost")
    assert bad.returncode == 2 and "HOST:PORT" in bad.stderr
    local_only = coldb("checkpoint", "--server", f"127.0.0.1:{port}")
    assert local_only.returncode == 2 and "not through --server" in local_only.stderr


def test_auth_from_the_environment(tmp_path: Path) -> None:
    from colibri_mm.server.passwords import hash_password

    config = write_config(tmp_path, flight=True, security={
        "password_hash": hash_password("s3cret", iterations=100_000)})
    server = RunningServer(config)
    refused = coldb("get", "k", "--server", server.address)
    assert refused.returncode == 3 and "COLIBRI_PASSWORD" in refused.stderr
    wrong = coldb("ping", "--server", server.address, env={"COLIBRI_PASSWORD": "nope"})
    assert wrong.returncode == 3 and "refused the password" in wrong.stderr
    ok = coldb("put", "k", "v", "--server", server.address, env={"COLIBRI_PASSWORD": "s3cret"})
    assert ok.returncode == 0, ok.stderr

    from pyarrow import flight

    client = flight.FlightClient(f"grpc://127.0.0.1:{server.config['server']['flight_port']}")
    with pytest.raises(flight.FlightUnauthenticatedError):
        list(client.list_flights())
    with pytest.raises(flight.FlightUnauthenticatedError):
        client.authenticate_basic_token("user", "wrong")
    token = client.authenticate_basic_token("user", "s3cret")
    options = flight.FlightCallOptions(headers=[token])
    assert list(client.list_flights(options=options)) == []
    assert server.stop() == 0
